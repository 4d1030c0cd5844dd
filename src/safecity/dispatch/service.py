"""The dispatch service: incidents from requests and calls, recommendation, assignment, the worker.

Every command reads rows, asks `logic.py` what changes, and writes the answer with an optimistic
version check (`rows.save_*`), its timeline entry and its audit record in one transaction; the
events that tell live views follow once it committed. The unit side (register, shifts, status
reports, acknowledgements, positions) is `self.units` (`units.py`).

The worker consumes two families: `incident` (an `incident.requested` from the alarm centre
becomes an incident, once, however often it is delivered; a P1 may be assigned at once) and
`unit` (position fixes, see `tracking.py`), and watches for units whose fixes stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from safecity.alarms.events import IncidentRequested
from safecity.bus import Consumer, Delivery, EventLog
from safecity.bus.worker import consume
from safecity.dispatch import logic, statistics
from safecity.dispatch.catalogue import DEFAULT_CATALOGUE, UNIT_KINDS, Catalogue
from safecity.dispatch.events import UnitAssigned, UnitStatusChanged
from safecity.dispatch.logic import (
    ASSIGNABLE,
    OPEN_INCIDENT_STATUSES,
    Actor,
    DispatchStateError,
    IncidentPriority,
    IncidentSource,
    NotYourUnit,
    UnitUnavailable,
)
from safecity.dispatch.model import AssignmentRow, IncidentRow, IncidentTimelineRow, UnitRow
from safecity.dispatch.recommend import (
    Candidate,
    PositionSource,
    Recommendation,
    auto_assignee,
    is_stale,
    rank_units,
    tier,
)
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
from safecity.dispatch.travel import (
    CoverageMap,
    Etas,
    GraphProvider,
    SnapCache,
    coverage_map,
    road_etas,
    route_features,
)
from safecity.dispatch.units import UnitDesk
from safecity.events import Event, Location, Payload, new_event_id
from safecity.geo.graph import RoadGraph
from safecity.security.audit import AuditLog
from safecity.store.engine import Database

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
_OPEN = [s.value for s in OPEN_INCIDENT_STATUSES]


@dataclass(frozen=True, slots=True)
class IncidentDetail:
    incident: IncidentRow
    timeline: list[IncidentTimelineRow]
    assignments: list[AssignmentRow]


@dataclass(frozen=True, slots=True)
class UnitRecommendation:
    recommendation: Recommendation
    route: dict[str, Any] | None  # GeoJSON Feature: the road from the unit to the incident


class DispatchService:
    def __init__(
        self,
        db: Database,
        events: EventLog,
        audit: AuditLog,
        clock: Callable[[], datetime],
        graph_provider: GraphProvider,
        *,
        catalogue: Catalogue = DEFAULT_CATALOGUE,
        auto_assign_p1: bool = False,
        stale_after: timedelta = timedelta(seconds=120),
        recommend_k: int = 3,
    ) -> None:
        self.db = db
        self.events = events
        self.audit = audit
        self.clock = clock
        self.graph_provider = graph_provider
        self.catalogue = catalogue
        self.auto_assign_p1 = auto_assign_p1
        self.recommend_k = recommend_k
        self.tracking = Tracking(db, events, clock, stale_after=stale_after)
        self.units = UnitDesk(db, events, audit, clock, self.tracking)
        self.snaps = SnapCache()

    # -- incidents ---------------------------------------------------------------------------------
    async def create_incident(
        self, fields: dict[str, Any], actor: Actor, *, created_at: datetime | None = None
    ) -> IncidentRow:
        """A new incident (a call, an officer's report, a request from the alarm centre).

        `source_ref` is unique per source: asking twice for the same alarm returns the first incident.
        """
        row, _ = await self._create(fields, actor, created_at)
        return row

    async def _create(
        self, fields: dict[str, Any], actor: Actor, created_at: datetime | None
    ) -> tuple[IncidentRow, bool]:
        now = self.clock()
        kind = self.catalogue.get(fields["type"])
        priority = IncidentPriority(fields.get("priority") or kind.default_priority)
        source = IncidentSource(fields.get("source") or IncidentSource.PHONE)
        source_ref: str | None = fields.get("source_ref")
        incident = logic.new_incident(new_event_id(), kind.code, priority, created_at or now, actor.name)
        try:
            async with self.db.session() as session:
                existing = await self._by_source(session, source, source_ref)
                if existing is not None:
                    return existing, False
                row = IncidentRow(
                    id=incident.id, type=incident.type, priority=int(priority), status=incident.status.value,
                    lat=fields["lat"], lon=fields["lon"], address=fields.get("address") or "",
                    district=fields.get("district"), source=source.value, source_ref=source_ref,
                    narrative=fields.get("narrative") or "", created_at=incident.created_at,
                    created_by=actor.name, version=1,
                )
                session.add(row)
                add_timeline(session, row.id, incident.created_at, actor.name, "created",
                             detail=f"{kind.label}, P{int(priority)}, from {source.value}")
                await self.audit.append(actor.name, actor.role, "incident.create", f"incident:{row.id}",
                                        detail={"type": row.type, "priority": row.priority, "source": row.source,
                                                "source_ref": source_ref}, session=session)
        except IntegrityError:
            # two deliveries of one request raced past the lookup: the unique (source, source_ref) kept one
            async with self.db.session() as session:
                existing = await self._by_source(session, source, source_ref)
            if existing is None:
                raise
            return existing, False
        await publish(self.events, [incident_changed(row, "created", actor.name)], now,
                      Location(lat=row.lat, lon=row.lon))
        return row, True

    @staticmethod
    async def _by_source(session: AsyncSession, source: IncidentSource, ref: str | None) -> IncidentRow | None:
        if ref is None:
            return None
        found: IncidentRow | None = await session.scalar(
            select(IncidentRow).where(IncidentRow.source == source.value, IncidentRow.source_ref == ref))
        return found

    async def incident_from_request(self, event: Event) -> tuple[IncidentRow, bool]:
        """`incident.requested` → an incident typed from the alarm category; (row, created just now?)."""
        request = event.typed()
        assert isinstance(request, IncidentRequested)
        async with self.db.session() as session:
            existing = await self._by_source(session, IncidentSource.ALARM, request.alarm_id)
        if existing is not None:
            return existing, False
        kind, priority = self.catalogue.for_alarm(request.category, request.priority)
        zone = f" zone {request.zone}" if request.zone else ""
        narrative = f"{request.account_kind} {request.account}: {request.category} ({request.code}{zone})"
        if request.note:
            narrative += f". {request.note}"
        return await self._create(
            {"type": kind.code, "priority": priority, "lat": request.lat, "lon": request.lon,
             "address": request.address, "source": IncidentSource.ALARM, "source_ref": request.alarm_id,
             "narrative": narrative},
            Actor(request.requested_by, "operator"), event.occurred_at,
        )

    async def open_incidents(self, limit: int = 500) -> list[IncidentRow]:
        """Open incidents, P1 first, oldest first within a priority."""
        async with self.db.session() as session:
            rows = await session.scalars(select(IncidentRow).where(IncidentRow.status.in_(_OPEN))
                                         .order_by(IncidentRow.priority, IncidentRow.created_at).limit(limit))
            return list(rows)

    async def get_incident(self, incident_id: str, actor: Actor) -> IncidentDetail:
        """The incident with its timeline; a crew sees only incidents its unit was sent to."""
        async with self.db.session() as session:
            row = await incident_row(session, incident_id)
            assignments = list(await session.scalars(
                select(AssignmentRow).where(AssignmentRow.incident_id == incident_id).order_by(AssignmentRow.id)))
            if actor.is_field_unit and all(a.unit_id != actor.unit_id for a in assignments):
                raise NotYourUnit(f"{actor.unit_id or 'no unit'} was not sent to incident {incident_id}")
            timeline = list(await session.scalars(
                select(IncidentTimelineRow).where(IncidentTimelineRow.incident_id == incident_id)
                .order_by(IncidentTimelineRow.id)))
        return IncidentDetail(row, timeline, assignments)

    async def cancel(self, incident_id: str, actor: Actor, reason: str = "") -> IncidentRow:
        return await self._finish(incident_id, actor, logic.cancel_incident, "cancel", reason)

    async def close(self, incident_id: str, actor: Actor, note: str = "") -> IncidentRow:
        return await self._finish(incident_id, actor, logic.close_incident, "close", note)

    async def _finish(
        self, incident_id: str, actor: Actor, decide: Callable[[logic.Incident, datetime, str], logic.Incident],
        command: str, note: str,
    ) -> IncidentRow:
        """Close or cancel the incident, and stand down every unit still on it."""
        now = self.clock()
        payloads: list[Payload] = []
        async with self.db.session() as session:
            row = await incident_row(session, incident_id)
            finished = decide(incident_of(row), now, actor.name)
            active = list(await session.scalars(select(AssignmentRow).where(
                AssignmentRow.incident_id == incident_id, AssignmentRow.active.is_(True))))
            units = [await unit_row(session, a.unit_id) for a in active]
            await save_incident(session, row, finished)
            released = logic.release_units(finished, [(unit_of(u), assignment_of(a)) for u, a in
                                                      zip(units, active, strict=True)], now)
            for done, unit, assignment in zip(released, units, active, strict=True):
                previous = unit.status
                await save_unit(session, unit, done.unit, now)
                apply_assignment(assignment, done.assignment)
                add_timeline(session, incident_id, now, actor.name, done.assignment.status.value, unit.id)
                payloads.append(UnitStatusChanged(unit_id=unit.id, status=unit.status, previous=previous,
                                                  incident_id=incident_id, actor=actor.name))
            add_timeline(session, incident_id, now, actor.name, row.status, detail=note)
            await self.audit.append(actor.name, actor.role, f"incident.{command}", f"incident:{incident_id}",
                                    detail={"note": note} if note else None, session=session)
        await publish(self.events, [incident_changed(row, row.status, actor.name), *payloads], now)
        return row

    # -- recommendation and assignment ------------------------------------------------------------
    async def add_note(self, incident_id: str, note: str, actor: Actor) -> None:
        """A note on the incident's timeline, from a dispatcher or a crew sent to it."""
        await self.get_incident(incident_id, actor)  # a crew may only write to incidents it was sent to
        now = self.clock()
        async with self.db.session() as session:
            row = await incident_row(session, incident_id)
            add_timeline(session, incident_id, now, actor.name, "note", unit_id=actor.unit_id, detail=note)
            await self.audit.append(actor.name, actor.role, "incident.note", f"incident:{incident_id}",
                                    session=session)
        await publish(self.events, [incident_changed(row, "note", actor.name, actor.unit_id)], now)

    async def unit_route(self, unit_id: str, actor: Actor) -> dict[str, Any] | None:
        """The road route from the unit's newest position to its current incident (None: no job)."""
        job = await self.units.current_assignment(unit_id, actor)
        if job is None:
            return None
        detail = await self.get_incident(job.incident_id, actor)
        unit = await self.units.get_unit(unit_id, actor)
        graph = await self.graph_provider()
        positions, _ = self._positions([unit], self.clock())
        if unit_id not in positions:
            return None
        incident = detail.incident
        etas = await asyncio.to_thread(road_etas, graph, self.snaps, incident.lat, incident.lon, positions, k=1)
        features = await asyncio.to_thread(route_features, graph, etas, [unit_id])
        return features.get(unit_id)

    async def recommend(
        self, incident_id: str, *, k: int | None = None, routes: bool = True
    ) -> list[UnitRecommendation]:
        """The best units for the incident by road travel time, with ETA and (optionally) the route."""
        now = self.clock()
        async with self.db.session() as session:
            incident = await incident_row(session, incident_id)
        units = await self._available_units()
        if incident.status not in _OPEN:
            raise DispatchStateError(f"incident {incident_id} is {incident.status}")
        required = self.catalogue.get(incident.type).required(IncidentPriority(incident.priority))
        graph = await self.graph_provider()
        positions, placed = self._positions(units, now)
        want = self.recommend_k if k is None else k
        unplaced = [
            Candidate(u.id, u.kind, logic.UnitStatus(u.status), u.on_shift, frozenset(u.capabilities),
                      None, stale=placed[u.id][1], position_source=placed[u.id][0])
            for u in units if u.id in placed
        ]
        etas = await asyncio.to_thread(self._tiered_etas, graph, incident.lat, incident.lon, positions,
                                       unplaced, required, want)
        candidates = [replace(c, eta_s=etas.seconds.get(c.unit_id)) for c in unplaced]
        ranked = rank_units(candidates, required, want)
        features = {}
        if routes and ranked:
            features = await asyncio.to_thread(route_features, graph, etas, [r.unit_id for r in ranked])
        return [UnitRecommendation(r, features.get(r.unit_id)) for r in ranked]

    def _tiered_etas(
        self,
        graph: RoadGraph,
        lat: float,
        lon: float,
        positions: Mapping[str, tuple[float, float]],
        candidates: Sequence[Candidate],
        required: frozenset[str],
        k: int,
    ) -> Etas:
        """Road times for just enough units: tier by tier in rank order (qualified, fresh, GPS first),
        each tier's k nearest by one bounded search, until k units are found. The top k equal those
        of timing every unit, at a fraction of the cost on a large city graph."""
        tiers: dict[tuple[bool, bool, bool], dict[str, tuple[float, float]]] = {}
        for candidate in candidates:
            if candidate.on_shift and candidate.status in ASSIGNABLE:
                tiers.setdefault(tier(candidate, required), {})[candidate.unit_id] = positions[candidate.unit_id]
        merged: Etas | None = None
        found = 0
        for key in sorted(tiers):
            etas = road_etas(graph, self.snaps, lat, lon, tiers[key], k=k - found)
            if merged is None:
                merged = etas
            else:
                merged.seconds.update(etas.seconds)
                merged.sources.update(etas.sources)
            found += len(etas.seconds)
            if found >= k:
                break
        return merged if merged is not None else road_etas(graph, self.snaps, lat, lon, {})

    def _positions(
        self, units: Sequence[UnitRow], now: datetime
    ) -> tuple[dict[str, tuple[float, float]], dict[str, tuple[PositionSource, bool]]]:
        """Where each road unit is (its newest fix, else its home station) and whether that fix is stale."""
        positions: dict[str, tuple[float, float]] = {}
        placed: dict[str, tuple[PositionSource, bool]] = {}
        for unit in units:
            if unit.kind in UNIT_KINDS and not UNIT_KINDS[unit.kind].by_road:
                continue
            fix = self.tracking.live.newest(unit.id, unit.last_lat, unit.last_lon, unit.last_position_at)
            if fix is None:
                positions[unit.id] = (unit.home_lat, unit.home_lon)
                placed[unit.id] = (PositionSource.HOME, False)
            else:
                positions[unit.id] = (fix.lat, fix.lon)
                placed[unit.id] = (PositionSource.GPS, is_stale(fix.recorded_at, now, self.tracking.stale_after))
        return positions, placed

    async def _available_units(self) -> list[UnitRow]:
        async with self.db.session() as session:
            return list(await session.scalars(select(UnitRow).where(
                UnitRow.on_shift.is_(True), UnitRow.status.in_([s.value for s in ASSIGNABLE]))))

    async def coverage(self, minutes: float) -> CoverageMap:
        """How much of the road network the free units on shift reach within `minutes` (stale fixes count)."""
        positions, _ = self._positions(await self._available_units(), self.clock())
        graph = await self.graph_provider()
        return await asyncio.to_thread(coverage_map, graph, self.snaps, positions, minutes)

    async def assign(
        self, incident_id: str, unit_id: str, actor: Actor, *, eta_s: float | None = None, automatic: bool = False
    ) -> AssignmentRow:
        """Send a unit. Two dispatchers sending one unit at once: one wins, the other gets UnitUnavailable."""
        now = self.clock()
        async with self.db.session() as session:
            incident = await incident_row(session, incident_id)
            unit = await unit_row(session, unit_id)
            done = logic.assign(incident_of(incident), unit_of(unit), now, actor.name)
            previous = unit.status
            await save_unit(session, unit, done.unit, now, assigning=True)
            await save_incident(session, incident, done.incident)
            a = done.assignment
            row = AssignmentRow(incident_id=incident_id, unit_id=unit_id, status=a.status.value, active=True,
                                assigned_at=a.assigned_at, assigned_by=a.assigned_by, eta_s=eta_s)
            session.add(row)
            try:
                await session.flush()
            except IntegrityError as exc:  # the partial unique index: the unit already has a job
                raise UnitUnavailable(f"unit {unit_id} already has an active assignment") from exc
            eta = f", ETA {eta_s:.0f} s" if eta_s is not None else ""
            add_timeline(session, incident_id, a.assigned_at, actor.name, "assigned", unit_id,
                         f"{'automatic ' if automatic else ''}assignment of {unit.callsign}{eta}")
            await self.audit.append(actor.name, actor.role, "incident.assign", f"incident:{incident_id}",
                                    detail={"unit": unit_id, "automatic": automatic, "eta_s": eta_s},
                                    session=session)
        await publish(self.events, [
            UnitAssigned(unit_id=unit_id, incident_id=incident_id, assigned_by=actor.name, automatic=automatic,
                         eta_s=eta_s),
            UnitStatusChanged(unit_id=unit_id, status=unit.status, previous=previous, incident_id=incident_id,
                              actor=actor.name),
            incident_changed(incident, "assigned", actor.name, unit_id),
        ], now)
        return row

    async def auto_assign(self, incident: IncidentRow) -> AssignmentRow | None:
        """A P1 without waiting for a dispatcher: the best fully qualified unit with a fresh fix, if any."""
        try:
            recommendations = await self.recommend(incident.id, routes=False)
            best = auto_assignee([r.recommendation for r in recommendations], IncidentPriority(incident.priority))
            if best is None:
                await self._note(incident.id, "no unit qualifies for automatic assignment: a dispatcher decides")
                return None
            return await self.assign(incident.id, best.unit_id, logic.SYSTEM, eta_s=best.eta_s, automatic=True)
        except logic.DispatchError as exc:
            log.warning("automatic assignment failed incident=%s error=%s", incident.id, exc)
            await self._note(incident.id, f"automatic assignment failed: {exc}")
            return None

    async def _note(self, incident_id: str, text: str) -> None:
        async with self.db.session() as session:
            add_timeline(session, incident_id, self.clock(), logic.SYSTEM.name, "note", detail=text)

    # -- the worker --------------------------------------------------------------------------------
    async def run_worker(self, stop: asyncio.Event, *, every_s: float = 5.0) -> None:
        """Consume `incident` and `unit` events until `stop`; check for stale positions every `every_s`."""
        incidents = await self.events.consumer("dispatch-incidents", "incident")
        positions = await self.events.consumer("dispatch-tracking", "unit")
        tasks = [
            asyncio.create_task(self._consume(incidents, self.process_requests, stop), name="dispatch-incidents"),
            asyncio.create_task(self._consume(positions, self.tracking.ingest, stop), name="dispatch-tracking"),
        ]
        try:
            while not stop.is_set():
                try:
                    await self.tracking.check_stale()
                except Exception:
                    log.exception("stale position check failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), every_s)
        finally:
            await asyncio.gather(*tasks, return_exceptions=True)
            await incidents.close()
            await positions.close()

    @staticmethod
    async def _consume(
        consumer: Consumer, handle: Callable[[Sequence[Delivery]], Any], stop: asyncio.Event
    ) -> None:
        await consume(consumer, handle, stop, max_attempts=MAX_ATTEMPTS)

    async def process_requests(self, deliveries: Sequence[Delivery]) -> list[IncidentRow]:
        """Incidents from `incident.requested`; returns those created by this batch."""
        created: list[IncidentRow] = []
        for delivery in deliveries:
            if delivery.event.kind != IncidentRequested.KIND:
                continue
            row, new = await self.incident_from_request(delivery.event)
            if not new:
                continue
            created.append(row)
            if self.auto_assign_p1 and row.priority == IncidentPriority.P1:
                await self.auto_assign(row)
        return created

    # -- reports -----------------------------------------------------------------------------------
    async def statistics(
        self, since: datetime, until: datetime,
        targets: Sequence[statistics.ComplianceTarget] = statistics.DEFAULT_TARGETS,
    ) -> statistics.Report:
        """Response-interval percentiles and compliance for incidents created in [since, until)."""
        async with self.db.session() as session:
            incidents = list(await session.scalars(select(IncidentRow).where(
                IncidentRow.created_at >= since, IncidentRow.created_at < until)))
            assignments = list(await session.scalars(select(AssignmentRow).join(IncidentRow).where(
                IncidentRow.created_at >= since, IncidentRow.created_at < until)))
        created = {i.id: i.created_at for i in incidents}
        return statistics.report(
            [statistics.IncidentTimes.of(incident_of(i), i.district) for i in incidents],
            [statistics.UnitTimes(a.unit_id, assignment_of(a), created[a.incident_id]) for a in assignments],
            targets,
        )

    async def prune_positions(self, before: datetime) -> int:
        return await self.tracking.prune_positions(before)
