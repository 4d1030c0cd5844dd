"""Pure rules of dispatch: the incident lifecycle, unit statuses, assignments, response intervals.

No I/O and no clock reads: callers pass `now` and the actor. The service loads rows, asks these
functions what changes, and writes the answer back under an optimistic version check. The state
machines are tables (`INCIDENT_TRANSITIONS`, `UNIT_TRANSITIONS`, `STATUS_EFFECTS`), not if-chains,
so a reader sees every allowed move in one place and the property tests can walk them.

An incident records *first* times, as NFPA 1221/1710 count them: dispatched = first unit assigned,
en route = first unit rolling, on scene = first unit arriving. A second unit reaching a milestone
the incident already passed changes the assignment, not the incident.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Any

# -- errors ------------------------------------------------------------------------------------


class DispatchError(Exception):
    """Base of the dispatch domain's errors."""


class DispatchStateError(DispatchError):
    """The command does not fit the current state of the incident, unit or assignment."""


class ConcurrentChange(DispatchStateError):
    """Somebody else changed the record between our read and our write; reload and retry."""


class UnitUnavailable(DispatchStateError):
    """The unit cannot take an assignment now (busy, off shift, out of service, already assigned)."""


class UnknownIncident(DispatchError):
    pass


class UnknownUnit(DispatchError):
    pass


class UnitExists(DispatchError):
    pass


class UnknownIncidentType(DispatchError):
    pass


class NotYourUnit(DispatchError):
    """A field unit tried to act for a unit it does not crew."""


class RoutingUnavailable(DispatchError):
    """No road graph, or the incident cannot be placed on it: no recommendation is possible."""


# -- priorities --------------------------------------------------------------------------------


class IncidentPriority(IntEnum):
    """P1 is the most urgent, so sorting by priority puts life safety first."""

    P1 = 1  # life safety: immediate response, may be auto-assigned
    P2 = 2  # property, urgent
    P3 = 3  # non-urgent
    P4 = 4  # administrative, scheduled


class IncidentSource(StrEnum):
    ALARM = "alarm"
    SOS = "sos"
    CAMERA = "camera"
    SENSOR = "sensor"
    PHONE = "phone"
    OFFICER = "officer"


# -- the incident lifecycle --------------------------------------------------------------------


class IncidentStatus(StrEnum):
    NEW = "new"
    DISPATCHED = "dispatched"
    EN_ROUTE = "en_route"
    ON_SCENE = "on_scene"
    CLOSED = "closed"
    CANCELLED = "cancelled"


INCIDENT_TRANSITIONS: dict[IncidentStatus, frozenset[IncidentStatus]] = {
    IncidentStatus.NEW: frozenset({IncidentStatus.DISPATCHED, IncidentStatus.CANCELLED}),
    # a unit may report on scene without having reported en route (it was passing by)
    IncidentStatus.DISPATCHED: frozenset({IncidentStatus.EN_ROUTE, IncidentStatus.ON_SCENE, IncidentStatus.CANCELLED}),
    IncidentStatus.EN_ROUTE: frozenset({IncidentStatus.ON_SCENE, IncidentStatus.CANCELLED}),
    IncidentStatus.ON_SCENE: frozenset({IncidentStatus.CLOSED}),
    IncidentStatus.CLOSED: frozenset(),
    IncidentStatus.CANCELLED: frozenset(),
}

OPEN_INCIDENT_STATUSES = frozenset(s for s, nxt in INCIDENT_TRANSITIONS.items() if nxt)
# milestone order: reaching an earlier milestone again (a second unit) leaves the incident alone
_MILESTONE_RANK = {
    IncidentStatus.NEW: 0,
    IncidentStatus.DISPATCHED: 1,
    IncidentStatus.EN_ROUTE: 2,
    IncidentStatus.ON_SCENE: 3,
}
# which timestamp/actor pair each status writes
_STAMP = {
    IncidentStatus.DISPATCHED: "dispatched",
    IncidentStatus.EN_ROUTE: "en_route",
    IncidentStatus.ON_SCENE: "on_scene",
    IncidentStatus.CLOSED: "closed",
    IncidentStatus.CANCELLED: "closed",
}


@dataclass(frozen=True, slots=True)
class Incident:
    """An incident as the rules see it: what, how urgent, where in its lifecycle, who moved it."""

    id: str
    type: str
    priority: IncidentPriority
    status: IncidentStatus
    created_at: datetime
    created_by: str
    dispatched_at: datetime | None = None
    dispatched_by: str | None = None
    en_route_at: datetime | None = None
    en_route_by: str | None = None
    on_scene_at: datetime | None = None
    on_scene_by: str | None = None
    cleared_at: datetime | None = None
    cleared_by: str | None = None
    closed_at: datetime | None = None
    closed_by: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_INCIDENT_STATUSES

    def last_change_at(self) -> datetime:
        stamps = (self.created_at, self.dispatched_at, self.en_route_at, self.on_scene_at, self.cleared_at,
                  self.closed_at)
        return max(s for s in stamps if s is not None)


def new_incident(
    incident_id: str, type_: str, priority: IncidentPriority, now: datetime, actor: str
) -> Incident:
    return Incident(incident_id, type_, priority, IncidentStatus.NEW, now, actor)


def _move(incident: Incident, to: IncidentStatus, now: datetime, actor: str, **extra: Any) -> Incident:
    if to not in INCIDENT_TRANSITIONS[incident.status]:
        raise DispatchStateError(f"incident {incident.id} is {incident.status}: it cannot become {to}")
    # never earlier than what is already recorded, so every interval is >= 0 even with skewed clocks
    at = max(now, incident.last_change_at())
    stamp = _STAMP[to]
    changes: dict[str, Any] = {"status": to, f"{stamp}_at": at, f"{stamp}_by": actor, **extra}
    return replace(incident, **changes)


def reach_milestone(incident: Incident, milestone: IncidentStatus, now: datetime, actor: str) -> Incident:
    """A unit was dispatched, went en route or arrived: record it if it is the incident's first."""
    if milestone not in _MILESTONE_RANK or milestone is IncidentStatus.NEW:
        raise ValueError(f"{milestone} is not a unit milestone")
    if not incident.is_open:
        raise DispatchStateError(f"incident {incident.id} is {incident.status}")
    if _MILESTONE_RANK[milestone] <= _MILESTONE_RANK[incident.status]:
        return incident
    return _move(incident, milestone, now, actor)


def close_incident(incident: Incident, now: datetime, actor: str) -> Incident:
    """The job is done: only after a unit was on scene (before that it is a cancellation)."""
    at = max(now, incident.last_change_at())
    return _move(incident, IncidentStatus.CLOSED, now, actor, cleared_at=incident.cleared_at or at,
                 cleared_by=incident.cleared_by or actor)


def cancel_incident(incident: Incident, now: datetime, actor: str) -> Incident:
    return _move(incident, IncidentStatus.CANCELLED, now, actor)


def reprioritize(incident: Incident, priority: IncidentPriority) -> Incident:
    if not incident.is_open:
        raise DispatchStateError(f"incident {incident.id} is {incident.status}")
    return replace(incident, priority=priority)


# -- response intervals ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResponseIntervals:
    """The standard intervals, seconds; None where a milestone was not reached."""

    call_processing_s: float | None  # created → dispatched
    turnout_s: float | None  # dispatched → en route
    travel_s: float | None  # en route → on scene
    on_scene_s: float | None  # on scene → cleared
    total_response_s: float | None  # created → on scene


INTERVAL_NAMES = ("call_processing_s", "turnout_s", "travel_s", "on_scene_s", "total_response_s")


def _between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def response_intervals(
    created_at: datetime,
    dispatched_at: datetime | None,
    en_route_at: datetime | None,
    on_scene_at: datetime | None,
    cleared_at: datetime | None,
) -> ResponseIntervals:
    return ResponseIntervals(
        call_processing_s=_between(created_at, dispatched_at),
        turnout_s=_between(dispatched_at, en_route_at),
        travel_s=_between(en_route_at, on_scene_at),
        on_scene_s=_between(on_scene_at, cleared_at),
        total_response_s=_between(created_at, on_scene_at),
    )


def incident_intervals(incident: Incident) -> ResponseIntervals:
    return response_intervals(incident.created_at, incident.dispatched_at, incident.en_route_at,
                              incident.on_scene_at, incident.cleared_at)


# -- units -------------------------------------------------------------------------------------


class UnitStatus(StrEnum):
    AVAILABLE = "available"
    DISPATCHED = "dispatched"
    EN_ROUTE = "en_route"
    ON_SCENE = "on_scene"
    RETURNING = "returning"
    OUT_OF_SERVICE = "out_of_service"


UNIT_TRANSITIONS: dict[UnitStatus, frozenset[UnitStatus]] = {
    UnitStatus.AVAILABLE: frozenset({UnitStatus.DISPATCHED, UnitStatus.OUT_OF_SERVICE}),
    UnitStatus.DISPATCHED: frozenset({UnitStatus.EN_ROUTE, UnitStatus.ON_SCENE, UnitStatus.AVAILABLE}),
    UnitStatus.EN_ROUTE: frozenset({UnitStatus.ON_SCENE, UnitStatus.AVAILABLE}),
    UnitStatus.ON_SCENE: frozenset({UnitStatus.RETURNING, UnitStatus.AVAILABLE}),
    UnitStatus.RETURNING: frozenset({UnitStatus.AVAILABLE, UnitStatus.DISPATCHED, UnitStatus.OUT_OF_SERVICE}),
    UnitStatus.OUT_OF_SERVICE: frozenset({UnitStatus.AVAILABLE}),
}

ASSIGNABLE = frozenset({UnitStatus.AVAILABLE, UnitStatus.RETURNING})
"""A returning crew is back in service: it may be sent straight to the next job."""

COMMITTED = frozenset({UnitStatus.DISPATCHED, UnitStatus.EN_ROUTE, UnitStatus.ON_SCENE})
"""Statuses that mean the unit works an incident (it has exactly one active assignment)."""

ASSIGNMENT_ONLY = frozenset({UnitStatus.DISPATCHED})
"""Statuses a unit enters only by being assigned, never by a status report."""


class AssignmentStatus(StrEnum):
    ASSIGNED = "assigned"
    EN_ROUTE = "en_route"
    ON_SCENE = "on_scene"
    CLEARED = "cleared"  # the unit finished its part on scene
    WITHDRAWN = "withdrawn"  # the unit was stood down before arriving
    CANCELLED = "cancelled"  # the incident was cancelled


ACTIVE_ASSIGNMENT = frozenset({AssignmentStatus.ASSIGNED, AssignmentStatus.EN_ROUTE, AssignmentStatus.ON_SCENE})

# What a unit's status report means for its assignment: (from, to) → the assignment's new status.
STATUS_EFFECTS: dict[tuple[UnitStatus, UnitStatus], AssignmentStatus] = {
    (UnitStatus.DISPATCHED, UnitStatus.EN_ROUTE): AssignmentStatus.EN_ROUTE,
    (UnitStatus.DISPATCHED, UnitStatus.ON_SCENE): AssignmentStatus.ON_SCENE,
    (UnitStatus.EN_ROUTE, UnitStatus.ON_SCENE): AssignmentStatus.ON_SCENE,
    (UnitStatus.ON_SCENE, UnitStatus.RETURNING): AssignmentStatus.CLEARED,
    (UnitStatus.ON_SCENE, UnitStatus.AVAILABLE): AssignmentStatus.CLEARED,
    (UnitStatus.DISPATCHED, UnitStatus.AVAILABLE): AssignmentStatus.WITHDRAWN,
    (UnitStatus.EN_ROUTE, UnitStatus.AVAILABLE): AssignmentStatus.WITHDRAWN,
}
# the incident milestone an assignment status reports
_MILESTONE_OF = {
    AssignmentStatus.EN_ROUTE: IncidentStatus.EN_ROUTE,
    AssignmentStatus.ON_SCENE: IncidentStatus.ON_SCENE,
}
_ASSIGNMENT_STAMP = {
    AssignmentStatus.EN_ROUTE: "en_route_at",
    AssignmentStatus.ON_SCENE: "on_scene_at",
    AssignmentStatus.CLEARED: "cleared_at",
    AssignmentStatus.WITHDRAWN: "cleared_at",
    AssignmentStatus.CANCELLED: "cleared_at",
}


@dataclass(frozen=True, slots=True)
class UnitState:
    id: str
    status: UnitStatus
    on_shift: bool
    incident_id: str | None = None


@dataclass(frozen=True, slots=True)
class Assignment:
    """One unit's part in one incident, with its own milestones (for per-unit intervals)."""

    incident_id: str
    unit_id: str
    status: AssignmentStatus
    assigned_at: datetime
    assigned_by: str
    acknowledged_at: datetime | None = None
    en_route_at: datetime | None = None
    on_scene_at: datetime | None = None
    cleared_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_ASSIGNMENT


def check_unit_transition(unit: UnitState, to: UnitStatus) -> None:
    if to not in UNIT_TRANSITIONS[unit.status]:
        raise DispatchStateError(f"unit {unit.id} is {unit.status}: it cannot become {to}")


def set_shift(unit: UnitState, on_shift: bool) -> UnitState:
    """A crew may sign off only when it has no job; signing on brings it into service."""
    if not on_shift and unit.status in COMMITTED:
        raise DispatchStateError(f"unit {unit.id} is {unit.status}: it cannot go off shift now")
    status = UnitStatus.AVAILABLE if on_shift and unit.status is UnitStatus.OUT_OF_SERVICE else unit.status
    return replace(unit, on_shift=on_shift, status=status)


@dataclass(frozen=True, slots=True)
class Assigned:
    incident: Incident
    unit: UnitState
    assignment: Assignment


def assign(incident: Incident, unit: UnitState, now: datetime, actor: str) -> Assigned:
    """Send a unit to an incident; the unit must be on shift, in service and without a job."""
    if not incident.is_open:
        raise DispatchStateError(f"incident {incident.id} is {incident.status}")
    if not unit.on_shift:
        raise UnitUnavailable(f"unit {unit.id} is off shift")
    if unit.status not in ASSIGNABLE or unit.incident_id is not None:
        raise UnitUnavailable(f"unit {unit.id} is {unit.status}")
    check_unit_transition(unit, UnitStatus.DISPATCHED)
    updated = reach_milestone(incident, IncidentStatus.DISPATCHED, now, actor)
    at = max(now, incident.last_change_at())
    return Assigned(
        updated,
        replace(unit, status=UnitStatus.DISPATCHED, incident_id=incident.id),
        Assignment(incident.id, unit.id, AssignmentStatus.ASSIGNED, at, actor),
    )


def acknowledge(assignment: Assignment, now: datetime) -> Assignment:
    """The crew confirms it got the job (once; a repeated tap changes nothing)."""
    if not assignment.active:
        raise DispatchStateError(f"the assignment of {assignment.unit_id} is {assignment.status}")
    if assignment.acknowledged_at is not None:
        return assignment
    return replace(assignment, acknowledged_at=max(now, assignment.assigned_at))


def _last_stamp(assignment: Assignment) -> datetime:
    stamps = (assignment.assigned_at, assignment.acknowledged_at, assignment.en_route_at, assignment.on_scene_at,
              assignment.cleared_at)
    return max(s for s in stamps if s is not None)


@dataclass(frozen=True, slots=True)
class StatusReported:
    """What a unit's status report changed: the unit, its assignment, and the incident (if any)."""

    unit: UnitState
    assignment: Assignment | None
    incident: Incident | None
    incident_changed: bool


def report_status(
    unit: UnitState,
    to: UnitStatus,
    now: datetime,
    actor: str,
    *,
    assignment: Assignment | None = None,
    incident: Incident | None = None,
    others_active: int = 0,
) -> StatusReported:
    """Apply a unit's status report (en route, on scene, returning, …) to its assignment and incident.

    `others_active` counts the incident's other active assignments: when the last unit clears the
    scene, the incident is closed (cleared and closed by that crew).
    """
    if to in ASSIGNMENT_ONLY:
        raise DispatchStateError(f"unit {unit.id}: {to} is set by assigning the unit, not by a status report")
    check_unit_transition(unit, to)
    effect = STATUS_EFFECTS.get((unit.status, to))
    if effect is None:
        if unit.status in COMMITTED:  # pragma: no cover - the table covers every move out of COMMITTED
            raise DispatchStateError(f"unit {unit.id}: no rule for {unit.status} → {to}")
        return StatusReported(replace(unit, status=to), None, None, False)
    if assignment is None or incident is None or not assignment.active:
        raise DispatchStateError(f"unit {unit.id} is {unit.status} but has no active assignment")
    at = max(now, _last_stamp(assignment))
    changes: dict[str, Any] = {"status": effect, _ASSIGNMENT_STAMP[effect]: at}
    new_assignment = replace(assignment, **changes)
    new_incident = incident
    milestone = _MILESTONE_OF.get(effect)
    ended = effect not in ACTIVE_ASSIGNMENT
    if milestone is not None:
        new_incident = reach_milestone(incident, milestone, at, actor)
    elif ended and others_active == 0 and incident.status is IncidentStatus.ON_SCENE:
        # the last crew left the scene (or was stood down after others arrived): the job is done
        new_incident = close_incident(incident, at, actor)
    new_unit = replace(unit, status=to, incident_id=None if ended else unit.incident_id)
    return StatusReported(new_unit, new_assignment, new_incident, new_incident != incident)


@dataclass(frozen=True, slots=True)
class Released:
    unit: UnitState
    assignment: Assignment


def release_units(
    incident: Incident, pairs: Iterable[tuple[UnitState, Assignment]], now: datetime
) -> list[Released]:
    """An incident closed or was cancelled: every unit still on it is back in service."""
    if incident.is_open:
        raise DispatchStateError(f"incident {incident.id} is still {incident.status}")
    closed = incident.status is IncidentStatus.CLOSED
    out: list[Released] = []
    for unit, assignment in pairs:
        if not assignment.active:
            continue
        if not closed:
            status = AssignmentStatus.CANCELLED
        elif assignment.status is AssignmentStatus.ON_SCENE:
            status = AssignmentStatus.CLEARED
        else:
            status = AssignmentStatus.WITHDRAWN  # still on the way when the job was closed
        at = max(now, _last_stamp(assignment))
        out.append(Released(
            replace(unit, status=UnitStatus.AVAILABLE, incident_id=None),
            replace(assignment, status=status, cleared_at=at),
        ))
    return out


def assignment_intervals(assignment: Assignment, incident_created_at: datetime) -> ResponseIntervals:
    """One unit's intervals: its own turnout and travel, measured from its own assignment."""
    on_scene_end = assignment.cleared_at if assignment.on_scene_at is not None else None
    return ResponseIntervals(
        call_processing_s=_between(incident_created_at, assignment.assigned_at),
        turnout_s=_between(assignment.assigned_at, assignment.en_route_at),
        travel_s=_between(assignment.en_route_at, assignment.on_scene_at),
        on_scene_s=_between(assignment.on_scene_at, on_scene_end),
        total_response_s=_between(incident_created_at, assignment.on_scene_at),
    )


# -- who acts ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Actor:
    """Who issues a command: a user (with role, and for a crew's tablet the unit it is bound to)."""

    name: str
    role: str
    unit_id: str | None = None

    @property
    def is_field_unit(self) -> bool:
        return self.role == FIELD_UNIT_ROLE


FIELD_UNIT_ROLE = "field_unit"
SYSTEM = Actor("system", "system")


def check_crew(actor: Actor, unit_id: str) -> None:
    """A crew's tablet speaks for its own unit only; dispatchers speak for any unit."""
    if actor.is_field_unit and actor.unit_id != unit_id:
        raise NotYourUnit(f"{actor.name} crews {actor.unit_id or 'no unit'}, not {unit_id}")
