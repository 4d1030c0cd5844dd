"""Rows ↔ the pure values of `logic.py`, and the optimistic writes that keep two dispatchers apart."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from safecity.bus import EventLog
from safecity.dispatch.events import IncidentChanged
from safecity.dispatch.logic import (
    Assignment,
    AssignmentStatus,
    ConcurrentChange,
    Incident,
    IncidentPriority,
    IncidentStatus,
    UnitState,
    UnitStatus,
    UnitUnavailable,
    UnknownIncident,
    UnknownUnit,
)
from safecity.dispatch.model import AssignmentRow, IncidentRow, IncidentTimelineRow, UnitRow
from safecity.events import Event, Location, Payload

_INCIDENT_STAMPS = (
    "dispatched_at", "dispatched_by", "en_route_at", "en_route_by", "on_scene_at", "on_scene_by",
    "cleared_at", "cleared_by", "closed_at", "closed_by",
)  # fmt: skip


def incident_of(row: IncidentRow) -> Incident:
    return Incident(
        id=row.id, type=row.type, priority=IncidentPriority(row.priority), status=IncidentStatus(row.status),
        created_at=row.created_at, created_by=row.created_by,
        **{name: getattr(row, name) for name in _INCIDENT_STAMPS},
    )


def unit_of(row: UnitRow) -> UnitState:
    return UnitState(row.id, UnitStatus(row.status), row.on_shift, row.current_incident)


def assignment_of(row: AssignmentRow) -> Assignment:
    return Assignment(
        incident_id=row.incident_id, unit_id=row.unit_id, status=AssignmentStatus(row.status),
        assigned_at=row.assigned_at, assigned_by=row.assigned_by, acknowledged_at=row.acknowledged_at,
        en_route_at=row.en_route_at, on_scene_at=row.on_scene_at, cleared_at=row.cleared_at,
    )


async def save_incident(session: AsyncSession, row: IncidentRow, incident: Incident) -> None:
    """Write the new state only if nobody changed the incident since we read it."""
    values: dict[str, Any] = {name: getattr(incident, name) for name in _INCIDENT_STAMPS}
    values.update(status=incident.status.value, priority=int(incident.priority))
    if not await _compare_and_set(session, IncidentRow, row.id, row.version, values):
        raise ConcurrentChange(f"incident {row.id} changed meanwhile; reload and retry")
    await session.refresh(row)


async def save_unit(
    session: AsyncSession, row: UnitRow, unit: UnitState, now: datetime, *, assigning: bool = False
) -> None:
    """Write the unit's new status only if nobody changed it since we read it (two dispatchers, one crew)."""
    values: dict[str, Any] = {"status": unit.status.value, "on_shift": unit.on_shift,
                              "current_incident": unit.incident_id, "updated_at": now}
    if not await _compare_and_set(session, UnitRow, row.id, row.version, values):
        if assigning:
            raise UnitUnavailable(f"unit {row.id} was just assigned or changed by someone else")
        raise ConcurrentChange(f"unit {row.id} changed meanwhile; reload and retry")
    await session.refresh(row)


def apply_assignment(row: AssignmentRow, assignment: Assignment) -> None:
    row.status = assignment.status.value
    row.active = assignment.active
    row.acknowledged_at = assignment.acknowledged_at
    row.en_route_at = assignment.en_route_at
    row.on_scene_at = assignment.on_scene_at
    row.cleared_at = assignment.cleared_at


async def _compare_and_set(
    session: AsyncSession, table: type[IncidentRow] | type[UnitRow], key: str, version: int, values: dict[str, Any]
) -> bool:
    result = await session.execute(
        update(table).where(table.id == key, table.version == version)
        .values(**values, version=version + 1).execution_options(synchronize_session=False)
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def incident_changed(
    row: IncidentRow, change: str, actor: str | None = None, unit_id: str | None = None
) -> IncidentChanged:
    return IncidentChanged(
        incident_id=row.id, change=change, status=row.status, type=row.type, priority=row.priority, lat=row.lat,
        lon=row.lon, address=row.address, source=row.source, source_ref=row.source_ref, unit_id=unit_id,
        actor=actor,
    )


async def incident_row(session: AsyncSession, incident_id: str) -> IncidentRow:
    row = await session.get(IncidentRow, incident_id)
    if row is None:
        raise UnknownIncident(f"no incident {incident_id}")
    return row


async def unit_row(session: AsyncSession, unit_id: str) -> UnitRow:
    row = await session.get(UnitRow, unit_id)
    if row is None:
        raise UnknownUnit(f"no unit {unit_id}")
    return row


def add_timeline(
    session: AsyncSession, incident_id: str, at: datetime, actor: str, kind: str, unit_id: str | None = None,
    detail: str = "",
) -> None:
    session.add(IncidentTimelineRow(incident_id=incident_id, at=at, actor=actor, kind=kind, unit_id=unit_id,
                                    detail=detail))


async def publish(
    events: EventLog, payloads: Sequence[Payload], now: datetime, location: Location | None = None
) -> None:
    """Tell live views what committed (after the transaction: an event never announces a rollback)."""
    if payloads:
        await events.append([Event.of(p, source="dispatch", occurred_at=now, location=location) for p in payloads])
