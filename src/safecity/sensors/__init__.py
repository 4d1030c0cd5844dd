"""Sensors: registry, readings, thresholds, air quality, fire monitoring and seismic triggers."""
