"""The panel simulator against a real DC-09 receiver (TCP, SQLite event log) and against bare sockets."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from safecity.alarms.events import LinkTestReceived, SignalReceived
from safecity.bus import EventLogError
from safecity.bus.sqlite import SqliteEventLog
from safecity.config import Settings
from safecity.events import Event
from safecity.receivers.dc09 import AccountDirectory, Dc09Handler, Dc09Server
from safecity.receivers.dc09_codec import Dc09Decoder, Dc09Message, encode_ack
from safecity.services import open_services
from safecity.simulate.cli import simulate_app
from safecity.simulate.panels import (
    CONTACT_ID_EQUIVALENT,
    HELSINKI,
    Outcome,
    PanelAccount,
    PanelEvent,
    PanelSimulator,
    demo_accounts,
    provision,
)

ACCOUNTS = demo_accounts(12)  # both protocols, plain and encrypted (checked below)
_QUALIFIER_LETTER = {1: "E", 3: "R"}


def utcnow() -> datetime:
    return datetime.now(UTC)


class AckLosingLog(SqliteEventLog):
    """Stores the events, then fails the first `failures` appends: durable, but the ACK never goes out."""

    def __init__(self, path: Path, failures: int) -> None:
        super().__init__(path)
        self.failures = failures

    async def append(self, events: Sequence[Event]) -> list:  # type: ignore[type-arg]
        result = await super().append(events)
        if self.failures > 0:
            self.failures -= 1
            raise EventLogError("process died between the commit and the ACK")
        return result


@dataclass
class Receiver:
    server: Dc09Server
    log: SqliteEventLog

    @property
    def port(self) -> int:
        return self.server.port

    async def events(self) -> list[Event]:
        out: list[Event] = []
        after = 0
        while page := await self.log.read("alarm", after=after):
            out += [stored.event for stored in page]
            after = page[-1].offset
        return out


StartReceiver = Callable[..., Awaitable[Receiver]]


@pytest.fixture
async def start_receiver(tmp_path: Path) -> AsyncIterator[StartReceiver]:
    running: list[Receiver] = []

    async def start(
        accounts: Sequence[PanelAccount] = ACCOUNTS, *, lose_acks: int = 0, clock: Callable[[], datetime] = utcnow
    ) -> Receiver:
        async def load() -> dict[str, object]:
            return {account.number: account.dc09_account() for account in accounts}

        log = AckLosingLog(tmp_path / f"events-{len(running)}.db", lose_acks)
        await log.start()
        server = Dc09Server(Dc09Handler(log, AccountDirectory(load), clock), "127.0.0.1", 0)  # type: ignore[arg-type]
        await server.start()
        receiver = Receiver(server, log)
        running.append(receiver)
        return receiver

    yield start
    for receiver in running:
        await receiver.server.stop()
        await receiver.log.close()


def simulator(port: int, accounts: Sequence[PanelAccount] = ACCOUNTS, **options: object) -> PanelSimulator:
    settings: dict[str, object] = {"rate_per_s": 0.0, "link_test_interval_s": 0.0, "ack_timeout_s": 2.0, "seed": 1}
    return PanelSimulator("127.0.0.1", port, accounts, **(settings | options))  # type: ignore[arg-type]


async def until_drained(sim: PanelSimulator, within: float = 10.0) -> None:
    await sim.start()
    try:
        assert await sim.drain(within), f"still {sim.outstanding} outstanding: {sim.stats.summary()}"
    finally:
        await sim.close()


def expected_code_and_zone(account: PanelAccount, event: PanelEvent) -> tuple[str, str | None]:
    if account.protocol == "ADM-CID":
        qualifier, code = CONTACT_ID_EQUIVALENT[event.code]
        return _QUALIFIER_LETTER[int(qualifier)] + code, event.number or "000"
    return event.code, event.number


def by_dedup_key(events: list[Event]) -> dict[str, Event]:
    """Log events by the message dedup key the simulator recorded (signals carry a `dc09:…:index` form)."""
    out: dict[str, Event] = {}
    for event in events:
        assert event.dedup_key is not None
        key = event.dedup_key
        if key.startswith("dc09:"):
            key = key.removeprefix("dc09:").rsplit(":", 1)[0]
        out[key] = event
    return out


async def test_every_report_is_acked_and_logged_with_its_account_code_and_zone(start_receiver: StartReceiver) -> None:
    receiver = await start_receiver()
    sim = simulator(receiver.port, connections=3)
    for account in ACCOUNTS:
        fire = account.kind == "fire_panel"
        sim.enqueue(account.number, PanelEvent("FA", "002") if fire else PanelEvent("BA", "007"))
    sim.burst(60)
    await until_drained(sim)

    assert (sim.stats.acked, sim.stats.sent, sim.stats.retries, sim.unacked) == (72, 72, 0, [])
    assert {(r.protocol_id, r.encrypted) for r in sim.acked} == {
        ("SIA-DCS", False), ("SIA-DCS", True), ("ADM-CID", False), ("ADM-CID", True)}
    events = await receiver.events()
    assert len(events) == 72
    logged = by_dedup_key(events)
    accounts = {account.number: account for account in ACCOUNTS}
    for record in sim.acked:
        assert record.event is not None
        payload = logged[record.dedup_key].typed()
        assert isinstance(payload, SignalReceived)
        assert (payload.account, payload.sequence, payload.protocol, payload.encrypted) == (
            record.account, record.sequence, record.protocol_id, record.encrypted)
        assert (payload.code, payload.zone) == expected_code_and_zone(accounts[record.account], record.event)


async def test_link_tests_are_logged_as_link_test_received(start_receiver: StartReceiver) -> None:
    receiver = await start_receiver()
    sim = simulator(receiver.port, link_test_interval_s=0.25)
    await sim.run(0.6)

    link_tests = [r for r in sim.acked if r.event is None]
    assert {r.account for r in link_tests} == {a.number for a in ACCOUNTS}  # every panel, jittered start
    assert all(r.protocol_id == "NULL" for r in link_tests) and sim.unacked == []
    events = await receiver.events()
    assert {e.kind for e in events} == {"alarm.link_test_received"}
    logged = by_dedup_key(events)
    assert set(logged) == {r.dedup_key for r in link_tests}
    for record in link_tests:
        payload = logged[record.dedup_key].typed()
        assert isinstance(payload, LinkTestReceived)
        assert (payload.account, payload.sequence, payload.encrypted) == (
            record.account, record.sequence, record.encrypted)


async def test_sequence_wraps_from_9999_to_0001(start_receiver: StartReceiver) -> None:
    receiver = await start_receiver()
    account = ACCOUNTS[1]
    sim = simulator(receiver.port, [account], start_sequences={account.number: 9998})
    for zone in ("001", "002", "003"):
        sim.enqueue(account.number, PanelEvent("TA", zone))
    await until_drained(sim)

    assert [r.sequence for r in sim.acked] == [9999, 1, 2]
    logged = [e.typed() for e in await receiver.events()]
    assert [(p.sequence, p.zone) for p in logged if isinstance(p, SignalReceived)] == [
        (9999, "001"), (1, "002"), (2, "003")]


async def test_lost_ack_resends_the_same_report_and_the_log_keeps_it_once(start_receiver: StartReceiver) -> None:
    receiver = await start_receiver(lose_acks=2)
    account = ACCOUNTS[1]  # encrypted: the re-sends differ in pad and timestamp, not in content
    sim = simulator(receiver.port, [account], ack_timeout_s=0.2, max_retries=3)
    sim.enqueue(account.number, PanelEvent("PA", "004"))
    await until_drained(sim)

    [record] = sim.acked
    assert (record.attempts, sim.stats.timeouts, sim.stats.retries, sim.stats.sent) == (3, 2, 2, 3)
    assert receiver.server.handler.stats.append_failures == 2
    [event] = await receiver.events()
    assert event.dedup_key == f"dc09:{record.dedup_key}:0"


async def test_nak_is_answered_with_a_fresh_timestamp(start_receiver: StartReceiver) -> None:
    receiver = await start_receiver()
    stamps = iter([utcnow() - timedelta(minutes=5)])  # the first send carries a stale clock

    def panel_clock() -> datetime:
        return next(stamps, None) or utcnow()

    account = ACCOUNTS[0]
    sim = simulator(receiver.port, [account], clock=panel_clock)
    sim.enqueue(account.number, PanelEvent("OP", "003"))
    await until_drained(sim)

    [record] = sim.acked
    assert (record.attempts, sim.stats.naked, sim.stats.retries) == (2, 1, 1)
    assert len(await receiver.events()) == 1


async def test_duh_drops_the_message_without_retrying(start_receiver: StartReceiver) -> None:
    receiver = await start_receiver(ACCOUNTS[:1])
    stranger = ACCOUNTS[2]
    sim = simulator(receiver.port, [stranger], max_retries=5)
    sim.enqueue(stranger.number, PanelEvent("BA", "001"))
    await until_drained(sim)

    [record] = sim.unacked
    assert (record.outcome, record.attempts, sim.stats.duh, sim.stats.retries) == (Outcome.DUH, 1, 1, 0)
    assert await receiver.events() == []


@dataclass
class BareReceiver:
    """A socket that answers like a receiver, or not at all; records every frame it read."""

    port: int
    frames: list[Dc09Message]
    connections: int


@pytest.fixture
async def bare_receiver() -> AsyncIterator[Callable[[int], Awaitable[BareReceiver]]]:
    """`start(hang_up_first)`: the first `hang_up_first` connections read one frame and close; then ACK."""
    servers: list[asyncio.Server] = []

    async def start(hang_up_first: int) -> BareReceiver:
        keys = {account.number: account.dc09_account() for account in ACCOUNTS}
        state = BareReceiver(0, [], 0)

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            state.connections += 1
            hang_up = state.connections <= hang_up_first
            decoder = Dc09Decoder(keys.get)
            try:
                while data := await reader.read(4096):
                    decoder.feed(data)
                    for frame in decoder.frames():
                        assert isinstance(frame, Dc09Message), frame
                        state.frames.append(frame)
                        if hang_up:
                            return
                        writer.write(encode_ack(frame, now=utcnow(), key=keys[frame.account_id or ""].key))
            finally:
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        servers.append(server)
        state.port = server.sockets[0].getsockname()[1]
        return state

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_dropped_connection_resends_what_was_in_flight(
    bare_receiver: Callable[[int], Awaitable[BareReceiver]],
) -> None:
    receiver = await bare_receiver(1)
    account = ACCOUNTS[1]
    start = utcnow().replace(microsecond=0)
    ticks = iter(range(100))

    def panel_clock() -> datetime:
        return start + timedelta(seconds=next(ticks))

    sim = simulator(receiver.port, [account], clock=panel_clock)
    sim.enqueue(account.number, PanelEvent("PA", "002"))
    await until_drained(sim)

    [record] = sim.acked
    assert (record.attempts, sim.stats.reconnects, sim.stats.retries, receiver.connections) == (2, 1, 1, 2)
    first, second = receiver.frames
    assert (first.sequence, first.data, first.encrypted) == (second.sequence, second.data, True)
    assert first.timestamp == start and second.timestamp == start + timedelta(seconds=1)


async def test_gives_up_after_max_retries_without_reply() -> None:
    async def silence(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read()
        finally:
            writer.close()

    server = await asyncio.start_server(silence, "127.0.0.1", 0)
    account = ACCOUNTS[0]
    sim = simulator(server.sockets[0].getsockname()[1], [account], ack_timeout_s=0.05, max_retries=2)
    sim.enqueue(account.number, PanelEvent("FA", "001"))
    try:
        await until_drained(sim)
    finally:
        server.close()
        await server.wait_closed()
    [record] = sim.unacked
    assert (record.outcome, record.attempts, sim.stats.timeouts, sim.stats.failed) == (Outcome.FAILED, 3, 3, 1)


async def test_provision_creates_the_missing_accounts_once(tmp_path: Path) -> None:
    accounts = demo_accounts(5)
    async with open_services(Settings(data_dir=tmp_path / "d")) as services:
        assert await provision(services, accounts[:3]) == 3
        assert await provision(services, accounts) == 2
        keys = await services.alarms.account_keys()
        stored = await services.alarms.get_account(accounts[4].number)
    assert {number: info.key for number, info in keys.items()} == {a.number: a.key for a in accounts}
    assert (stored.kind, stored.lat, stored.lon, stored.link_test_interval_s) == (
        accounts[4].kind, accounts[4].lat, accounts[4].lon, 90)


def test_demo_accounts_are_deterministic_mixed_and_around_the_centre() -> None:
    accounts = demo_accounts(400, seed=9, encrypted_share=0.25, radius_m=5000)
    assert accounts == demo_accounts(400, seed=9, encrypted_share=0.25, radius_m=5000)
    assert demo_accounts(10, seed=9, encrypted_share=0.25, radius_m=5000) == accounts[:10]
    assert accounts != demo_accounts(400, seed=10, encrypted_share=0.25, radius_m=5000)
    assert sum(a.key is not None for a in accounts) == 100
    assert all(a.key is None or len(a.key) == 16 for a in accounts)
    assert len({a.key for a in accounts if a.key}) == 100
    assert len({a.number for a in accounts}) == 400 and accounts[0].number == "10000"
    kinds = [a.kind for a in accounts]
    assert set(kinds) == {"building_panic_button", "apartment", "facility", "fire_panel"}
    assert kinds.count("building_panic_button") > kinds.count("facility") + kinds.count("fire_panel")
    assert {a.protocol for a in accounts} == {"SIA-DCS", "ADM-CID"}
    for account in accounts:
        north = (account.lat - HELSINKI[0]) * 111_320
        east = (account.lon - HELSINKI[1]) * 111_320 * math.cos(math.radians(HELSINKI[0]))
        assert math.hypot(north, east) <= 5001


async def test_cli_provisions_then_runs_the_panels(
    start_receiver: StartReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = await start_receiver(demo_accounts(4, seed=5))
    app = typer.Typer()
    app.add_typer(simulate_app, name="simulate")
    monkeypatch.setenv("SAFECITY_DATA_DIR", str(tmp_path / "cli"))
    args = ["simulate", "panels", "--accounts", "4", "--seed", "5", "--rate", "40", "--duration", "0.5",
            "--host", "127.0.0.1", "--port", str(receiver.port), "--link-test-interval", "0"]
    result = await asyncio.to_thread(CliRunner().invoke, app, args)

    assert result.exit_code == 0, result.output
    assert "provisioned 4 new accounts of 4" in result.output
    assert "done: " in result.output and " failed=0 " in result.output
    async with open_services(Settings(data_dir=tmp_path / "cli")) as services:
        assert len(await services.alarms.account_keys()) == 4

