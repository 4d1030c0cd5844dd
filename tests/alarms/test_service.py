"""The alarm service on both databases: signals become queue items, operators work them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from safecity.alarms.events import (
    AlarmChanged,
    CommunicationFailed,
    IncidentRequested,
    LinkTestReceived,
    SignalReceived,
)
from safecity.alarms.logic import AlarmStateError, Resolution
from safecity.alarms.service import AccountExists, AlarmService, ConcurrentChange
from safecity.bus import Delivery
from safecity.bus.sqlite import SqliteEventLog
from safecity.events import Event
from safecity.security.audit import AuditLog
from safecity.store.engine import Database


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def alarms(db: Database, tmp_path: Path) -> AsyncIterator[tuple[AlarmService, SqliteEventLog, Clock]]:
    log = SqliteEventLog(tmp_path / "events.db")
    await log.start()
    clock = Clock()
    service = AlarmService(db, log, AuditLog(db, clock), clock)
    await service.create_account(
        {"number": "1234AB", "kind": "building_panic_button", "name": "Corridor 3, block 12",
         "address": "Mannerheimintie 12", "lat": 60.17, "lon": 24.94, "link_test_interval_s": 90,
         "contacts": [{"name": "Caretaker", "phone": "+358401234567"}]},
        "admin", "admin",
    )
    try:
        yield service, log, clock
    finally:
        await log.close()


def signal(clock: Clock, code: str = "PA", *, priority: int = 1, category: str = "panic", restore: bool = False,
           n: int = 1) -> Event:
    return Event.of(
        SignalReceived(account="1234AB", protocol="SIA-DCS", code_system="sia", code=code, zone="003",
                       category=category, priority=priority, is_restore=restore, is_alarm=not restore,
                       description=code, sequence=n, line="1", encrypted=False, transport="tcp"),
        source="test", occurred_at=clock(), received_at=clock(),
    )


async def feed(service: AlarmService, *events: Event) -> None:
    await service.process([Delivery(i + 1, e, 1) for i, e in enumerate(events)])


async def test_account_numbers_are_unique(alarms: tuple[AlarmService, SqliteEventLog, Clock]) -> None:
    service, _, _ = alarms
    with pytest.raises(AccountExists):
        await service.create_account({"number": "1234ab", "kind": "apartment", "name": "x", "address": "y",
                                      "lat": 0, "lon": 0}, "admin", "admin")
    assert (await service.get_account("1234ab")).kind == "building_panic_button"


async def test_panic_signal_opens_a_life_safety_alarm_and_burst_groups(
    alarms: tuple[AlarmService, SqliteEventLog, Clock],
) -> None:
    service, log, clock = alarms
    await feed(service, signal(clock, "BA", priority=2, category="burglary"))
    clock.now += timedelta(seconds=30)
    await feed(service, signal(clock, "PA", n=2), signal(clock, "BA", priority=2, category="burglary", n=3))
    [alarm] = await service.open_alarms()
    assert (alarm.priority, alarm.category, alarm.signal_count, alarm.status) == (1, "panic", 3, "new")
    changes = [e.event.typed() for e in await log.recent("alarm.changed")]
    assert [c.change for c in changes if isinstance(c, AlarmChanged)] == ["opened", "signal", "signal"]


async def test_redelivered_signal_is_applied_once(alarms: tuple[AlarmService, SqliteEventLog, Clock]) -> None:
    service, _, clock = alarms
    event = signal(clock)
    await feed(service, event)
    await feed(service, event, event)
    [alarm] = await service.open_alarms()
    assert alarm.signal_count == 1


async def test_two_operators_cannot_work_one_alarm(alarms: tuple[AlarmService, SqliteEventLog, Clock]) -> None:
    service, _, clock = alarms
    await feed(service, signal(clock))
    [alarm] = await service.open_alarms()
    results = await asyncio.gather(
        service.claim(alarm.id, "olga", "operator"), service.claim(alarm.id, "timur", "operator"),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1
    assert len(losers) == 1
    assert isinstance(losers[0], AlarmStateError | ConcurrentChange)


async def test_escalation_requests_an_incident_at_the_account_location(
    alarms: tuple[AlarmService, SqliteEventLog, Clock],
) -> None:
    service, log, clock = alarms
    await feed(service, signal(clock))
    [alarm] = await service.open_alarms()
    await service.claim(alarm.id, "olga", "operator")
    await service.escalate(alarm.id, "olga", "operator", "caller confirms intruder")
    [stored] = await log.recent("incident.requested")
    request = stored.event.typed()
    assert isinstance(request, IncidentRequested)
    assert (request.alarm_id, request.priority, request.address) == (alarm.id, 1, "Mannerheimintie 12")
    assert stored.event.location is not None
    closed = await service.close(alarm.id, "olga", "operator", Resolution.DISPATCHED)
    assert closed.status == "closed"
    assert await service.open_alarms() == []
    _, _, actions = await service.get_alarm(alarm.id)
    assert [a.action for a in actions] == ["claimed", "escalated", "closed"]


async def test_missed_link_test_raises_one_comm_failure_and_a_link_test_restores(
    alarms: tuple[AlarmService, SqliteEventLog, Clock],
) -> None:
    service, log, clock = alarms
    link_test = Event.of(LinkTestReceived(account="1234AB", sequence=0, line="1", encrypted=False, transport="tcp"),
                         source="test", occurred_at=clock(), received_at=clock())
    await feed(service, link_test)
    clock.now += timedelta(seconds=90 + 30 - 1)
    assert await service.check_links() == []
    clock.now += timedelta(seconds=2)
    assert await service.check_links() == ["1234AB"]
    assert await service.check_links() == ["1234AB"]  # a second worker checking: deduplicated by the log
    failures = await log.recent("alarm.communication_failed")
    assert len(failures) == 1
    assert isinstance(failures[0].event.typed(), CommunicationFailed)
    await feed(service, failures[0].event)
    [alarm] = await service.open_alarms()
    assert (alarm.category, alarm.priority) == ("communication_failure", 3)
    assert await service.check_links() == []  # failed already: no storm
    clock.now += timedelta(seconds=5)
    back = Event.of(LinkTestReceived(account="1234AB", sequence=0, line="1", encrypted=False, transport="tcp"),
                    source="test", occurred_at=clock(), received_at=clock())
    await feed(service, back)
    assert len(await log.recent("alarm.communication_restored")) == 1
