"""Typed payloads of seismic monitoring (`safecity.sensor.*`): triggers per station, earthquakes detected.

`sensor.earthquake_detected` is the contract with the public-warnings domain: each one becomes a draft
CAP alert that a supervisor reviews before anything is published.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from safecity.events import Payload, register


@register
class SeismicTriggered(Payload):
    """One station's STA/LTA ratio crossed its on-threshold (and, once known, fell below the off one)."""

    KIND = "sensor.seismic_triggered"

    station: str = Field(min_length=1, max_length=64)  # SEED id NET.STA.LOC.CHA
    onset: datetime
    ended: datetime | None = None
    peak_ratio: float = Field(ge=0)
    peak_amplitude: float | None = Field(default=None, ge=0)  # counts, or m/s when the response is known


@register
class EarthquakeDetected(Payload):
    """Enough stations triggered together: an earthquake, with a rough origin and magnitude."""

    KIND = "sensor.earthquake_detected"

    detection_id: str = Field(min_length=1, max_length=64)  # stable per event: the dedup key
    origin_time: datetime
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    depth_km: float | None = Field(default=None, ge=0)
    location_uncertainty_km: float | None = Field(default=None, ge=0)
    magnitude: float | None = None
    magnitude_type: str | None = Field(default=None, max_length=8)  # e.g. "Md" (duration) or "ML"
    stations: list[str] = Field(min_length=1)
    coincidence_sum: float = Field(ge=0)
