"""Seismic monitoring: waveforms in (miniSEED files, SeedLink), triggers out, earthquakes detected."""
