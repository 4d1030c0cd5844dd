"""Positions over MQTT against the machine's real Mosquitto (127.0.0.1:1883): never mocked, never skipped.

Every test uses its own topic prefix and client ids, so runs and tests do not see each other's
messages or sessions.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import aiomqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safecity.bus import Appended, EventLogUnavailable
from safecity.bus.sqlite import SqliteEventLog
from safecity.config import Settings
from safecity.dispatch.events import PositionReported
from safecity.events import Event
from safecity.receivers.mqtt_positions import (
    BadPayload,
    BrokerAddress,
    MqttPosition,
    MqttPositionReceiver,
    decode_position,
    start_receiver,
    unit_of,
)

BROKER = "mqtt://127.0.0.1:1883"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


# -- the codec --------------------------------------------------------------------------------------------
def test_unit_is_the_level_the_plus_matched() -> None:
    assert unit_of("safecity/units/car-12/position", "safecity/units/+/position") == "car-12"
    assert unit_of("run1/safecity/units/7/position", "run1/safecity/units/+/position") == "7"
    assert unit_of("safecity/units/7/status", "safecity/units/+/position") is None
    assert unit_of("safecity/units/position", "safecity/units/+/position") is None
    assert unit_of("safecity/units//position", "safecity/units/+/position") is None
    assert unit_of("safecity/units/car-12/position", "$share/receivers/safecity/units/+/position") == "car-12"


def test_full_payload() -> None:
    decoded = decode_position("car-12", b'{"lat": 52.52, "lon": 13.405, "ts": 1700000000, "speed": 12.5, '
                                        b'"heading": 270, "acc": 4.5, "batt": 81}')
    assert decoded == MqttPosition("car-12", 52.52, 13.405, datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
                                   speed_mps=12.5, heading_deg=270, accuracy_m=4.5, battery_pct=81)


@pytest.mark.parametrize(("ts", "expected"), [
    ("2023-11-14T22:13:20Z", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
    (1700000000.5, datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=UTC)),
    (1700000000123, datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)),
])
def test_time_forms(ts: object, expected: datetime) -> None:
    decoded = decode_position("u", json.dumps({"lat": 1, "lon": 2, "ts": ts}).encode())
    assert isinstance(decoded, MqttPosition) and decoded.recorded_at == expected


def test_unknowns_and_out_of_range_extras_become_none() -> None:
    decoded = decode_position("u", b'{"lat": 1, "lon": 2, "speed": -1, "heading": -1, "acc": -1, "batt": 140}')
    assert decoded == MqttPosition("u", 1.0, 2.0)


@pytest.mark.parametrize("payload", [
    b"garbage", b"[1, 2]", b'{"lat": 1}', b'{"lat": 91, "lon": 0}', b'{"lat": "1", "lon": 2}',
    b'{"lat": 1, "lon": 2, "ts": "soon"}', b'{"lat": 1, "lon": 2, "ts": true}', b'{"lat": 1e999, "lon": 2}',
    b'{"lat": 1, "lon": 2, "speed": "fast"}', b"", b'{"lat": 1, "lon": 2, "pad": "' + b"x" * 20_000 + b'"}',
])
def test_bad_payloads_say_why(payload: bytes) -> None:
    decoded = decode_position("u", payload)
    assert isinstance(decoded, BadPayload) and decoded.reason


def test_broker_url_forms() -> None:
    assert BrokerAddress.from_url("mqtt://127.0.0.1") == BrokerAddress("127.0.0.1", 1883)
    assert BrokerAddress.from_url("mqtts://user:p%40ss@broker:8884") == BrokerAddress("broker", 8884, "user", "p@ss",
                                                                                      True)
    with pytest.raises(ValueError):
        BrokerAddress.from_url("http://broker")


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.binary(max_size=200),
    st.dictionaries(st.sampled_from(["lat", "lon", "ts", "speed", "heading", "acc", "batt"]),
                    st.one_of(st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(),
                              st.text(max_size=30))).map(lambda d: json.dumps(d).encode()),
), st.text(max_size=70))
def test_fuzzed_payloads_decode_or_are_dropped(payload: bytes, unit: str) -> None:
    decoded = decode_position(unit, payload)
    assert isinstance(decoded, (MqttPosition, BadPayload))


# -- against the real broker ----------------------------------------------------------------------------------
@dataclass
class Setup:
    log: SqliteEventLog
    prefix: str

    @property
    def topic_filter(self) -> str:
        return f"{self.prefix}/safecity/units/+/position"

    def topic(self, unit: str) -> str:
        return f"{self.prefix}/safecity/units/{unit}/position"

    def receiver(self, events: object = None, client_id: str = "receiver") -> MqttPositionReceiver:
        return MqttPositionReceiver(events or self.log, lambda: NOW, url=BROKER,  # type: ignore[arg-type]
                                    topic_filter=self.topic_filter, client_id=f"{self.prefix}-{client_id}",
                                    session_expiry_s=60, backoff_max_s=0.5)

    async def publish(self, *messages: tuple[str, bytes]) -> None:
        async with aiomqtt.Client("127.0.0.1", 1883, identifier=f"{self.prefix}-publisher") as client:
            for unit, payload in messages:
                await client.publish(self.topic(unit), payload, qos=1)

    async def positions(self) -> list[PositionReported]:
        out = []
        for stored in await self.log.recent("unit.position_reported", limit=1000):
            payload = stored.event.typed()
            assert isinstance(payload, PositionReported)
            out.append(payload)
        return out


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    log = SqliteEventLog(tmp_path / "events.db")
    await log.start()
    try:
        yield Setup(log, f"test-{uuid.uuid4().hex[:12]}")
    finally:
        await log.close()


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def fix(ts: int, lat: float = 52.52) -> bytes:
    return json.dumps({"lat": lat, "lon": 13.405, "ts": ts, "speed": 3.5, "heading": 90, "acc": 5,
                       "batt": 64}).encode()


async def test_published_positions_land_in_the_log(setup: Setup) -> None:
    receiver = setup.receiver()
    await receiver.start()
    try:
        await receiver.wait_subscribed(5)
        await setup.publish(("car-1", fix(1700000000)), ("car-2", fix(1700000001, 48.1)))
        await until(lambda: receiver.stats.recorded == 2)
    finally:
        await receiver.stop()
    by_unit = {p.unit_id: p for p in await setup.positions()}
    assert set(by_unit) == {"car-1", "car-2"}
    car = by_unit["car-1"]
    assert (car.lat, car.lon, car.speed_mps, car.heading_deg, car.accuracy_m, car.battery_pct, car.transport) == (
        52.52, 13.405, 3.5, 90, 5, 64, "mqtt")
    assert car.recorded_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    [stored] = [s for s in await setup.log.recent() if s.event.payload["unit_id"] == "car-1"]
    assert stored.event.dedup_key == "mqtt:car-1:2023-11-14T22:13:20+00:00"


async def test_bad_payloads_are_dropped_and_the_receiver_keeps_going(setup: Setup) -> None:
    receiver = setup.receiver()
    await receiver.start()
    try:
        await receiver.wait_subscribed(5)
        await setup.publish(("car-1", b"{not json"), ("car-1", b'{"lat": 200, "lon": 0}'), ("car-1", b"\xff"),
                            ("car-1", fix(1700000000)))
        await until(lambda: receiver.stats.recorded == 1)
        assert receiver.stats.dropped == 3
        assert receiver.stats.connects == 1
    finally:
        await receiver.stop()
    assert [p.unit_id for p in await setup.positions()] == ["car-1"]


async def test_a_redelivered_position_is_recorded_once(setup: Setup) -> None:
    receiver = setup.receiver()
    await receiver.start()
    try:
        await receiver.wait_subscribed(5)
        await setup.publish(("car-1", fix(1700000000)), ("car-1", fix(1700000000)), ("car-1", fix(1700000005)))
        await until(lambda: receiver.stats.recorded + receiver.stats.duplicates == 3)
    finally:
        await receiver.stop()
    assert receiver.stats.duplicates == 1
    assert len(await setup.positions()) == 2


class FailingLog:
    """The real log, refusing the first `failures` appends as if its backend were down."""

    def __init__(self, log: SqliteEventLog, failures: int) -> None:
        self.log = log
        self.failures = failures
        self.backend = log.backend

    async def append(self, events: Sequence[Event]) -> list[Appended]:
        if self.failures > 0:
            self.failures -= 1
            raise EventLogUnavailable("backend down")
        return await self.log.append(events)


async def test_a_failed_append_is_not_acknowledged_and_the_broker_redelivers(setup: Setup) -> None:
    receiver = setup.receiver(FailingLog(setup.log, failures=2))
    await receiver.start()
    try:
        await receiver.wait_subscribed(5)
        await setup.publish(("car-1", fix(1700000000)))
        await until(lambda: receiver.stats.recorded == 1, timeout=10)
        assert receiver.stats.append_failures == 2
        assert receiver.stats.connects == 3  # reconnected after each failure; the broker delivered again
    finally:
        await receiver.stop()
    assert len(await setup.positions()) == 1


class StuckLog:
    """An append that never returns: the receiver is killed while the fix is not yet durable."""

    backend = "stuck"

    def __init__(self) -> None:
        self.called = asyncio.Event()

    async def append(self, events: Sequence[Event]) -> list[Appended]:
        self.called.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_receiver_killed_before_its_append_returned_gets_the_fix_again(setup: Setup) -> None:
    stuck = StuckLog()
    first = setup.receiver(stuck)
    await first.start()
    await first.wait_subscribed(5)
    await setup.publish(("car-1", fix(1700000000)))
    await asyncio.wait_for(stuck.called.wait(), 5)
    await first.stop()  # no PUBACK went out

    second = setup.receiver()  # same client id: the persistent session hands the fix over again
    await second.start()
    try:
        await until(lambda: second.stats.recorded == 1)
    finally:
        await second.stop()
    assert [p.unit_id for p in await setup.positions()] == ["car-1"]


async def test_positions_published_while_the_receiver_is_away_arrive_when_it_is_back(setup: Setup) -> None:
    receiver = setup.receiver()
    await receiver.start()
    await receiver.wait_subscribed(5)
    await receiver.stop()
    await setup.publish(("car-3", fix(1700000100)), ("car-4", fix(1700000200)))
    again = setup.receiver()
    await again.start()
    try:
        await until(lambda: again.stats.recorded == 2)
    finally:
        await again.stop()
    assert {p.unit_id for p in await setup.positions()} == {"car-3", "car-4"}


async def test_many_positions_arrive_in_batches(setup: Setup) -> None:
    receiver = setup.receiver()
    await receiver.start()
    try:
        await receiver.wait_subscribed(5)
        await setup.publish(*((f"car-{i % 7}", fix(1700000000 + i)) for i in range(500)))
        await until(lambda: receiver.stats.recorded == 500, timeout=15)
    finally:
        await receiver.stop()
    assert await setup.log.count() == 500


async def test_a_shared_subscription_splits_fixes_between_receivers(setup: Setup) -> None:
    shared = f"$share/{setup.prefix}/{setup.topic_filter}"
    receivers = [MqttPositionReceiver(setup.log, lambda: NOW, url=BROKER, topic_filter=shared,
                                      client_id=f"{setup.prefix}-r{i}", session_expiry_s=60) for i in range(2)]
    for receiver in receivers:
        await receiver.start()
        await receiver.wait_subscribed(5)
    try:
        await setup.publish(*((f"car-{i}", fix(1700000000 + i)) for i in range(40)))
        await until(lambda: sum(r.stats.recorded for r in receivers) == 40)
    finally:
        for receiver in receivers:
            await receiver.stop()
    assert await setup.log.count() == 40


def test_a_filter_must_name_the_unit_level_once() -> None:
    for bad in ("safecity/units/#", "safecity/+/+/position", "safecity/units/x/position", "$share/+/position"):
        with pytest.raises(ValueError):
            MqttPositionReceiver(None, lambda: NOW, url=BROKER, topic_filter=bad)  # type: ignore[arg-type]


async def test_broker_down_is_retried_without_crashing(setup: Setup) -> None:
    receiver = MqttPositionReceiver(setup.log, lambda: NOW, url="mqtt://127.0.0.1:1", client_id=f"{setup.prefix}-x",
                                    backoff_max_s=0.05)
    await receiver.start()
    await asyncio.sleep(0.3)
    assert receiver.subscriber._task is not None and not receiver.subscriber._task.done()
    assert receiver.stats.connects == 0
    await receiver.stop()


async def test_receiver_is_disabled_without_an_mqtt_url(setup: Setup) -> None:
    services = SimpleNamespace(settings=Settings(mqtt_url=None), events=setup.log, clock=lambda: NOW)
    running = await start_receiver(services)  # type: ignore[arg-type]
    assert not isinstance(running, MqttPositionReceiver)
    await running.stop()


async def forget_session(client_id: str) -> None:
    """Connect once with a clean start and no expiry, so the broker drops the persistent session."""
    async with aiomqtt.Client("127.0.0.1", 1883, identifier=client_id, protocol=aiomqtt.ProtocolVersion.V5,
                              clean_start=True):
        pass


async def test_receiver_starts_from_settings(setup: Setup) -> None:
    client_id = f"{setup.prefix}-settings"
    services = SimpleNamespace(settings=SimpleNamespace(mqtt_url=BROKER, mqtt_client_id=client_id),
                               events=setup.log, clock=lambda: NOW)
    running = await start_receiver(services)  # type: ignore[arg-type]
    try:
        assert isinstance(running, MqttPositionReceiver)
        await running.wait_subscribed(5)
        assert running.topic_filter == "safecity/units/+/position"
    finally:
        await running.stop()
        await forget_session(client_id)  # it listens on the production topic with a week-long session
