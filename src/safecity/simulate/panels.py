"""DC-09 alarm panels on TCP: real frames from our own encoder, real sockets, real retries.

A receiver is only as good as what it survives, so the panels behave like field equipment: each
message takes the panel's next sequence number (9999 wraps to 0001); the panel waits for the reply
that echoes it; on silence or NAK it re-sends the same event with a fresh timestamp, as DC-09
prescribes, and gives up after `max_retries`; on DUH it logs and drops the message. Panels share a
few TCP connections, as they would behind a communicator or an IP receiver line, and a connection
that drops is re-opened and what was in flight is sent again. Every message ends in a
`MessageRecord` carrying the dedup key the receiver derives from it, so a crash test can hold the
event log to every ACK it got.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import TYPE_CHECKING, Any

from safecity.receivers.contact_id import ContactIdEvent, Qualifier, format_contact_id
from safecity.receivers.dc09_codec import (
    Dc09Account,
    Dc09Decoder,
    Dc09Message,
    FrameFailure,
    SiaEvent,
    dedup_key,
    encode_frame,
    format_sia_data,
    format_timestamp,
    next_sequence,
)

if TYPE_CHECKING:
    from safecity.services import Services

log = logging.getLogger(__name__)

HELSINKI = (60.17, 24.94)
_METRES_PER_DEGREE = 111_320.0  # a neighbourhood-sized spread needs no geodesy (geo/ does the real thing)

# -- accounts ----------------------------------------------------------------------------------------
_KINDS = ("building_panic_button", "apartment", "facility", "fire_panel")
_KIND_WEIGHTS = (45, 35, 12, 8)
_CONTACT_ID_SHARE = {"building_panic_button": 0.2, "apartment": 0.2, "facility": 0.4, "fire_panel": 0.6}
_STREETS = (
    "Mannerheimintie", "Hämeentie", "Mechelininkatu", "Runeberginkatu", "Fleminginkatu", "Itämerenkatu",
    "Sturenkatu", "Tehtaankatu", "Aleksis Kiven katu", "Mäkelänkatu", "Pohjoisesplanadi", "Lauttasaarentie",
)
_KIND_LABEL = {
    "building_panic_button": "Corridor panic buttons",
    "apartment": "Apartment",
    "facility": "Facility",
    "fire_panel": "Fire panel",
}


@dataclass(frozen=True, slots=True)
class PanelAccount:
    """One panel as the platform registers it; `protocol` is what it speaks (SIA-DCS or ADM-CID)."""

    number: str
    kind: str
    key: bytes | None
    lat: float
    lon: float
    name: str
    address: str
    link_test_interval_s: int
    protocol: str = "SIA-DCS"

    def fields(self) -> dict[str, Any]:
        """The fields `AlarmService.create_account` takes."""
        return {
            "number": self.number, "kind": self.kind, "name": self.name, "address": self.address,
            "lat": self.lat, "lon": self.lon, "key_hex": self.key.hex().upper() if self.key else None,
            "link_test_interval_s": self.link_test_interval_s,
        }

    def dc09_account(self) -> Dc09Account:
        """What a receiver's directory holds for this panel."""
        return Dc09Account(key=self.key)


def demo_accounts(
    count: int,
    *,
    seed: int = 2024,
    encrypted_share: float = 0.5,
    center: tuple[float, float] = HELSINKI,
    radius_m: float = 8000.0,
    link_test_interval_s: int = 90,
) -> list[PanelAccount]:
    """`count` panels spread over a disc around `center`; the same arguments give the same panels.

    Each panel draws from its own generator (seeded by `seed` and its index), so panel 17 is the same
    whether 20 or 10,000 are asked for. Encrypted panels are spread evenly, exactly `encrypted_share`
    of them rounded down, each with its own AES-128 key.
    """
    if not 0.0 <= encrypted_share <= 1.0:
        raise ValueError("encrypted_share must lie between 0 and 1")
    accounts = []
    for index in range(count):
        rng = random.Random(f"{seed}:{index}")
        kind = rng.choices(_KINDS, _KIND_WEIGHTS)[0]
        key = rng.randbytes(16)
        encrypted = math.floor((index + 1) * encrypted_share) > math.floor(index * encrypted_share)
        distance, bearing = radius_m * math.sqrt(rng.random()), rng.uniform(0.0, 2 * math.pi)
        lat = center[0] + distance * math.cos(bearing) / _METRES_PER_DEGREE
        lon = center[1] + distance * math.sin(bearing) / (_METRES_PER_DEGREE * math.cos(math.radians(center[0])))
        address = f"{rng.choice(_STREETS)} {rng.randint(1, 120)}, Helsinki"
        staircase = f" {rng.choice('ABCDEF')}" if kind in ("building_panic_button", "apartment") else ""
        accounts.append(PanelAccount(
            number=f"{index + 0x10000:X}", kind=kind, key=key if encrypted else None,
            lat=round(lat, 6), lon=round(lon, 6), name=f"{_KIND_LABEL[kind]}, {address.split(',')[0]}{staircase}",
            address=address, link_test_interval_s=link_test_interval_s,
            protocol="ADM-CID" if rng.random() < _CONTACT_ID_SHARE[kind] else "SIA-DCS",
        ))
    return accounts


async def provision(services: Services, accounts: Iterable[PanelAccount]) -> int:
    """Create the accounts the platform does not know yet; returns how many were created."""
    from safecity.alarms.service import AccountExists

    known = set(await services.alarms.account_keys())
    created = 0
    for account in accounts:
        if account.number in known:
            continue
        try:
            await services.alarms.create_account(account.fields(), actor="simulator", actor_role="admin")
        except AccountExists:
            continue  # created meanwhile by someone else
        created += 1
    return created


# -- what panels report ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PanelEvent:
    """One report: a SIA code and its number (zone or user, three digits; None when the code has none)."""

    code: str
    number: str | None = None
    area: str = "1"


# SIA code → its Contact ID equivalent (qualifier, event code); open/close is 401 with 1 = open, 3 = close.
CONTACT_ID_EQUIVALENT: Mapping[str, tuple[Qualifier, str]] = {
    "PA": (Qualifier.NEW, "120"), "PR": (Qualifier.RESTORE, "120"),
    "BA": (Qualifier.NEW, "130"), "BR": (Qualifier.RESTORE, "130"),
    "FA": (Qualifier.NEW, "110"), "FR": (Qualifier.RESTORE, "110"),
    "TA": (Qualifier.NEW, "137"), "TR": (Qualifier.RESTORE, "137"),
    "AT": (Qualifier.NEW, "301"), "AR": (Qualifier.RESTORE, "301"),
    "OP": (Qualifier.NEW, "401"), "CL": (Qualifier.RESTORE, "401"),
    "RP": (Qualifier.NEW, "602"),
}

# What each kind of panel reports, how often (weight), and what its number counts: corridor buttons
# are numbered by floor, open/close reports carry the user, power and test reports carry nothing.
_ZONE, _FLOOR, _USER, _NONE = (1, 32), (1, 12), (1, 8), None
_REPERTOIRE: Mapping[str, tuple[tuple[str, int, tuple[int, int] | None], ...]] = {
    "building_panic_button": (
        ("PA", 40, _FLOOR), ("PR", 25, _FLOOR), ("TA", 8, _FLOOR), ("TR", 7, _FLOOR),
        ("AT", 5, _NONE), ("AR", 5, _NONE), ("RP", 10, _NONE),
    ),
    "apartment": (
        ("BA", 15, _ZONE), ("BR", 12, _ZONE), ("OP", 20, _USER), ("CL", 20, _USER), ("PA", 5, _ZONE),
        ("FA", 3, _ZONE), ("FR", 2, _ZONE), ("TA", 4, _ZONE), ("TR", 3, _ZONE), ("AT", 4, _NONE),
        ("AR", 4, _NONE), ("RP", 8, _NONE),
    ),
    "facility": (
        ("BA", 15, _ZONE), ("BR", 12, _ZONE), ("OP", 20, _USER), ("CL", 20, _USER), ("TA", 5, _ZONE),
        ("TR", 4, _ZONE), ("FA", 3, _ZONE), ("FR", 3, _ZONE), ("AT", 5, _NONE), ("AR", 5, _NONE),
        ("RP", 8, _NONE),
    ),
    "fire_panel": (
        ("FA", 25, _ZONE), ("FR", 20, _ZONE), ("TA", 8, _ZONE), ("TR", 7, _ZONE), ("AT", 12, _NONE),
        ("AR", 12, _NONE), ("RP", 16, _NONE),
    ),
}


def random_event(kind: str, rng: random.Random) -> PanelEvent:
    repertoire = _REPERTOIRE[kind]
    code, _, numbers = rng.choices(repertoire, [weight for _, weight, _ in repertoire])[0]
    return PanelEvent(code, None if numbers is None else f"{rng.randint(*numbers):03d}")


def message_data(account: PanelAccount, event: PanelEvent) -> str:
    """The data block of a message reporting `event`, in the panel's protocol."""
    if account.protocol == "ADM-CID":
        qualifier, code = CONTACT_ID_EQUIVALENT[event.code]
        block = format_contact_id(ContactIdEvent(qualifier, code, f"{int(event.area):02d}", event.number or "000"))
        return f"#{account.number}|{block}"
    return format_sia_data(account.number, [SiaEvent(event.code, zone=event.number, area=event.area)])


# -- records and counters ----------------------------------------------------------------------------
class Outcome(StrEnum):
    ACK = "ack"
    DUH = "duh"
    FAILED = "failed"  # no ACK after max_retries re-sends
    ABANDONED = "abandoned"  # the run ended first


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One message from first send to outcome. `data` is the content every re-send repeats."""

    account: str
    sequence: int
    protocol_id: str
    data: str
    dedup_key: str  # the receiver's `dc09_codec.dedup_key` of this message
    encrypted: bool
    event: PanelEvent | None  # None for a link test
    outcome: Outcome
    attempts: int
    latency_s: float | None  # last send → its ACK
    elapsed_s: float  # first send → outcome


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class PanelStats:
    generated: int = 0  # events and link tests handed to panels
    sent: int = 0  # frames written, re-sends included
    acked: int = 0
    naked: int = 0
    duh: int = 0
    timeouts: int = 0
    retries: int = 0  # re-sends: after a timeout, a NAK or a lost connection
    failed: int = 0
    reconnects: int = 0
    latencies: list[float] = field(default_factory=list)

    def latency_ms(self, q: float) -> float | None:
        value = _percentile(self.latencies, q)
        return None if value is None else value * 1000

    def summary(self) -> str:
        p50, p99 = self.latency_ms(0.5), self.latency_ms(0.99)
        latency = "-" if p50 is None or p99 is None else f"p50={p50:.1f}ms p99={p99:.1f}ms"
        return (f"generated={self.generated} sent={self.sent} acked={self.acked} naked={self.naked} "
                f"duh={self.duh} timeouts={self.timeouts} retries={self.retries} failed={self.failed} "
                f"reconnects={self.reconnects} {latency}")


# -- connections -------------------------------------------------------------------------------------
class _Lost(Enum):
    TIMEOUT = "timeout"
    CONNECTION = "connection"


Reply = tuple[Dc09Message, float] | _Lost  # the reply and when it arrived (loop time), or why none came


class _Line:
    """One TCP connection shared by several panels, kept up until cancelled.

    Replies are matched by (account, sequence); a NAK echoes neither, and since a receiver answers in
    order it belongs to the oldest message waiting.
    """

    def __init__(
        self,
        name: str,
        address: tuple[str, int],
        keys: Mapping[str, Dc09Account],
        connect_slots: asyncio.Semaphore,
        stats: PanelStats,
    ) -> None:
        self._name = name
        self._address = address
        self._keys = keys  # to open encrypted replies: an ACK that does not decrypt is no ACK
        self._connect_slots = connect_slots  # a listen backlog overflows when thousands connect at once
        self._stats = stats
        self._pending: dict[tuple[str, int], asyncio.Future[Reply]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._connected = asyncio.Event()

    async def run(self) -> None:
        """Connect, read replies, and reconnect with backoff when the connection drops."""
        backoff = 0.05
        first = True
        while True:
            try:
                async with self._connect_slots:
                    reader, writer = await asyncio.open_connection(*self._address)
            except OSError as error:
                log.debug("panel line %s connect failed error=%s", self._name, error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            if not first:
                self._stats.reconnects += 1
            first, backoff = False, 0.05
            self._writer = writer
            self._connected.set()
            try:
                await self._read(reader)
            finally:
                self._connected.clear()
                self._writer = None
                writer.close()
                for future in self._pending.values():
                    if not future.done():
                        future.set_result(_Lost.CONNECTION)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        decoder = Dc09Decoder(self._keys.get)
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = await reader.read(65536)
            except OSError:
                return
            if not data:
                return
            decoder.feed(data)
            arrived = loop.time()
            while (result := decoder.next_frame()) is not None:
                if isinstance(result, FrameFailure):  # not a reply: the panel's timer runs out
                    log.warning("panel line %s unreadable reply error=%s", self._name, result.error)
                    continue
                self._take(result, arrived)

    def _take(self, reply: Dc09Message, arrived: float) -> None:
        if reply.protocol_id == "NAK":
            future = next(iter(self._pending.values()), None)
        else:
            future = self._pending.get((reply.account_id or "", reply.sequence))
        if future is not None and not future.done():
            future.set_result((reply, arrived))

    async def exchange(self, account: str, sequence: int, frame: Callable[[], bytes], timeout_s: float) -> Reply:
        """Send when connected (building the frame then, so its timestamp is fresh) and wait for the reply."""
        await self._connected.wait()
        writer = self._writer
        if writer is None or writer.is_closing():
            self._lost(writer)
            return _Lost.CONNECTION
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        key = (account.upper(), sequence)
        self._pending[key] = future
        try:
            writer.write(frame())
            self._stats.sent += 1
            try:
                async with asyncio.timeout(timeout_s):
                    await writer.drain()
                    return await future
            except TimeoutError:
                return _Lost.TIMEOUT
            except OSError:
                self._lost(writer)
                return _Lost.CONNECTION
        finally:
            del self._pending[key]

    def _lost(self, writer: asyncio.StreamWriter | None) -> None:
        """The line is down: stop everyone sending on it until the reader task has reconnected.

        Closing the writer makes the reader task see the end of the stream at once, so a dead line
        cannot leave panels re-sending into a closed socket in a tight loop.
        """
        self._connected.clear()
        if writer is not None:
            writer.close()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


# -- panels ------------------------------------------------------------------------------------------
@dataclass(eq=False)
class _Panel:
    account: PanelAccount
    line: _Line
    sequence: int
    next_link_test: float
    queue: deque[PanelEvent | None] = field(default_factory=deque)  # None: a link test
    wake: asyncio.Event = field(default_factory=asyncio.Event)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class PanelSimulator:
    """Panels reporting to one DC-09 receiver over TCP.

    Random events arrive at `rate_per_s` across all panels (a Poisson process; the attribute may be
    changed while running), link tests every `link_test_interval_s` per panel (0: none) from a random
    start. `burst` and `enqueue` add events on demand. `acked` lists every ACKed message (when
    `keep_acked`), `unacked` those that got DUH, ran out of retries or were in flight at `close`;
    `on_ack` is called for each ACK as it arrives.
    """

    def __init__(
        self,
        host: str,
        port: int,
        accounts: Sequence[PanelAccount],
        *,
        rate_per_s: float = 1.0,
        link_test_interval_s: float = 90.0,
        connections: int | None = None,
        ack_timeout_s: float = 5.0,
        max_retries: int = 3,
        clock: Callable[[], datetime] = _utcnow,
        seed: int | None = None,
        start_sequences: Mapping[str, int] | None = None,
        receiver: str | None = "1",
        line: str = "1",
        on_ack: Callable[[MessageRecord], None] | None = None,
        keep_acked: bool = True,
        connect_concurrency: int = 64,
    ) -> None:
        if not accounts:
            raise ValueError("a simulator needs at least one account")
        self.host, self.port = host, port
        self.rate_per_s = rate_per_s
        self.link_test_interval_s = link_test_interval_s
        self.ack_timeout_s = ack_timeout_s
        self.max_retries = max_retries
        self.clock = clock
        self.receiver, self.line = receiver, line
        self.on_ack = on_ack
        self.keep_acked = keep_acked
        self.stats = PanelStats()
        self.acked: list[MessageRecord] = []
        self.unacked: list[MessageRecord] = []
        self._rng = random.Random(seed)
        keys = {account.number.upper(): account.dc09_account() for account in accounts}
        slots = asyncio.Semaphore(connect_concurrency)
        count = max(1, min(len(accounts), connections or 200))
        self._lines = [_Line(f"{index + 1}", (host, port), keys, slots, self.stats) for index in range(count)]
        starts = start_sequences or {}
        self._panels = [
            _Panel(account, self._lines[index % count],
                   sequence=starts.get(account.number, self._rng.randint(0, 9998)), next_link_test=0.0)
            for index, account in enumerate(accounts)
        ]
        self._by_number = {panel.account.number: panel for panel in self._panels}
        self._tasks: list[asyncio.Task[None]] = []
        self._outstanding = 0  # queued or in flight
        self._idle = asyncio.Event()
        self._idle.set()
        self._generating = False

    # -- feeding -------------------------------------------------------------------------------
    def enqueue(self, number: str, event: PanelEvent | None = None) -> None:
        """Have panel `number` report `event` (None: a link test) after what it is already sending."""
        panel = self._by_number[number]
        panel.queue.append(event)
        panel.wake.set()
        self.stats.generated += 1
        self._outstanding += 1
        self._idle.clear()

    def burst(self, count: int) -> None:
        """`count` random events at once, on random panels."""
        for _ in range(count):
            panel = self._rng.choice(self._panels)
            self.enqueue(panel.account.number, random_event(panel.account.kind, self._rng))

    @property
    def outstanding(self) -> int:
        """Messages queued or in flight."""
        return self._outstanding

    @property
    def connections_up(self) -> int:
        return sum(line.connected for line in self._lines)

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect and start reporting; `stop_generating`, `drain` and `close` end it (`run` does all)."""
        if self._tasks:
            raise RuntimeError("the simulator is running already")
        loop = asyncio.get_running_loop()
        now, interval = loop.time(), self.link_test_interval_s
        for panel in self._panels:
            panel.next_link_test = now + self._rng.uniform(0, interval) if interval > 0 else math.inf
        self._generating = True
        self._tasks = [loop.create_task(line.run()) for line in self._lines]
        self._tasks += [loop.create_task(self._run_panel(panel)) for panel in self._panels]
        self._tasks.append(loop.create_task(self._generate()))

    def stop_generating(self) -> None:
        """No new events or link tests; what is queued or in flight still goes out."""
        self._generating = False
        for panel in self._panels:
            panel.wake.set()

    async def drain(self, timeout_s: float) -> bool:
        """Wait until nothing is queued or in flight; False if that took longer than `timeout_s`."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Stop everything; a message in flight is recorded as abandoned, one still queued is dropped."""
        self._generating = False
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, Exception):
                log.error("panel simulator task failed", exc_info=result)
        for line in self._lines:
            line.close()

    async def run(
        self, duration_s: float | None = None, *, stop: asyncio.Event | None = None, drain_s: float | None = None
    ) -> PanelStats:
        """Report for `duration_s` or until `stop` is set, then let what is in flight finish (up to
        `drain_s`, by default long enough for every retry) and close."""
        if duration_s is None and stop is None:
            raise ValueError("give a duration or a stop event")
        await self.start()
        try:
            waiter = asyncio.Event() if stop is None else stop
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter.wait(), duration_s)
            self.stop_generating()
            if drain_s is None:
                drain_s = self.ack_timeout_s * (self.max_retries + 1) + 1.0
            await self.drain(drain_s)
        finally:
            await self.close()
        return self.stats

    # -- the loops -----------------------------------------------------------------------------
    async def _generate(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while self._generating:
            rate, now = self.rate_per_s, loop.time()
            if rate <= 0:
                await asyncio.sleep(0.05)
                next_at = loop.time()
                continue
            while next_at <= now:
                self.burst(1)
                next_at += self._rng.expovariate(rate)
            await asyncio.sleep(min(next_at - now, 0.05))

    async def _run_panel(self, panel: _Panel) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not panel.queue:
                if not self._generating:
                    panel.wake.clear()
                    await panel.wake.wait()  # stopped: only `enqueue` brings more
                    continue
                panel.wake.clear()
                deadline = panel.next_link_test if math.isfinite(panel.next_link_test) else None
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(deadline):
                        await panel.wake.wait()
                now = loop.time()
                if not panel.queue and self._generating and now >= panel.next_link_test:
                    panel.next_link_test += self.link_test_interval_s
                    if panel.next_link_test <= now:  # far behind (the panel was busy): no catching up
                        panel.next_link_test = now + self.link_test_interval_s
                    self.enqueue(panel.account.number, None)
                continue
            event = panel.queue.popleft()
            try:
                await self._deliver(panel, event)
            finally:
                self._outstanding -= 1
                if self._outstanding == 0:
                    self._idle.set()

    async def _deliver(self, panel: _Panel, event: PanelEvent | None) -> None:
        loop = asyncio.get_running_loop()
        account = panel.account
        panel.sequence = sequence = next_sequence(panel.sequence)
        protocol_id = "NULL" if event is None else account.protocol
        data = "" if event is None else message_data(account, event)
        # the receiver's dedup key, from the same function, without encoding and parsing a frame
        key = dedup_key(Dc09Message(protocol_id, account.key is not None, sequence, self.receiver, self.line,
                                    account.number, body="", raw=b"", data=data))

        def frame() -> bytes:
            nonlocal key
            stamp = self.clock()
            if protocol_id == "NULL":  # a link test's key includes its timestamp: each one is a sign of life
                key = dedup_key(Dc09Message(protocol_id, account.key is not None, sequence, self.receiver, self.line,
                                            account.number, body="", raw=b"", data=data,
                                            timestamp_text=format_timestamp(stamp)))
            return encode_frame(protocol_id, sequence=sequence, account=account.number, data=data, line=self.line,
                                receiver=self.receiver, timestamp=stamp, key=account.key)

        attempts = failures = 0
        first_sent = loop.time()
        outcome, latency = Outcome.ABANDONED, None
        try:
            while True:
                attempts += 1
                sent_at = loop.time()
                reply = await panel.line.exchange(account.number, sequence, frame, self.ack_timeout_s)
                if isinstance(reply, tuple):
                    message, arrived = reply
                    if message.protocol_id == "ACK":
                        outcome, latency = Outcome.ACK, arrived - sent_at
                        break
                    if message.protocol_id == "DUH":
                        log.warning("panel DUH account=%s seq=%04d", account.number, sequence)
                        outcome = Outcome.DUH
                        break
                    self.stats.naked += 1
                    failures += 1
                elif reply is _Lost.TIMEOUT:
                    self.stats.timeouts += 1
                    failures += 1
                else:
                    await asyncio.sleep(0.05)  # the line is reconnecting: do not spin
                # a lost connection is not the receiver's answer: re-send once reconnected, whatever the count
                if failures > self.max_retries:
                    log.warning("panel gave up account=%s seq=%04d attempts=%d", account.number, sequence, attempts)
                    outcome = Outcome.FAILED
                    break
                self.stats.retries += 1
        finally:
            record = MessageRecord(account.number, sequence, protocol_id, data, key, account.key is not None, event,
                                   outcome, attempts, latency, loop.time() - first_sent)
            self._record(record)

    def _record(self, record: MessageRecord) -> None:
        if record.outcome is Outcome.ACK:
            self.stats.acked += 1
            assert record.latency_s is not None
            self.stats.latencies.append(record.latency_s)
            if self.keep_acked:
                self.acked.append(record)
            if self.on_ack is not None:
                self.on_ack(record)
            return
        if record.outcome is Outcome.DUH:
            self.stats.duh += 1
        elif record.outcome is Outcome.FAILED:
            self.stats.failed += 1
        self.unacked.append(record)
