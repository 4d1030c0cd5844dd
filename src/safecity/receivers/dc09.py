"""SIA DC-09 receiver: asyncio TCP and UDP servers around the sans-I/O codec.

For every frame: decide the reply DC-09 prescribes; for an ACK, append the decoded events to the
event log first and write the ACK only after the append returned (durable). If the log cannot take
the events, the panel gets no reply and re-sends; the dedup key (account, line, sequence, content)
keeps a re-sent frame from being recorded twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, cast

from safecity.alarms.events import AccountChanged, LinkTestReceived, SignalReceived
from safecity.bus import EventLog
from safecity.events import Event, Location
from safecity.receivers import ReceiverSpec
from safecity.receivers.contact_id import ContactIdEvent, Qualifier, classify_contact_id
from safecity.receivers.dc09_codec import (
    DEFAULT_WINDOW,
    Dc09Account,
    Dc09Decoder,
    Dc09Message,
    Decision,
    FrameFailure,
    FrameResult,
    Reply,
    TimestampWindow,
    assess,
    dedup_key,
    encode_reply,
    parse_events,
)
from safecity.receivers.sia_codes import classify_sia
from safecity.receivers.sia_dcs import SiaEvent

if TYPE_CHECKING:
    from safecity.services import Services

log = logging.getLogger(__name__)
_QUALIFIER_LETTER = {Qualifier.NEW: "E", Qualifier.RESTORE: "R", Qualifier.PREVIOUS: "P"}


class AccountDirectory:
    """Account number → key and clock offset, in memory.

    Loaded whole at start and, as a safety net, every few minutes; a changed account is re-read on
    its own (`refresh`, driven by `alarm.account_changed`); an unknown number is looked up once and,
    if it is unknown to the database too, remembered as unknown for a while, so a flood of frames
    for made-up accounts costs one cheap query per number, never a full reload each.
    """

    def __init__(
        self,
        load: Callable[[], Awaitable[dict[str, Dc09Account]]],
        load_some: Callable[[list[str]], Awaitable[dict[str, Dc09Account]]] | None = None,
        *,
        unknown_ttl_s: float = 5.0,
        max_unknown: int = 100_000,
    ) -> None:
        self._load = load
        self._load_some = load_some
        self._accounts: dict[str, Dc09Account] = {}
        self._unknown: dict[str, float] = {}  # number -> monotonic time until which it stays unknown
        self._unknown_ttl_s = unknown_ttl_s
        self._max_unknown = max_unknown
        self._lock = asyncio.Lock()

    def lookup(self, number: str) -> Dc09Account | None:
        return self._accounts.get(number.upper())

    async def reload(self, *, force: bool = True) -> None:
        async with self._lock:
            self._accounts = await self._load()
            self._unknown.clear()

    async def refresh(self, numbers: list[str]) -> None:
        """Re-read some accounts (created, changed or removed)."""
        wanted = [n.upper() for n in numbers]
        if self._load_some is not None:
            found = await self._load_some(wanted)
        else:
            everything = await self._load()
            found = {n: everything[n] for n in wanted if n in everything}
        for number in wanted:
            self._unknown.pop(number, None)
            if number in found:
                self._accounts[number] = found[number]
            else:
                self._accounts.pop(number, None)

    async def ensure(self, number: str | None) -> None:
        """Look up a number we do not know yet, once per `unknown_ttl_s`."""
        if number is None:
            return
        number = number.upper()
        if number in self._accounts:
            return
        now = time.monotonic()
        if self._unknown.get(number, 0.0) > now:
            return
        await self.refresh([number])
        if number not in self._accounts:
            if len(self._unknown) >= self._max_unknown:
                self._unknown.clear()
            self._unknown[number] = now + self._unknown_ttl_s

    def __len__(self) -> int:
        return len(self._accounts)


def events_of(
    message: Dc09Message, *, transport: str, peer: str | None, received_at: datetime
) -> list[Event]:
    """The log events of one ACK-able, opened message: one per reported event, or a link test."""
    account = message.account_id or "-"
    key = dedup_key(message)
    location = None
    if message.extended.latitude is not None and message.extended.longitude is not None:
        location = Location(lat=message.extended.latitude, lon=message.extended.longitude)
    occurred_at = message.timestamp or received_at
    common = {"transport": transport, "peer": peer, "encrypted": message.encrypted,
              "receiver": message.receiver, "line": message.line, "sequence": message.sequence}
    if message.protocol_id == "NULL":
        return [Event.of(LinkTestReceived(account=account, **common), source=f"dc09/{transport}",
                         occurred_at=occurred_at, received_at=received_at, dedup_key=key)]
    out: list[Event] = []
    for index, reported in enumerate(parse_events(message)):
        if isinstance(reported, SiaEvent):
            classification = classify_sia(reported.code)
            code, zone, partition, user = reported.code, reported.zone, reported.area, reported.user
            system = "sia"
        else:
            assert isinstance(reported, ContactIdEvent)
            classification = classify_contact_id(reported.qualifier, reported.code)
            code = _QUALIFIER_LETTER.get(reported.qualifier, "E") + reported.code
            zone, partition, user, system = reported.zone, reported.partition, reported.user, "contact_id"
        if classification is None:  # assess() already refused unknown codes; keep the type checker honest
            continue
        payload = SignalReceived(
            account=account, protocol=message.protocol_id, code_system=system, code=code, zone=zone,
            partition=partition, user=user, category=classification.category.value,
            priority=int(classification.priority), is_restore=classification.is_restore,
            is_alarm=classification.is_alarm, description=classification.description,
            panel_time=message.extended.panel_time, **common,
        )
        out.append(Event.of(payload, source=f"dc09/{transport}", occurred_at=occurred_at,
                            received_at=received_at, location=location, dedup_key=f"dc09:{key}:{index}"))
    return out


@dataclass
class Dc09Stats:
    frames: int = 0
    acks: int = 0
    naks: int = 0
    duhs: int = 0
    silent: int = 0
    append_failures: int = 0
    # seconds from the frame's last byte read to its ACK handed to the socket (the recent ones)
    ack_latencies: deque[float] = field(default_factory=lambda: deque(maxlen=200_000))


class Dc09Handler:
    """What both transports share: decide, append, reply."""

    def __init__(
        self,
        events: EventLog,
        directory: AccountDirectory,
        clock: Callable[[], datetime],
        window: TimestampWindow = DEFAULT_WINDOW,
    ) -> None:
        self.events = events
        self.directory = directory
        self.clock = clock
        self.window = window
        self.stats = Dc09Stats()

    async def handle(self, result: FrameResult, *, transport: str, peer: str | None) -> bytes:
        """The reply bytes for one frame (empty: send nothing), after its events are durable."""
        return (await self.handle_batch([result], transport=transport, peer=peer))[0]

    async def handle_batch(self, results: list[FrameResult], *, transport: str, peer: str | None) -> list[bytes]:
        """Replies for frames that arrived together, in order, after ONE append of all their events.

        A communicator line that carries many panels sends frames back to back; appending them in
        one call lets the log's group commit store them with one fsync instead of one each.
        """
        now = self.clock()
        decided: list[tuple[FrameResult, Decision, list[Event]]] = []
        batch: list[Event] = []
        for result in results:
            self.stats.frames += 1
            if not isinstance(result, FrameFailure):
                await self.directory.ensure(result.account_id)
            decision = assess(result, now=now, accounts=self.directory.lookup, window=self.window)
            events: list[Event] = []
            if decision.reply is Reply.ACK:
                assert decision.message is not None
                events = events_of(decision.message, transport=transport, peer=peer, received_at=now)
                batch.extend(events)
            decided.append((result, decision, events))
        stored = True
        if batch:
            try:
                await self.events.append(batch)
            except Exception:
                # nothing durable, so no ACK: the panels re-send and we try again
                stored = False
                self.stats.append_failures += 1
                log.exception("dc09 append failed frames=%d peer=%s", len(results), peer)
        return [self._reply(result, decision, stored, peer) for result, decision, _ in decided]

    def _reply(self, result: FrameResult, decision: Decision, stored: bool, peer: str | None) -> bytes:
        key: bytes | None = None
        if decision.reply is Reply.ACK:
            if not stored:
                return b""
            assert decision.message is not None
            account = self.directory.lookup(decision.message.account_id or "")
            key = account.key if account is not None else None
            self.stats.acks += 1
        elif decision.reply is Reply.NAK:
            self.stats.naks += 1
            log.info("dc09 NAK peer=%s reason=%s", peer, decision.reason)
        elif decision.reply is Reply.DUH:
            self.stats.duhs += 1
            log.info("dc09 DUH peer=%s reason=%s", peer, decision.reason)
        else:
            self.stats.silent += 1
            log.info("dc09 no reply peer=%s reason=%s", peer, decision.reason)
        return encode_reply(decision.reply, result, now=self.clock(), key=key)


MAX_FRAMES_PER_APPEND = 200


class _TcpConnection(asyncio.Protocol):
    """One panel connection. Frames are handled strictly in order; replies go out in order."""

    def __init__(self, handler: Dc09Handler, idle_timeout_s: float) -> None:
        self._handler = handler
        self._decoder = Dc09Decoder()
        self._queue: asyncio.Queue[tuple[FrameResult, float] | None] = asyncio.Queue()
        self._transport: asyncio.Transport | None = None
        self._peer: str | None = None
        self.task: asyncio.Task[None] | None = None
        self._idle_timeout_s = idle_timeout_s

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        peer = self._transport.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if peer else None
        self.task = asyncio.get_running_loop().create_task(self._work())

    def data_received(self, data: bytes) -> None:
        self._decoder.feed(data)
        arrived = time.perf_counter()
        while (result := self._decoder.next_frame()) is not None:
            self._queue.put_nowait((result, arrived))

    def eof_received(self) -> bool | None:
        self._queue.put_nowait(None)
        return True  # keep the write side open until the queued replies are out

    def connection_lost(self, exc: Exception | None) -> None:
        self._queue.put_nowait(None)
        self._transport = None

    async def _work(self) -> None:
        closing = False
        try:
            while not closing:
                try:
                    async with asyncio.timeout(self._idle_timeout_s):
                        item = await self._queue.get()
                except TimeoutError:
                    break
                if item is None:
                    break
                items = [item]
                while len(items) < MAX_FRAMES_PER_APPEND and not self._queue.empty():
                    more = self._queue.get_nowait()
                    if more is None:
                        closing = True  # answer what arrived before the panel hung up, then stop
                        break
                    items.append(more)
                try:
                    replies = await self._handler.handle_batch(
                        [result for result, _ in items], transport="tcp", peer=self._peer
                    )
                except Exception:
                    log.exception("dc09 frame handling failed peer=%s", self._peer)
                    continue
                for reply, (_, arrived) in zip(replies, items, strict=True):
                    if reply and self._transport is not None and not self._transport.is_closing():
                        self._transport.write(reply)
                        if b'ACK"' in reply[:16]:
                            self._handler.stats.ack_latencies.append(time.perf_counter() - arrived)
        finally:
            if self._transport is not None:
                self._transport.close()

    def abort(self) -> None:
        """Server shutdown: stop reading and let the worker finish with what is queued."""
        if self._transport is not None:
            self._transport.close()
        self._queue.put_nowait(None)


class _UdpEndpoint(asyncio.DatagramProtocol):
    def __init__(self, handler: Dc09Handler) -> None:
        self._handler = handler
        self._transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        task = asyncio.get_running_loop().create_task(self._answer(data, addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, data: bytes, addr: tuple[str | object, int]) -> None:
        decoder = Dc09Decoder()
        decoder.feed(data)
        peer = f"{addr[0]}:{addr[1]}"
        while (result := decoder.next_frame()) is not None:
            try:
                reply = await self._handler.handle(result, transport="udp", peer=peer)
            except Exception:
                log.exception("dc09 datagram handling failed peer=%s", peer)
                continue
            if reply and self._transport is not None:
                self._transport.sendto(reply, addr)


class Dc09Server:
    """Both transports on one port; `stop()` closes them."""

    def __init__(self, handler: Dc09Handler, host: str, port: int, *, idle_timeout_s: float = 600.0) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self._idle_timeout_s = idle_timeout_s
        self._tcp: asyncio.Server | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._reloader: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._connections: weakref.WeakSet[_TcpConnection] = weakref.WeakSet()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await self.handler.directory.reload(force=True)
        self._tcp = await loop.create_server(self._connection, self.host, self.port, reuse_address=True)
        self.port = self._tcp.sockets[0].getsockname()[1]
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: _UdpEndpoint(self.handler), local_addr=(self.host, self.port)
        )
        self._reloader = loop.create_task(self._reload_periodically())
        self._watcher = loop.create_task(self._watch_account_changes())
        log.info("dc09 receiver listening host=%s port=%d accounts=%d", self.host, self.port,
                 len(self.handler.directory))

    def _connection(self) -> _TcpConnection:
        connection = _TcpConnection(self.handler, self._idle_timeout_s)
        self._connections.add(connection)
        return connection

    async def _reload_periodically(self, every_s: float = 600.0) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.handler.directory.reload(force=True)
            except Exception:
                log.exception("dc09 account directory reload failed")

    async def _watch_account_changes(self) -> None:
        """A new or changed account is usable at once, not after the next periodic reload."""
        while True:
            try:
                async for event in self.handler.events.live():
                    if event.kind == AccountChanged.KIND:
                        await self.handler.directory.refresh([str(event.payload.get("account", ""))])
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dc09 account watch failed; retrying")
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        for task in (self._reloader, self._watcher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            workers = []
            for connection in list(self._connections):
                connection.abort()
                if connection.task is not None:
                    workers.append(connection.task)
            if workers:
                await asyncio.wait(workers, timeout=5)
            await self._tcp.wait_closed()


def account_directory(services: Services) -> AccountDirectory:
    async def load(numbers: list[str] | None = None) -> dict[str, Dc09Account]:
        keys = await services.alarms.account_keys(numbers)
        return {
            number: Dc09Account(key=info.key, clock_offset=timedelta(seconds=info.clock_offset_s))
            for number, info in keys.items()
        }

    return AccountDirectory(load, load)


async def start_receiver(services: Services) -> Dc09Server:
    handler = Dc09Handler(services.events, account_directory(services), services.clock)
    server = Dc09Server(handler, services.settings.dc09_host, services.settings.dc09_port)
    await server.start()
    return server


RECEIVER = ReceiverSpec(
    name="dc09",
    transports=("tcp", "udp"),
    default_port=12128,
    decoder=Dc09Decoder,
    start=start_receiver,
)
