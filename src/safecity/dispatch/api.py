"""REST routes of dispatch: incidents, recommendations and assignment, units and their tablets, reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import AwareDatetime, BaseModel, Field

from safecity.api.deps import ServicesDep, allow, client_address
from safecity.api.problems import Problem
from safecity.dispatch import logic, statistics
from safecity.dispatch.events import PositionReported
from safecity.dispatch.logic import (
    Actor,
    DispatchError,
    DispatchStateError,
    NotYourUnit,
    RoutingUnavailable,
    UnitExists,
    UnitStatus,
    UnknownIncident,
    UnknownUnit,
)
from safecity.dispatch.model import AssignmentRow, IncidentRow, UnitRow
from safecity.dispatch.recommend import is_stale
from safecity.dispatch.service import DispatchService
from safecity.security import FIELD, OPERATIONS, SUPERVISION, Principal, Role
from safecity.services import Services

router = APIRouter(prefix="/api/v1", tags=["dispatch"])

DISPATCH: frozenset[Role] = frozenset({Role.DISPATCHER, Role.SUPERVISOR, Role.ADMIN})
"""Sending units: the dispatch desk and those above it."""

Dispatching = Annotated[Principal, allow(DISPATCH)]
Operations = Annotated[Principal, allow(OPERATIONS)]
OperationsOrCrew = Annotated[Principal, allow(OPERATIONS, Role.FIELD_UNIT)]
Crew = Annotated[Principal, allow(FIELD)]
Supervision = Annotated[Principal, allow(SUPERVISION)]
UnitId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")]
IncidentId = Annotated[str, Path(max_length=36)]


def dispatch_service(services: Services) -> DispatchService:
    return services.dispatch


def actor(principal: Principal) -> Actor:
    return Actor(principal.username, principal.role.value, principal.unit_id)


def _problem(exc: DispatchError) -> Problem:
    if isinstance(exc, UnknownIncident | UnknownUnit):
        return Problem(404, str(exc))
    if isinstance(exc, NotYourUnit):
        return Problem(403, str(exc))
    if isinstance(exc, DispatchStateError | UnitExists):
        return Problem(409, str(exc))
    if isinstance(exc, RoutingUnavailable):
        return Problem(503, str(exc))
    return Problem(422, str(exc))


# -- models ----------------------------------------------------------------------------------------


class IncidentIn(BaseModel):
    type: str = Field(min_length=1, max_length=32)
    priority: int | None = Field(default=None, ge=1, le=4, description="default: the type's priority")
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    address: str = Field(default="", max_length=300)
    district: str | None = Field(default=None, max_length=100)
    source: Literal["phone", "officer", "sos", "camera", "sensor"] = "phone"
    source_ref: str | None = Field(default=None, max_length=64)
    narrative: str = Field(default="", max_length=8000)


class IntervalsOut(BaseModel):
    call_processing_s: float | None
    turnout_s: float | None
    travel_s: float | None
    on_scene_s: float | None
    total_response_s: float | None


class IncidentOut(BaseModel):
    id: str
    type: str
    priority: int
    status: str
    lat: float
    lon: float
    address: str
    district: str | None
    source: str
    source_ref: str | None
    narrative: str
    created_at: datetime
    created_by: str
    dispatched_at: datetime | None
    dispatched_by: str | None
    en_route_at: datetime | None
    en_route_by: str | None
    on_scene_at: datetime | None
    on_scene_by: str | None
    cleared_at: datetime | None
    cleared_by: str | None
    closed_at: datetime | None
    closed_by: str | None
    version: int
    intervals: IntervalsOut


def _incident_out(row: IncidentRow) -> IncidentOut:
    data = {name: getattr(row, name) for name in IncidentOut.model_fields if name != "intervals"}
    intervals = logic.response_intervals(row.created_at, row.dispatched_at, row.en_route_at, row.on_scene_at,
                                         row.cleared_at)
    return IncidentOut(**data, intervals=IntervalsOut(**{n: getattr(intervals, n) for n in logic.INTERVAL_NAMES}))


class TimelineOut(BaseModel):
    at: datetime
    actor: str
    kind: str
    unit_id: str | None
    detail: str


class AssignmentOut(BaseModel):
    id: int
    incident_id: str
    unit_id: str
    status: str
    active: bool
    assigned_at: datetime
    assigned_by: str
    acknowledged_at: datetime | None
    en_route_at: datetime | None
    on_scene_at: datetime | None
    cleared_at: datetime | None
    eta_s: float | None


def _assignment_out(row: AssignmentRow) -> AssignmentOut:
    return AssignmentOut.model_validate(row, from_attributes=True)


class IncidentDetailOut(IncidentOut):
    timeline: list[TimelineOut]
    assignments: list[AssignmentOut]


class RecommendationOut(BaseModel):
    rank: int
    unit_id: str
    kind: str
    status: str
    eta_s: float
    stale: bool
    position_source: str
    missing_capabilities: list[str]
    route: dict[str, Any] | None = Field(description="GeoJSON Feature (LineString) from the unit to the incident")


class AssignIn(BaseModel):
    unit_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
    eta_s: float | None = Field(default=None, ge=0, description="the ETA the dispatcher saw, kept for review")


class NoteIn(BaseModel):
    note: str = Field(default="", max_length=4000)


class UnitIn(BaseModel):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$", examples=["RRG-12"])
    callsign: str | None = Field(default=None, max_length=32)
    kind: Literal["rapid_response_group", "patrol_car", "foot_inspector", "fire_engine", "ambulance", "drone"]
    crew: list[str] = Field(default_factory=list, max_length=12)
    capabilities: list[str] | None = Field(default=None, max_length=32, description="default: the kind's")
    home_lat: float = Field(ge=-90, le=90)
    home_lon: float = Field(ge=-180, le=180)
    on_shift: bool = False


class UnitOut(BaseModel):
    id: str
    callsign: str
    kind: str
    crew: list[str]
    capabilities: list[str]
    home_lat: float
    home_lon: float
    on_shift: bool
    status: str
    current_incident: str | None
    last_lat: float | None
    last_lon: float | None
    last_position_at: datetime | None
    stale: bool


def _unit_out(row: UnitRow, service: DispatchService) -> UnitOut:
    data = {name: getattr(row, name) for name in UnitOut.model_fields if name != "stale"}
    stale = row.on_shift and is_stale(row.last_position_at, service.clock(), service.tracking.stale_after)
    return UnitOut(**data, stale=stale)


class ShiftIn(BaseModel):
    on_shift: bool


class StatusIn(BaseModel):
    status: Literal["en_route", "on_scene", "returning", "available", "out_of_service"]


class FixIn(BaseModel):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    recorded_at: AwareDatetime | None = Field(default=None, description="when the fix was taken; default: now")
    speed_mps: float | None = Field(default=None, ge=0)
    heading_deg: float | None = Field(default=None, ge=0, le=360)
    altitude_m: float | None = None
    accuracy_m: float | None = Field(default=None, ge=0)
    battery_pct: float | None = Field(default=None, ge=0, le=100)


class Accepted(BaseModel):
    accepted: bool = True


class CoverageOut(BaseModel):
    minutes: float
    units: int
    share_of_road_length_reachable: float
    uncovered: dict[str, Any] = Field(description="GeoJSON FeatureCollection of roads no free unit reaches in time")


# -- incidents -------------------------------------------------------------------------------------


@router.post("/incidents", status_code=201)
async def create_incident(body: IncidentIn, services: ServicesDep, principal: Dispatching) -> IncidentOut:
    """A call or an officer's report becomes an incident (alarms arrive by `incident.requested`)."""
    try:
        row = await dispatch_service(services).create_incident(body.model_dump(), actor(principal))
    except DispatchError as exc:
        raise _problem(exc) from exc
    return _incident_out(row)


@router.get("/incidents")
async def open_incidents(services: ServicesDep, principal: Operations) -> list[IncidentOut]:
    """Open incidents, P1 first, oldest first within a priority."""
    return [_incident_out(r) for r in await dispatch_service(services).open_incidents()]


@router.get("/incidents/{incident_id}")
async def incident_detail(
    incident_id: IncidentId, request: Request, services: ServicesDep, principal: OperationsOrCrew
) -> IncidentDetailOut:
    """The incident, its timeline and its units; a crew sees only incidents its unit was sent to."""
    try:
        detail = await dispatch_service(services).get_incident(incident_id, actor(principal))
    except DispatchError as exc:
        raise _problem(exc) from exc
    await services.audit.append(principal.username, principal.role.value, "incident.read", f"incident:{incident_id}",
                                client=client_address(request))
    return IncidentDetailOut(
        **_incident_out(detail.incident).model_dump(),
        timeline=[TimelineOut.model_validate(t, from_attributes=True) for t in detail.timeline],
        assignments=[_assignment_out(a) for a in detail.assignments],
    )


@router.get("/incidents/{incident_id}/recommendations")
async def recommendations(
    incident_id: IncidentId, services: ServicesDep, principal: Dispatching,
    k: Annotated[int, Query(ge=1, le=20)] = 3, routes: bool = True,
) -> list[RecommendationOut]:
    """The best units by road travel time, with ETA in seconds and the route as GeoJSON."""
    try:
        found = await dispatch_service(services).recommend(incident_id, k=k, routes=routes)
    except DispatchError as exc:
        raise _problem(exc) from exc
    return [
        RecommendationOut(rank=r.recommendation.rank, unit_id=r.recommendation.unit_id, kind=r.recommendation.kind,
                          status=r.recommendation.status.value, eta_s=round(r.recommendation.eta_s, 1),
                          stale=r.recommendation.stale, position_source=r.recommendation.position_source.value,
                          missing_capabilities=sorted(r.recommendation.missing), route=r.route)
        for r in found
    ]


@router.post("/incidents/{incident_id}/assignments", status_code=201)
async def assign(incident_id: IncidentId, body: AssignIn, services: ServicesDep, principal: Dispatching
                 ) -> AssignmentOut:
    """Send a unit; a unit already on a job (or just taken by another dispatcher) answers 409."""
    try:
        row = await dispatch_service(services).assign(incident_id, body.unit_id, actor(principal), eta_s=body.eta_s)
    except DispatchError as exc:
        raise _problem(exc) from exc
    return _assignment_out(row)


@router.post("/incidents/{incident_id}/cancel")
async def cancel(incident_id: IncidentId, body: NoteIn, services: ServicesDep, principal: Dispatching
                 ) -> IncidentOut:
    try:
        return _incident_out(await dispatch_service(services).cancel(incident_id, actor(principal), body.note))
    except DispatchError as exc:
        raise _problem(exc) from exc


@router.post("/incidents/{incident_id}/close")
async def close(incident_id: IncidentId, body: NoteIn, services: ServicesDep, principal: Dispatching) -> IncidentOut:
    try:
        return _incident_out(await dispatch_service(services).close(incident_id, actor(principal), body.note))
    except DispatchError as exc:
        raise _problem(exc) from exc


# -- units -----------------------------------------------------------------------------------------


class IncidentNoteIn(BaseModel):
    note: str = Field(min_length=1, max_length=2000)


@router.post("/incidents/{incident_id}/notes", status_code=204)
async def add_note(incident_id: IncidentId, body: IncidentNoteIn, services: ServicesDep, principal: OperationsOrCrew
                   ) -> None:
    """A note on the incident's timeline; a crew may write only to incidents its unit was sent to."""
    try:
        await dispatch_service(services).add_note(incident_id, body.note.strip() or body.note, actor(principal))
    except DispatchError as exc:
        raise _problem(exc) from exc


@router.get("/units/{unit_id}/route")
async def unit_route(unit_id: UnitId, services: ServicesDep, principal: OperationsOrCrew) -> dict[str, Any] | None:
    """The road route (GeoJSON Feature) from the unit to its current incident, for the crew's tablet."""
    try:
        return await dispatch_service(services).unit_route(unit_id, actor(principal))
    except DispatchError as exc:
        raise _problem(exc) from exc


@router.post("/units", status_code=201)
async def create_unit(body: UnitIn, services: ServicesDep, principal: Supervision) -> UnitOut:
    service = dispatch_service(services)
    try:
        row = await service.units.create_unit(body.model_dump(), actor(principal))
    except DispatchError as exc:
        raise _problem(exc) from exc
    return _unit_out(row, service)


@router.get("/units")
async def list_units(services: ServicesDep, principal: Operations, on_shift: bool | None = None) -> list[UnitOut]:
    service = dispatch_service(services)
    return [_unit_out(r, service) for r in await service.units.list_units(on_shift=on_shift)]


@router.get("/units/{unit_id}")
async def get_unit(unit_id: UnitId, services: ServicesDep, principal: OperationsOrCrew) -> UnitOut:
    service = dispatch_service(services)
    try:
        return _unit_out(await service.units.get_unit(unit_id, actor(principal)), service)
    except DispatchError as exc:
        raise _problem(exc) from exc


@router.get("/units/{unit_id}/assignment")
async def current_assignment(
    unit_id: UnitId, services: ServicesDep, principal: OperationsOrCrew
) -> AssignmentOut | None:
    """The job the unit works now (null when free): what the crew's tablet shows."""
    try:
        row = await dispatch_service(services).units.current_assignment(unit_id, actor(principal))
    except DispatchError as exc:
        raise _problem(exc) from exc
    return None if row is None else _assignment_out(row)


@router.post("/units/{unit_id}/shift")
async def set_shift(unit_id: UnitId, body: ShiftIn, services: ServicesDep, principal: Crew) -> UnitOut:
    service = dispatch_service(services)
    try:
        return _unit_out(await service.units.set_shift(unit_id, body.on_shift, actor(principal)), service)
    except DispatchError as exc:
        raise _problem(exc) from exc


@router.post("/units/{unit_id}/status")
async def report_status(unit_id: UnitId, body: StatusIn, services: ServicesDep, principal: Crew) -> UnitOut:
    """En route, on scene, returning, available, out of service (checked against the transition table)."""
    service = dispatch_service(services)
    try:
        row = await service.units.report_status(unit_id, UnitStatus(body.status), actor(principal))
    except DispatchError as exc:
        raise _problem(exc) from exc
    return _unit_out(row, service)


@router.post("/units/{unit_id}/acknowledge")
async def acknowledge(unit_id: UnitId, services: ServicesDep, principal: Crew) -> AssignmentOut:
    """The crew confirms it received its current job."""
    try:
        return _assignment_out(await dispatch_service(services).units.acknowledge(unit_id, actor(principal)))
    except DispatchError as exc:
        raise _problem(exc) from exc


@router.post("/units/{unit_id}/positions", status_code=202)
async def report_position(unit_id: UnitId, body: FixIn, services: ServicesDep, principal: Crew) -> Accepted:
    """A GPS fix from the crew's tablet (its own unit only) or a dispatcher; stored once on the log."""
    service = dispatch_service(services)
    transport = "tablet" if principal.role is Role.FIELD_UNIT else "json"
    fix = PositionReported(unit_id=unit_id, transport=transport,
                           **body.model_dump(exclude={"recorded_at"}),
                           recorded_at=body.recorded_at or service.clock())
    try:
        await service.units.report_position(fix, actor(principal))
    except DispatchError as exc:
        raise _problem(exc) from exc
    return Accepted()


# -- reports ---------------------------------------------------------------------------------------


class StatisticsOut(BaseModel):
    since: datetime
    until: datetime
    incidents: int
    by_priority: list[dict[str, Any]]
    by_district: list[dict[str, Any]]
    by_unit: list[dict[str, Any]]
    compliance: list[dict[str, Any]]


def _groups(groups: list[statistics.GroupSummary]) -> list[dict[str, Any]]:
    return [
        {"group": g.group, "incidents": g.incidents,
         "intervals": {name: {"count": s.count, "p50": s.p50, "p90": s.p90} for name, s in g.intervals.items()}}
        for g in groups
    ]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@router.get("/dispatch/statistics")
async def dispatch_statistics(
    services: ServicesDep, principal: Supervision, since: datetime | None = None, until: datetime | None = None,
) -> StatisticsOut:
    """Response-interval p50/p90 per priority, district and unit, and the compliance table (default: 30 days)."""
    service = dispatch_service(services)
    end = _aware(until) if until is not None else service.clock()
    start = _aware(since) if since is not None else end - timedelta(days=30)
    found = await service.statistics(start, end)
    return StatisticsOut(
        since=start, until=end, incidents=found.incidents, by_priority=_groups(found.by_priority),
        by_district=_groups(found.by_district), by_unit=_groups(found.by_unit),
        compliance=[
            {"target": row.target.name, "priority": int(row.target.priority), "interval": row.target.interval,
             "limit_s": row.target.limit_s, "share": row.target.share, "incidents": row.incidents,
             "within": row.within, "achieved": row.achieved, "met": row.met}
            for row in found.compliance
        ],
    )


@router.get("/dispatch/coverage")
async def dispatch_coverage(
    services: ServicesDep, principal: Operations, minutes: Annotated[float, Query(gt=0, le=60)],
) -> CoverageOut:
    """Which share of the roads the free units on shift reach within `minutes`, and the gaps as GeoJSON."""
    try:
        found = await dispatch_service(services).coverage(minutes)
    except DispatchError as exc:
        raise _problem(exc) from exc
    return CoverageOut(minutes=found.minutes, units=found.units, share_of_road_length_reachable=found.share,
                       uncovered=found.uncovered)
