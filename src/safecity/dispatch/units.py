"""The unit side of dispatch: the unit register, shifts, status reports, acknowledgements, positions.

A crew's tablet (role field_unit) acts for its own unit only (`logic.check_crew`); dispatchers act
for any unit. A status report may move the unit's assignment and its incident along: en route and
on scene become the incident's milestones, and the last crew clearing the scene closes it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from safecity.bus import EventLog
from safecity.dispatch import logic
from safecity.dispatch.catalogue import UNIT_KINDS
from safecity.dispatch.events import (
    AssignmentAcknowledged,
    PositionReported,
    UnitChanged,
    UnitStatusChanged,
)
from safecity.dispatch.logic import Actor, DispatchStateError, UnitExists, UnitStatus, check_crew
from safecity.dispatch.model import AssignmentRow, IncidentRow, UnitRow
from safecity.dispatch.rows import (
    add_timeline,
    apply_assignment,
    assignment_of,
    incident_changed,
    incident_of,
    incident_row,
    publish,
    save_incident,
    save_unit,
    unit_of,
    unit_row,
)
from safecity.dispatch.tracking import Tracking
from safecity.events import Payload
from safecity.security.audit import AuditLog
from safecity.store.engine import Database


class UnitDesk:
    def __init__(
        self, db: Database, events: EventLog, audit: AuditLog, clock: Callable[[], datetime], tracking: Tracking
    ) -> None:
        self.db = db
        self.events = events
        self.audit = audit
        self.clock = clock
        self.tracking = tracking

    # -- the register ------------------------------------------------------------------------------
    async def create_unit(self, fields: dict[str, Any], actor: Actor) -> UnitRow:
        now = self.clock()
        kind = UNIT_KINDS.get(fields["kind"])
        if kind is None:
            raise logic.DispatchError(f"unknown unit kind {fields['kind']!r}")
        capabilities = fields.get("capabilities")
        unit_id = str(fields["id"])
        row = UnitRow(
            id=unit_id, callsign=fields.get("callsign") or unit_id, kind=kind.code, crew=list(fields.get("crew") or []),
            capabilities=sorted(kind.capabilities if capabilities is None else capabilities),
            home_lat=fields["home_lat"], home_lon=fields["home_lon"], on_shift=bool(fields.get("on_shift")),
            status=UnitStatus.AVAILABLE.value, created_at=now, updated_at=now, version=1,
        )
        try:
            async with self.db.session() as session:
                if await session.get(UnitRow, unit_id) is not None:
                    raise UnitExists(f"unit {unit_id} exists")
                session.add(row)
                await self.audit.append(actor.name, actor.role, "unit.create", f"unit:{unit_id}",
                                        detail={"kind": row.kind, "capabilities": row.capabilities}, session=session)
        except IntegrityError as exc:
            raise UnitExists(f"unit {unit_id} exists") from exc
        await publish(self.events, [UnitChanged(unit_id=unit_id, change="created", status=row.status,
                                                on_shift=row.on_shift, actor=actor.name)], now)
        return row

    async def list_units(self, *, on_shift: bool | None = None) -> list[UnitRow]:
        async with self.db.session() as session:
            query = select(UnitRow).order_by(UnitRow.id)
            if on_shift is not None:
                query = query.where(UnitRow.on_shift.is_(on_shift))
            return list(await session.scalars(query))

    async def get_unit(self, unit_id: str, actor: Actor) -> UnitRow:
        async with self.db.session() as session:
            row = await unit_row(session, unit_id)
        check_crew(actor, unit_id)
        return row

    async def current_assignment(self, unit_id: str, actor: Actor) -> AssignmentRow | None:
        """The job the unit works now, if any (what the tablet shows)."""
        async with self.db.session() as session:
            await unit_row(session, unit_id)
            check_crew(actor, unit_id)
            found: AssignmentRow | None = await session.scalar(select(AssignmentRow).where(
                AssignmentRow.unit_id == unit_id, AssignmentRow.active.is_(True)))
            return found

    # -- the crew's commands -----------------------------------------------------------------------
    async def set_shift(self, unit_id: str, on_shift: bool, actor: Actor) -> UnitRow:
        now = self.clock()
        async with self.db.session() as session:
            row = await unit_row(session, unit_id)
            check_crew(actor, unit_id)
            await save_unit(session, row, logic.set_shift(unit_of(row), on_shift), now)
            await self.audit.append(actor.name, actor.role, "unit.shift", f"unit:{unit_id}",
                                    detail={"on_shift": on_shift}, session=session)
        await publish(self.events, [UnitChanged(unit_id=unit_id, change="shift_on" if on_shift else "shift_off",
                                                status=row.status, on_shift=row.on_shift, actor=actor.name)], now)
        return row

    async def report_status(self, unit_id: str, status: UnitStatus, actor: Actor) -> UnitRow:
        """En route, on scene, returning, available, out of service: validated by the transition table."""
        now = self.clock()
        payloads: list[Payload] = []
        async with self.db.session() as session:
            row = await unit_row(session, unit_id)
            check_crew(actor, unit_id)
            assignment: AssignmentRow | None = None
            incident: IncidentRow | None = None
            others = 0
            if row.current_incident is not None:
                assignment = await session.scalar(select(AssignmentRow).where(
                    AssignmentRow.unit_id == unit_id, AssignmentRow.active.is_(True)))
                incident = await incident_row(session, row.current_incident)
                others = int(await session.scalar(select(func.count()).select_from(AssignmentRow).where(
                    AssignmentRow.incident_id == incident.id, AssignmentRow.active.is_(True),
                    AssignmentRow.unit_id != unit_id)) or 0)
            reported = logic.report_status(
                unit_of(row), status, now, actor.name,
                assignment=assignment_of(assignment) if assignment is not None else None,
                incident=incident_of(incident) if incident is not None else None, others_active=others,
            )
            previous = row.status
            await save_unit(session, row, reported.unit, now)
            if assignment is not None and incident is not None and reported.assignment is not None:
                apply_assignment(assignment, reported.assignment)
                if reported.incident is not None and reported.incident_changed:
                    await save_incident(session, incident, reported.incident)
                at = max(now, reported.assignment.assigned_at)
                add_timeline(session, incident.id, at, actor.name, reported.assignment.status.value, unit_id)
                payloads.append(incident_changed(incident, reported.assignment.status.value, actor.name, unit_id))
                if incident.status == logic.IncidentStatus.CLOSED.value:
                    add_timeline(session, incident.id, at, actor.name, "closed", unit_id, "the last unit cleared")
                    payloads.append(incident_changed(incident, "closed", actor.name, unit_id))
            await self.audit.append(actor.name, actor.role, "unit.status", f"unit:{unit_id}",
                                    detail={"from": previous, "to": status.value,
                                            "incident": incident.id if incident is not None else None},
                                    session=session)
        payloads.insert(0, UnitStatusChanged(unit_id=unit_id, status=row.status, previous=previous,
                                             incident_id=incident.id if incident is not None else None,
                                             actor=actor.name))
        await publish(self.events, payloads, now)
        return row

    async def acknowledge(self, unit_id: str, actor: Actor) -> AssignmentRow:
        """The crew confirms it received its current job."""
        now = self.clock()
        async with self.db.session() as session:
            await unit_row(session, unit_id)
            check_crew(actor, unit_id)
            assignment = await session.scalar(select(AssignmentRow).where(
                AssignmentRow.unit_id == unit_id, AssignmentRow.active.is_(True)))
            if assignment is None:
                raise DispatchStateError(f"unit {unit_id} has no job to acknowledge")
            first = assignment.acknowledged_at is None
            apply_assignment(assignment, logic.acknowledge(assignment_of(assignment), now))
            if first:
                add_timeline(session, assignment.incident_id, now, actor.name, "acknowledged", unit_id)
                await self.audit.append(actor.name, actor.role, "unit.acknowledge", f"unit:{unit_id}",
                                        detail={"incident": assignment.incident_id}, session=session)
        if first:
            await publish(self.events, [AssignmentAcknowledged(unit_id=unit_id, incident_id=assignment.incident_id,
                                                               actor=actor.name)], now)
        return assignment

    async def report_position(self, fix: PositionReported, actor: Actor) -> None:
        """A fix from the tablet or a dispatcher's manual placement: onto the log, stored by the worker."""
        async with self.db.session() as session:
            await unit_row(session, fix.unit_id)
        check_crew(actor, fix.unit_id)
        await self.tracking.report(fix)
