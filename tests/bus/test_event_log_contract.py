"""One contract, every backend: what `EventLog` promises holds for SQLite and for NATS JetStream alike.

The NATS backend runs against a real nats-server (tests/_servers/nats.py); tests on the shared server keep
apart by appending to a family of their own.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safecity.bus import (
    Consumer,
    Delivery,
    EventLog,
    EventLogError,
    EventLogUnavailable,
    StartAt,
    open_event_log,
)
from safecity.bus.nats import NatsEventLog
from safecity.bus.sqlite import SqliteEventLog
from safecity.events import Event

OpenLog = Callable[[], Awaitable[EventLog]]


@pytest.fixture(params=["sqlite", "nats"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def open_log(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[OpenLog]:
    """Opens (and starts) logs on the same storage, so a test can close one and reopen it."""
    logs: list[EventLog] = []
    url = request.getfixturevalue("nats_server").url if backend == "nats" else None
    db = tmp_path / "events.db"

    async def open_() -> EventLog:
        log: EventLog = NatsEventLog.from_url(url) if url is not None else SqliteEventLog(db)
        await log.start()
        logs.append(log)
        return log

    yield open_
    for log in logs:
        await log.close()


@pytest.fixture
async def event_log(open_log: OpenLog) -> EventLog:
    return await open_log()


def new_family() -> str:
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def family() -> str:
    return new_family()


def make_event(family: str, event: str = "happened", *, n: int = 0, dedup_key: str | None = None) -> Event:
    return Event(
        kind=f"{family}.{event}",
        source="test",
        occurred_at=datetime.now(UTC),
        payload={"n": n},
        dedup_key=dedup_key,
    )


async def fetch_until(
    consumer: Consumer, done: Callable[[list[Delivery]], bool], *, within: float = 10.0
) -> list[Delivery]:
    """Fetch (and keep) deliveries until `done` says so; fail after `within` seconds, never hang."""
    seen: list[Delivery] = []
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        seen += await consumer.fetch(50, timeout=0.3)
        if done(seen):
            return seen
    raise AssertionError(f"condition not met in {within}s; saw offsets {[d.offset for d in seen]}")


def payload_numbers(items: list[Delivery]) -> list[int]:
    return [int(d.event.payload["n"]) for d in items]


# -- appending --------------------------------------------------------------------------------


async def test_append_returns_increasing_offsets_per_family(event_log: EventLog, family: str) -> None:
    batch = [make_event(family, n=i) for i in range(5)]
    placed = await event_log.append(batch)
    single = await event_log.append([make_event(family, n=5)])

    offsets = [p.offset for p in placed + single]
    assert offsets == sorted(offsets)
    assert len(set(offsets)) == 6
    assert all(p.offset > 0 and not p.duplicate for p in placed + single)
    assert [p.event_id for p in placed] == [e.id for e in batch]


async def test_append_of_nothing_is_nothing(event_log: EventLog) -> None:
    assert await event_log.append([]) == []


async def test_resent_dedup_key_is_a_noop(event_log: EventLog, family: str) -> None:
    first = make_event(family, n=1, dedup_key=f"{family}:acct-1234:seq-7")
    again = make_event(family, n=2, dedup_key=first.dedup_key)

    (stored,) = await event_log.append([first])
    (repeat,) = await event_log.append([again])

    assert repeat.duplicate
    assert repeat.offset == stored.offset
    assert repeat.event_id == first.id
    assert [s.event.id for s in await event_log.read(family)] == [first.id]


async def test_same_dedup_key_twice_in_one_batch_is_stored_once(event_log: EventLog, family: str) -> None:
    a = make_event(family, n=1, dedup_key=f"{family}:k")
    b = make_event(family, n=2, dedup_key=f"{family}:k")
    placed = await event_log.append([a, b])

    assert [p.duplicate for p in placed] == [False, True]
    assert placed[0].offset == placed[1].offset
    assert placed[1].event_id == a.id
    assert len(await event_log.read(family)) == 1


async def test_resending_the_same_event_without_key_is_a_noop(event_log: EventLog, family: str) -> None:
    event = make_event(family)
    await event_log.append([event])
    (again,) = await event_log.append([event])
    assert again.duplicate
    assert len(await event_log.read(family)) == 1


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    batches=st.lists(st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=6), min_size=1, max_size=6)
)
async def test_interleaved_duplicates_store_each_key_once_in_first_seen_order(
    event_log: EventLog, batches: list[list[str]]
) -> None:
    family = new_family()  # one per example: the log outlives the examples
    seen: set[str] = set()
    for keys in batches:
        # dedup keys are scoped per family on JetStream, log-wide in SQLite: keep them unique to the family
        placed = await event_log.append([make_event(family, dedup_key=f"{family}:{key}") for key in keys])
        for key, appended in zip(keys, placed, strict=True):
            assert appended.duplicate == (key in seen)
            seen.add(key)

    stored = [s.event.dedup_key for s in await event_log.read(family)]
    assert stored == list(dict.fromkeys(f"{family}:{key}" for keys in batches for key in keys))


# -- reading ----------------------------------------------------------------------------------


async def test_read_replays_from_the_start_and_from_an_offset(event_log: EventLog, family: str) -> None:
    placed = await event_log.append([make_event(family, n=i) for i in range(10)])
    await event_log.append([make_event(new_family())])  # another family stays out

    everything = await event_log.read(family)
    assert [s.event.payload["n"] for s in everything] == list(range(10))
    assert [s.offset for s in everything] == [p.offset for p in placed]

    after_fourth = await event_log.read(family, after=placed[3].offset)
    assert [s.event.payload["n"] for s in after_fourth] == list(range(4, 10))

    limited = await event_log.read(family, after=placed[3].offset, limit=3)
    assert [s.event.payload["n"] for s in limited] == [4, 5, 6]
    assert await event_log.read(family, after=placed[-1].offset) == []


async def test_read_of_an_unknown_family_is_empty(event_log: EventLog) -> None:
    assert await event_log.read(new_family()) == []
    assert await event_log.recent(f"{new_family()}.happened") == []


async def test_read_pages_past_a_thousand_events(event_log: EventLog, family: str) -> None:
    await event_log.append([make_event(family, n=i) for i in range(1205)])
    stored = await event_log.read(family, limit=5000)
    assert [s.event.payload["n"] for s in stored] == list(range(1205))


async def test_recent_is_newest_last_with_kind_filter_and_limit(event_log: EventLog, family: str) -> None:
    events = [make_event(family, "opened" if i % 3 else "closed", n=i) for i in range(12)]
    await event_log.append(events)

    last_five = await event_log.recent(limit=5)
    assert [s.event.payload["n"] for s in last_five] == [7, 8, 9, 10, 11]

    opened = await event_log.recent(f"{family}.opened", limit=4)
    assert [s.event.payload["n"] for s in opened] == [7, 8, 10, 11]
    assert all(s.event.kind == f"{family}.opened" for s in opened)

    closed = await event_log.recent(f"{family}.closed", limit=100)
    assert [s.event.payload["n"] for s in closed] == [0, 3, 6, 9]


async def test_recent_finds_a_rare_kind_far_back(event_log: EventLog, family: str) -> None:
    await event_log.append([make_event(family, "rare", n=-1)])
    await event_log.append([make_event(family, "common", n=i) for i in range(600)])
    rare = await event_log.recent(f"{family}.rare", limit=10)
    assert [s.event.payload["n"] for s in rare] == [-1]


async def test_recent_without_kind_spans_families(event_log: EventLog) -> None:
    one, two = new_family(), new_family()
    await event_log.append([make_event(one, n=1)])
    await event_log.append([make_event(two, n=2)])
    await event_log.append([make_event(one, n=3)])

    recent = await event_log.recent(limit=3)
    assert [(s.event.family, s.event.payload["n"]) for s in recent] == [(one, 1), (two, 2), (one, 3)]


# -- consumers --------------------------------------------------------------------------------


async def test_consumer_delivers_in_order_and_ack_is_final(event_log: EventLog, family: str) -> None:
    placed = await event_log.append([make_event(family, n=i) for i in range(5)])
    consumer = await event_log.consumer("projector", family, ack_wait=0.5)

    got = await fetch_until(consumer, lambda seen: len(seen) >= 5)
    assert [d.offset for d in got] == [p.offset for p in placed]
    assert payload_numbers(got) == list(range(5))
    assert all(d.attempt == 1 for d in got)
    for delivery in got:
        await consumer.ack(delivery)

    # acked work stays done, even well past ack_wait
    assert await consumer.fetch(10, timeout=1.2) == []


async def test_unacked_delivery_comes_back_after_ack_wait(event_log: EventLog, family: str) -> None:
    await event_log.append([make_event(family, n=1)])
    consumer = await event_log.consumer("slow", family, ack_wait=0.5)

    (first,) = await fetch_until(consumer, lambda seen: len(seen) >= 1)
    started = time.monotonic()
    again = await fetch_until(consumer, lambda seen: len(seen) >= 1)

    assert time.monotonic() - started >= 0.3
    assert again[0].offset == first.offset
    assert again[0].attempt == 2
    await consumer.ack(again[0])


async def test_nak_hands_the_delivery_back(event_log: EventLog, family: str) -> None:
    await event_log.append([make_event(family, n=1)])
    consumer = await event_log.consumer("picky", family, ack_wait=30)

    (first,) = await fetch_until(consumer, lambda seen: len(seen) >= 1)
    await consumer.nak(first)
    (again,) = await fetch_until(consumer, lambda seen: len(seen) >= 1, within=5)

    assert again.offset == first.offset
    assert again.attempt == 2
    await consumer.ack(again)


async def test_reopened_consumer_resumes_after_last_ack(open_log: OpenLog, family: str) -> None:
    log = await open_log()
    await log.append([make_event(family, n=i) for i in range(4)])
    consumer = await log.consumer("resumer", family, ack_wait=0.5)
    got = await fetch_until(consumer, lambda seen: len(seen) >= 2)
    for delivery in got[:2]:
        await consumer.ack(delivery)
    await consumer.close()

    same_log = await log.consumer("resumer", family, ack_wait=0.5)
    resumed = await fetch_until(same_log, lambda seen: 2 in payload_numbers(seen))
    assert not {0, 1} & set(payload_numbers(resumed))
    for delivery in resumed:
        if delivery.event.payload["n"] == 2:
            await same_log.ack(delivery)
    await same_log.close()
    await log.close()

    reopened_log = await open_log()
    after_restart = await reopened_log.consumer("resumer", family, ack_wait=0.5)
    rest = await fetch_until(after_restart, lambda seen: 3 in payload_numbers(seen))
    assert set(payload_numbers(rest)) == {3}


async def test_reset_consumer_replays_after_the_offset(event_log: EventLog, family: str) -> None:
    placed = await event_log.append([make_event(family, n=i) for i in range(5)])
    consumer = await event_log.consumer("rebuild", family, ack_wait=5)
    for delivery in await fetch_until(consumer, lambda seen: len(seen) >= 5):
        await consumer.ack(delivery)

    await event_log.reset_consumer("rebuild", family, offset=placed[1].offset)
    replay = await fetch_until(consumer, lambda seen: len(seen) >= 3)
    assert payload_numbers(replay) == [2, 3, 4]
    for delivery in replay:
        await consumer.ack(delivery)

    await event_log.reset_consumer("rebuild", family, offset=0)
    again = await fetch_until(consumer, lambda seen: len(seen) >= 5)
    assert payload_numbers(again) == [0, 1, 2, 3, 4]


async def test_reset_of_a_consumer_that_started_new_replays(event_log: EventLog, family: str) -> None:
    await event_log.append([make_event(family, n=0)])
    consumer = await event_log.consumer("late", family, start=StartAt.NEW, ack_wait=5)
    await event_log.append([make_event(family, n=1)])
    got = await fetch_until(consumer, lambda seen: len(seen) >= 1)
    assert payload_numbers(got) == [1]
    await consumer.ack(got[0])

    await event_log.reset_consumer("late", family, offset=0)
    replay = await fetch_until(consumer, lambda seen: len(seen) >= 2)
    assert payload_numbers(replay) == [0, 1]


async def test_consumer_can_start_at_an_offset(event_log: EventLog, family: str) -> None:
    placed = await event_log.append([make_event(family, n=i) for i in range(4)])
    consumer = await event_log.consumer("from_two", family, start=placed[1].offset)
    got = await fetch_until(consumer, lambda seen: len(seen) >= 2)
    assert payload_numbers(got) == [2, 3]


async def test_differently_named_consumers_each_see_everything(event_log: EventLog, family: str) -> None:
    await event_log.append([make_event(family, n=i) for i in range(3)])
    alarms = await event_log.consumer("alarms", family)
    stats = await event_log.consumer("statistics", family)

    assert payload_numbers(await fetch_until(alarms, lambda seen: len(seen) >= 3)) == [0, 1, 2]
    assert payload_numbers(await fetch_until(stats, lambda seen: len(seen) >= 3)) == [0, 1, 2]


async def test_same_named_consumers_share_the_work(event_log: EventLog, family: str) -> None:
    await event_log.append([make_event(family, n=i) for i in range(6)])
    one = await event_log.consumer("workers", family, ack_wait=30)
    two = await event_log.consumer("workers", family, ack_wait=30)

    first = await one.fetch(3, timeout=2)
    second = await fetch_until(two, lambda seen: len(first) + len(seen) >= 6)
    assert sorted(payload_numbers(first) + payload_numbers(second)) == list(range(6))


async def test_concurrent_members_of_a_group_never_get_the_same_event(
    event_log: EventLog, family: str, backend: str, request: pytest.FixtureRequest
) -> None:
    await event_log.append([make_event(family, n=i) for i in range(10)])
    one = await event_log.consumer("crew", family, ack_wait=30)
    two = await event_log.consumer("crew", family, ack_wait=30)

    first, second = await asyncio.gather(one.fetch(10, timeout=1), two.fetch(10, timeout=1))
    assert not {d.offset for d in first} & {d.offset for d in second}


# -- live, health, lifecycle ------------------------------------------------------------------


async def test_live_sees_new_appends_and_not_duplicates(event_log: EventLog, family: str) -> None:
    received: list[Event] = []
    got_one = asyncio.Event()

    async def watch() -> None:
        async for event in event_log.live():
            if event.family == family:
                received.append(event)
                got_one.set()

    watcher = asyncio.create_task(watch())
    try:
        # the subscription starts inside the task: append until it is seen instead of guessing a delay
        deadline = time.monotonic() + 10
        while not got_one.is_set():
            assert time.monotonic() < deadline, "live() never saw an appended event"
            await event_log.append([make_event(family, "probe")])
            await asyncio.sleep(0)
            await asyncio.wait([asyncio.ensure_future(got_one.wait())], timeout=0.1)

        keyed = make_event(family, "keyed", dedup_key=f"{family}:once")
        await event_log.append([keyed])
        await event_log.append([make_event(family, "keyed", dedup_key=f"{family}:once")])
        marker = make_event(family, "marker")
        await event_log.append([marker])
        async with asyncio.timeout(5):
            while marker.id not in {e.id for e in received}:
                got_one.clear()
                await got_one.wait()
        assert [e.id for e in received if e.kind == keyed.kind] == [keyed.id]
    finally:
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watcher


async def test_ping_answers_while_open(event_log: EventLog) -> None:
    await event_log.ping()


async def test_closed_log_refuses_appends_and_pings(event_log: EventLog, family: str) -> None:
    await event_log.close()
    with pytest.raises(EventLogUnavailable):
        await event_log.append([make_event(family)])
    with pytest.raises(EventLogUnavailable):
        await event_log.ping()
    await event_log.close()  # closing twice is fine


async def test_open_event_log_picks_the_backend_from_the_url(
    backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "nats":
        url = request.getfixturevalue("nats_server").url
        log = open_event_log(url, replicas=1, duplicate_window_s=60)
        assert isinstance(log, NatsEventLog)
    else:
        url = f"sqlite:///{request.getfixturevalue('tmp_path') / 'x.db'}"
        log = open_event_log(url)
        assert isinstance(log, SqliteEventLog)
    assert log.backend == backend
    with pytest.raises(EventLogError):
        open_event_log("kafka://nowhere")


async def test_nats_start_fails_loudly_when_nobody_listens() -> None:
    from tests._servers.nats import free_port

    log = NatsEventLog.from_url(f"nats://127.0.0.1:{free_port()}")
    with pytest.raises(EventLogUnavailable):
        await log.start()
    await log.close()
