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


@register
class PositionStale(Payload):
    """A unit on shift sent no fix for too long: its position on the map is no longer to be trusted."""

    KIND = "unit.position_stale"

    unit_id: str
    last_fix_at: datetime
    max_age_s: float


@register
class UnitChanged(Payload):
    """A unit was created or its record changed (shift on/off, crew, capabilities)."""

    KIND = "unit.changed"

    unit_id: str
    change: str  # created | shift_on | shift_off | updated
    status: str
    on_shift: bool
    actor: str | None = None


@register
class UnitStatusChanged(Payload):
    KIND = "unit.status_changed"

    unit_id: str
    status: str
    previous: str
    incident_id: str | None = None
    actor: str | None = None


@register
class UnitAssigned(Payload):
    KIND = "unit.assigned"

    unit_id: str
    incident_id: str
    assigned_by: str
    automatic: bool = False
    eta_s: float | None = None


@register
class AssignmentAcknowledged(Payload):
    KIND = "unit.assignment_acknowledged"

    unit_id: str
    incident_id: str
    actor: str


@register
class IncidentChanged(Payload):
    """An incident was created or moved in its lifecycle; live views and the tablet follow this."""

    KIND = "incident.changed"

    incident_id: str
    change: str  # created | assigned | acknowledged | en_route | on_scene | cleared | withdrawn | closed | cancelled
    status: str
    type: str
    priority: int = Field(ge=1, le=4)
    lat: float
    lon: float
    address: str
    source: str
    source_ref: str | None = None
    unit_id: str | None = None
    actor: str | None = None
