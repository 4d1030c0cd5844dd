"""The dispatch service on both databases: requests, assignment races, crews, tracking, statistics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError

import safecity.store.models  # noqa: F401  (registers every table)
from safecity.alarms.events import IncidentRequested
from safecity.bus import Delivery
from safecity.bus.sqlite import SqliteEventLog
from safecity.dispatch.events import PositionReported
from safecity.dispatch.logic import (
    Actor,
    DispatchStateError,
    NotYourUnit,
    ResponseIntervals,
    UnitStatus,
    UnitUnavailable,
    UnknownUnit,
    response_intervals,
)
from safecity.dispatch.model import AssignmentRow, IncidentRow, UnitPositionRow
from safecity.dispatch.service import DispatchService
from safecity.events import Event
from safecity.geo.graph import RoadGraph
from safecity.security.audit import AuditLog
from safecity.security.model import AuditEntry
from safecity.store.base import Base
from safecity.store.engine import Database
from tests.dispatch.conftest import T0, Clock

DINA = Actor("dina", "dispatcher")
PAVEL = Actor("pavel", "dispatcher")
TABLET_1 = Actor("tablet-rrg1", "field_unit", "RRG-1")
DISPATCH_TABLES = {"incidents", "incident_timeline", "units", "assignments", "unit_positions"}

# places in central Helsinki, inside the shipped extract; by road, Erottaja is under a minute from
# Stockmann and Kaisaniemi almost three
STOCKMANN = (60.1686, 24.9416)
EROTTAJA = (60.1665, 24.9430)
KAISANIEMI = (60.1735, 24.9450)


@dataclass
class Desk:
    service: DispatchService
    log: SqliteEventLog
    clock: Clock
    db: Database


@pytest.fixture
async def desk(db: Database, tmp_path: Path, helsinki: RoadGraph) -> AsyncIterator[Desk]:
    log = SqliteEventLog(tmp_path / "events.db")
    await log.start()
    clock = Clock()

    async def graph() -> RoadGraph:
        return helsinki

    service = DispatchService(db, log, AuditLog(db, clock), clock, graph, auto_assign_p1=True)
    for unit_id, (lat, lon) in (("RRG-1", EROTTAJA), ("RRG-2", KAISANIEMI)):
        await service.units.create_unit({"id": unit_id, "kind": "rapid_response_group", "home_lat": lat,
                                         "home_lon": lon, "on_shift": True}, Actor("sam", "supervisor"))
    try:
        yield Desk(service, log, clock, db)
    finally:
        await log.close()


def request(alarm_id: str = "alarm-1", *, category: str = "panic", priority: int = 1,
            at: datetime = T0) -> Event:
    return Event.of(
        IncidentRequested(alarm_id=alarm_id, account="1234AB", account_kind="building_panic_button",
                          priority=priority, category=category, code="PA", zone="003",
                          address="Mannerheimintie 12", lat=STOCKMANN[0], lon=STOCKMANN[1], requested_by="olga",
                          note="caretaker confirms"),
        source="alarm-queue", occurred_at=at, dedup_key=f"incident-request:{alarm_id}",
    )


def deliveries(*events: Event) -> list[Delivery]:
    return [Delivery(i + 1, e, 1) for i, e in enumerate(events)]


def fix(unit_id: str, place: tuple[float, float], at: datetime) -> Event:
    return Event.of(PositionReported(unit_id=unit_id, lat=place[0], lon=place[1], recorded_at=at,
                                     transport="simulator"), source="test", occurred_at=at, received_at=at)


async def new_incident(desk: Desk, **fields: Any) -> IncidentRow:
    base = {"type": "burglary", "lat": STOCKMANN[0], "lon": STOCKMANN[1], "address": "Aleksanterinkatu 52"}
    return await desk.service.create_incident({**base, **fields}, DINA)


async def count(db: Database, model: Any, *where: Any) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


# -- incidents from the alarm centre ------------------------------------------------------------------


async def test_a_redelivered_request_creates_one_incident(desk: Desk) -> None:
    desk.service.auto_assign_p1 = False
    first = request()
    created = await desk.service.process_requests(deliveries(first))
    again = await desk.service.process_requests(deliveries(first))
    # the same alarm escalated through another event (a replay of the log with new ids) is still one incident
    replayed = Event.of(first.typed(), source="alarm-queue", occurred_at=T0)
    both = await asyncio.gather(desk.service.process_requests(deliveries(replayed)),
                                desk.service.process_requests(deliveries(replayed)))
    assert len(created) == 1 and again == [] and [len(b) for b in both] == [0, 0]
    assert await count(desk.db, IncidentRow) == 1
    [incident] = await desk.service.open_incidents()
    assert (incident.type, incident.priority, incident.source, incident.source_ref) == ("panic_alarm", 1, "alarm",
                                                                                      "alarm-1")
    assert incident.created_at == T0 and "caretaker confirms" in incident.narrative


async def test_a_p1_request_is_assigned_to_the_best_fresh_unit_when_the_setting_says_so(desk: Desk) -> None:
    # no fixes yet: the units are known only at their home stations, too uncertain to send without a person
    [unplaced] = await desk.service.process_requests(deliveries(request("alarm-0")))
    detail = await desk.service.get_incident(unplaced.id, DINA)
    assert detail.assignments == []
    assert detail.timeline[-1].kind == "note" and "dispatcher decides" in detail.timeline[-1].detail

    await desk.service.tracking.ingest(deliveries(fix("RRG-1", EROTTAJA, T0), fix("RRG-2", KAISANIEMI, T0)))
    [incident] = await desk.service.process_requests(deliveries(request()))
    detail = await desk.service.get_incident(incident.id, DINA)
    [assignment] = detail.assignments
    assert assignment.unit_id == "RRG-1"
    assert assignment.assigned_by == "system" and assignment.eta_s is not None and assignment.eta_s > 0
    assert detail.incident.status == "dispatched"
    assert [t.kind for t in detail.timeline] == ["created", "assigned"]
    # a burglary (P2) waits for a dispatcher
    [burglary] = await desk.service.process_requests(deliveries(request("alarm-2", category="burglary", priority=2)))
    assert (await desk.service.get_incident(burglary.id, DINA)).assignments == []


# -- assignment ---------------------------------------------------------------------------------------


async def test_two_dispatchers_sending_one_unit_at_once_exactly_one_wins(desk: Desk) -> None:
    a = await new_incident(desk)
    b = await new_incident(desk, address="Erottajankatu 1")
    results = await asyncio.gather(
        desk.service.assign(a.id, "RRG-1", DINA), desk.service.assign(b.id, "RRG-1", PAVEL),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, AssignmentRow)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert isinstance(losers[0], UnitUnavailable | DispatchStateError)
    assert await count(desk.db, AssignmentRow, AssignmentRow.unit_id == "RRG-1", AssignmentRow.active.is_(True)) == 1
    unit = await desk.service.units.get_unit("RRG-1", DINA)
    assert (unit.status, unit.current_incident) == ("dispatched", winners[0].incident_id)
    with pytest.raises(UnitUnavailable):  # and later, it is simply busy
        await desk.service.assign(b.id if winners[0].incident_id == a.id else a.id, "RRG-1", DINA)
    with pytest.raises(UnknownUnit):
        await desk.service.assign(a.id, "RRG-404", DINA)


async def test_the_database_itself_refuses_a_second_active_assignment(desk: Desk) -> None:
    incident = await new_incident(desk)
    await desk.service.assign(incident.id, "RRG-1", DINA)
    with pytest.raises(IntegrityError):
        async with desk.db.session() as session:
            session.add(AssignmentRow(incident_id=incident.id, unit_id="RRG-1", status="assigned", active=True,
                                      assigned_at=T0, assigned_by="rogue"))
    async with desk.db.session() as session:  # ended assignments are history, any number of them
        session.add(AssignmentRow(incident_id=incident.id, unit_id="RRG-1", status="cleared", active=False,
                                  assigned_at=T0, assigned_by="history"))


# -- crews ----------------------------------------------------------------------------------------------


async def test_a_field_unit_cannot_act_for_another_unit(desk: Desk) -> None:
    incident = await new_incident(desk)
    await desk.service.assign(incident.id, "RRG-2", DINA)
    units = desk.service.units
    with pytest.raises(NotYourUnit):
        await units.acknowledge("RRG-2", TABLET_1)
    with pytest.raises(NotYourUnit):
        await units.report_status("RRG-2", UnitStatus.EN_ROUTE, TABLET_1)
    with pytest.raises(NotYourUnit):
        await units.set_shift("RRG-2", False, TABLET_1)
    with pytest.raises(NotYourUnit):
        await units.report_position(PositionReported(unit_id="RRG-2", lat=60.17, lon=24.94, recorded_at=T0,
                                                     transport="tablet"), TABLET_1)
    with pytest.raises(NotYourUnit):
        await desk.service.get_incident(incident.id, TABLET_1)
    assert (await units.get_unit("RRG-2", DINA)).status == "dispatched"  # nothing changed
    # its own unit, it may
    assert (await units.set_shift("RRG-1", False, TABLET_1)).on_shift is False


async def test_the_crew_works_the_job_and_the_last_to_clear_closes_it(desk: Desk) -> None:
    incident = await new_incident(desk, type="panic_alarm", district="Kluuvi")
    desk.clock.advance(40)
    await desk.service.assign(incident.id, "RRG-1", DINA)
    units = desk.service.units
    desk.clock.advance(5)
    assert (await units.acknowledge("RRG-1", TABLET_1)).acknowledged_at == desk.clock()
    desk.clock.advance(25)
    await units.report_status("RRG-1", UnitStatus.EN_ROUTE, TABLET_1)
    desk.clock.advance(200)
    await units.report_status("RRG-1", UnitStatus.ON_SCENE, TABLET_1)
    with pytest.raises(DispatchStateError):
        await units.set_shift("RRG-1", False, TABLET_1)
    desk.clock.advance(600)
    unit = await units.report_status("RRG-1", UnitStatus.RETURNING, TABLET_1)
    assert (unit.status, unit.current_incident) == ("returning", None)
    detail = await desk.service.get_incident(incident.id, TABLET_1)
    row = detail.incident
    assert row.status == "closed" and row.closed_by == "tablet-rrg1"
    assert response_intervals(row.created_at, row.dispatched_at, row.en_route_at, row.on_scene_at,
                              row.cleared_at) == ResponseIntervals(40, 30, 200, 600, 270)
    assert [t.kind for t in detail.timeline] == ["created", "assigned", "acknowledged", "en_route", "on_scene",
                                                 "cleared", "closed"]
    async with desk.db.session() as session:
        actions = list(await session.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))
    assert actions[-6:] == ["incident.create", "incident.assign", "unit.acknowledge", "unit.status", "unit.status",
                            "unit.status"]
    kinds = [s.event.kind for s in await desk.log.recent(limit=50)]
    assert {"unit.assigned", "unit.status_changed", "incident.changed", "unit.assignment_acknowledged"} <= set(kinds)


async def test_cancelling_stands_down_every_unit_on_the_incident(desk: Desk) -> None:
    incident = await new_incident(desk)
    await desk.service.assign(incident.id, "RRG-1", DINA)
    await desk.service.assign(incident.id, "RRG-2", PAVEL)
    await desk.service.units.report_status("RRG-2", UnitStatus.EN_ROUTE, DINA)
    cancelled = await desk.service.cancel(incident.id, DINA, "caller: false alarm")
    assert cancelled.status == "cancelled"
    for unit_id in ("RRG-1", "RRG-2"):
        unit = await desk.service.units.get_unit(unit_id, DINA)
        assert (unit.status, unit.current_incident) == ("available", None)
    assert await count(desk.db, AssignmentRow, AssignmentRow.active.is_(True)) == 0
    with pytest.raises(DispatchStateError):
        await desk.service.close(incident.id, DINA)


# -- tracking -------------------------------------------------------------------------------------------


async def test_positions_are_stored_once_and_never_go_back_in_time(desk: Desk) -> None:
    tracking = desk.service.tracking
    newer, older = fix("RRG-1", KAISANIEMI, T0 + timedelta(seconds=30)), fix("RRG-1", EROTTAJA, T0)
    assert await tracking.ingest(deliveries(newer)) == 1
    assert await tracking.ingest(deliveries(newer, older, fix("GHOST-9", KAISANIEMI, T0))) == 1
    assert await count(desk.db, UnitPositionRow) == 2
    unit = await desk.service.units.get_unit("RRG-1", DINA)
    assert (unit.last_lat, unit.last_lon, unit.last_position_at) == (*KAISANIEMI, newer.typed().recorded_at)  # type: ignore[attr-defined]
    live = tracking.live.get("RRG-1")
    assert live is not None and (live.lat, live.lon) == KAISANIEMI
    assert await desk.service.prune_positions(T0 + timedelta(seconds=1)) == 1
    assert [r.recorded_at for r in await tracking.track("RRG-1", T0 - timedelta(hours=1), T0 + timedelta(hours=1))
            ] == [newer.typed().recorded_at]  # type: ignore[attr-defined]


async def test_a_silent_unit_is_flagged_stale_once_and_ranked_behind(desk: Desk) -> None:
    tracking = desk.service.tracking
    await tracking.ingest(deliveries(fix("RRG-1", STOCKMANN, T0), fix("RRG-2", KAISANIEMI, T0)))
    desk.clock.advance(119)
    await tracking.ingest(deliveries(fix("RRG-2", KAISANIEMI, desk.clock())))
    assert await tracking.check_stale() == []
    desk.clock.advance(2)  # RRG-1: 121 s without a fix
    assert await tracking.check_stale() == ["RRG-1"]
    assert await tracking.check_stale() == ["RRG-1"]
    stale_events = await desk.log.recent("unit.position_stale")
    assert len(stale_events) == 1  # reported once per silence, however often checked
    incident = await new_incident(desk, type="panic_alarm")
    ranked = [r.recommendation for r in await desk.service.recommend(incident.id, routes=False)]
    # RRG-1 stands at the incident's door, but its fix is too old to trust: the fresh unit comes first
    assert [(r.unit_id, r.stale) for r in ranked] == [("RRG-2", False), ("RRG-1", True)]
    assert ranked[1].eta_s < ranked[0].eta_s


# -- statistics -----------------------------------------------------------------------------------------


async def test_statistics_on_known_incidents(desk: Desk) -> None:
    units = desk.service.units
    # three P1 incidents: call processing 30, 50 and 80 s; travel 100, 200, 300 s
    for call_s, travel_s in ((30, 100), (50, 200), (80, 300)):
        incident = await new_incident(desk, type="panic_alarm", district="Kluuvi")
        desk.clock.advance(call_s)
        await desk.service.assign(incident.id, "RRG-1", DINA)
        await units.report_status("RRG-1", UnitStatus.EN_ROUTE, DINA)
        desk.clock.advance(travel_s)
        await units.report_status("RRG-1", UnitStatus.ON_SCENE, DINA)
        desk.clock.advance(60)
        await units.report_status("RRG-1", UnitStatus.AVAILABLE, DINA)
    await new_incident(desk, district=None)  # a P2 never dispatched
    report = await desk.service.statistics(T0 - timedelta(days=1), desk.clock() + timedelta(seconds=1))
    assert report.incidents == 4
    p1 = next(g for g in report.by_priority if g.group == "P1")
    assert p1.incidents == 3
    assert (p1.intervals["call_processing_s"].p50, p1.intervals["call_processing_s"].p90) == (50, 80)
    assert (p1.intervals["travel_s"].p50, p1.intervals["total_response_s"].p90) == (200, 380)
    assert [g.group for g in report.by_district] == ["Kluuvi", "unknown"]
    [rrg1] = report.by_unit
    assert (rrg1.group, rrg1.intervals["travel_s"].count, rrg1.intervals["on_scene_s"].p50) == ("RRG-1", 3, 60)
    within_60 = next(c for c in report.compliance
                     if c.target.limit_s == 60 and c.target.interval == "call_processing_s")
    assert (within_60.incidents, within_60.within, within_60.met) == (3, 2, False)


# -- schema -----------------------------------------------------------------------------------------------


async def test_dispatch_tables_match_their_models(db: Database) -> None:
    def diff(sync: Connection) -> list[Any]:
        context = MigrationContext.configure(sync, opts={"compare_type": True})
        found: list[Any] = compare_metadata(context, Base.metadata)
        return found

    async with db.engine.connect() as conn:
        differences = await conn.run_sync(diff)
    ours = [d for d in differences if DISPATCH_TABLES & set(_names(d))]
    assert ours == []


def _names(difference: Any) -> list[str]:
    entries = difference if isinstance(difference, list) else [difference]
    names = []
    for entry in entries:
        for item in entry:
            table = getattr(item, "table", None)
            names += [n for n in (item if isinstance(item, str) else getattr(item, "name", None),
                                  getattr(table, "name", None)) if isinstance(n, str)]
    return names


# -- the worker's batches -----------------------------------------------------------------------------


class FakeConsumer:
    """Hands out the same deliveries until acked, counting attempts, like a durable consumer."""

    name = "fake"
    family = "unit"

    def __init__(self, events: list[Event], stop: asyncio.Event) -> None:
        self.pending = {i + 1: e for i, e in enumerate(events)}
        self.attempts = dict.fromkeys(self.pending, 0)
        self.stop = stop

    async def fetch(self, max_events: int = 100, timeout: float = 1.0) -> list[Delivery]:
        if not self.pending:
            self.stop.set()
            return []
        for offset in self.pending:
            self.attempts[offset] += 1
        return [Delivery(o, e, self.attempts[o]) for o, e in self.pending.items()]

    async def ack(self, delivery: Delivery) -> None:
        del self.pending[delivery.offset]

    async def nak(self, delivery: Delivery) -> None: ...

    async def close(self) -> None: ...


async def test_one_poisoned_event_does_not_hold_the_others_and_is_dropped_in_the_end() -> None:
    stop = asyncio.Event()
    good, bad = fix("RRG-1", EROTTAJA, T0), fix("RRG-2", EROTTAJA, T0)
    consumer = FakeConsumer([good, bad], stop)
    handled: list[str] = []

    async def handle(batch: list[Delivery]) -> None:
        if any(d.event.id == bad.id for d in batch):
            raise RuntimeError("cannot apply")
        handled.extend(d.event.id for d in batch)

    await asyncio.wait_for(DispatchService._consume(consumer, handle, stop), 5)
    assert handled == [good.id]
    assert consumer.attempts == {1: 1, 2: 5}
