"""Typed payloads of the dispatch families: `unit.*` and `incident.*` (incident.requested lives in alarms)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from safecity.events import Payload, register


@register
class PositionReported(Payload):
    """A unit's GPS fix, from the OsmAnd/Traccar client, the JSON endpoint, MQTT or the tablet."""

    KIND = "unit.position_reported"

    unit_id: str = Field(min_length=1, max_length=64)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    recorded_at: datetime
    speed_mps: float | None = Field(default=None, ge=0)
    heading_deg: float | None = Field(default=None, ge=0, le=360)
    altitude_m: float | None = None
    accuracy_m: float | None = Field(default=None, ge=0)
    battery_pct: float | None = Field(default=None, ge=0, le=100)
    transport: str  # "osmand" | "json" | "mqtt" | "tablet" | "simulator"
