"""The scaled-out event log: NATS JetStream, one stream per event family.

Stream `SAFECITY_<FAMILY>` holds subjects `safecity.<family>.>`; offsets are stream sequences.
`append` returns after the PubAck, which is durable only when the server runs JetStream with
`sync_interval: always` (by default it acknowledges before fsync; Jepsen lost acked writes that way).
Each publish carries `Nats-Msg-Id` = dedup key or event id, so a re-send inside the duplicate window
is a no-op — which also makes retrying an append that timed out safe: a timeout means *unknown*, the
event may be stored.

Reads use the batched direct-get API (server 2.11+): stateless, served without creating consumers.
Live events come from the stream's RePublish onto `safecity_live.<family>.>`: only stored events,
each once (a duplicate publish is not republished), unlike a core subscription on `safecity.>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from itertools import chain
from typing import Any

import nats
import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext, api

from safecity.bus.base import (
    Appended,
    Delivery,
    EventLogError,
    EventLogUnavailable,
    StartAt,
    StoredEvent,
)
from safecity.bus.fanout import Fanout
from safecity.events import Event, EventError, family_of

log = logging.getLogger(__name__)

SUBJECT_PREFIX = "safecity"
LIVE_PREFIX = "safecity_live"
STREAM_PREFIX = "SAFECITY_"
_PAGE = 1000  # messages per direct-get batch request
_STREAM_CONFIG_MISMATCH = 10058

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    TimeoutError,  # nats.errors.TimeoutError and FetchTimeoutError derive from it
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.NoServersError,
    nats.errors.NoRespondersError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.TooManyStalledMsgsError,
    OSError,
)


def stream_name(family: str) -> str:
    return f"{STREAM_PREFIX}{family.upper()}"


def _family_subjects(family: str) -> str:
    return f"{SUBJECT_PREFIX}.{family}.>"


@contextlib.contextmanager
def _mapped(what: str) -> Iterator[None]:
    """Turn client errors into the log's errors: unreachable → EventLogUnavailable, rest → EventLogError."""
    try:
        yield
    except EventLogError:
        raise
    except _UNAVAILABLE as exc:
        raise EventLogUnavailable(f"nats {what}: {type(exc).__name__} {exc}") from exc
    except (nats.errors.Error, ValueError) as exc:
        raise EventLogError(f"nats {what}: {type(exc).__name__} {exc}") from exc


def _status(msg: Msg) -> str | None:
    """The inline status of a server control message (404, 408, 204 …), None for a data message."""
    if msg.data or not msg.headers:
        return None
    return msg.headers.get("Status")


class _NoStream(Exception):
    """A direct get found no responder: the stream does not exist, or JetStream is down."""


class NatsEventLog:
    backend = "nats"

    def __init__(
        self,
        servers: Sequence[str],
        *,
        replicas: int = 1,
        duplicate_window_s: float = 7200.0,
        timeout_s: float = 5.0,
        connect_attempts: int = 3,
        name: str = "safecity",
        retention_s: float | None = None,
    ) -> None:
        if not servers:
            raise EventLogError("no NATS server URL given")
        self.servers = list(servers)
        self.replicas = replicas
        self.duplicate_window_s = duplicate_window_s
        self.timeout_s = timeout_s
        self._connect_attempts = connect_attempts
        self.retention_s = retention_s  # stream max_age: JetStream itself deletes older events
        self._name = name
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._streams: set[str] = set()
        self._stream_lock = asyncio.Lock()
        self._consumers: set[NatsConsumer] = set()
        self._fanout: Fanout[Event] = Fanout()
        self._live_sub: Subscription | None = None
        self._live_lock = asyncio.Lock()
        self._closed = False

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        replicas: int = 1,
        duplicate_window_s: float = 7200.0,
        timeout_s: float = 5.0,
        name: str = "safecity",
        retention_s: float | None = None,
    ) -> NatsEventLog:
        """`nats://host:4222[,nats://host2:4222…]` (tls:// too)."""
        servers = [part.strip() for part in url.split(",") if part.strip()]
        for server in servers:
            if not server.startswith(("nats://", "tls://")):
                raise EventLogError(f"not a NATS URL: {server!r} (want nats://host:port)")
        return cls(
            servers,
            replicas=replicas,
            duplicate_window_s=duplicate_window_s,
            timeout_s=timeout_s,
            name=name,
            retention_s=retention_s,
        )

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        if self._nc is not None:
            return
        with _mapped("connect"):
            nc = await nats.connect(
                servers=self.servers,
                name=self._name,
                connect_timeout=2,
                # bounded while starting (a wrong URL must fail start), unbounded once connected below
                max_reconnect_attempts=self._connect_attempts,
                reconnect_time_wait=0.5,
                ping_interval=10,
                max_outstanding_pings=3,
                drain_timeout=5,
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
            )
        # keep reconnecting forever: a worker must outlive a NATS restart; appends time out meanwhile
        nc.options["max_reconnect_attempts"] = -1
        self._nc = nc
        self._js = nc.jetstream(timeout=self.timeout_s)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._fanout.close()
        for consumer in list(self._consumers):
            await consumer.close()
        nc = self._nc
        if nc is None or nc.is_closed:
            return
        try:
            await nc.drain()
        except (nats.errors.Error, TimeoutError):
            await nc.close()

    async def prune(self, received_before: float) -> int:
        """Retention on JetStream is the streams' `max_age`, enforced by the server itself."""
        return 0

    async def ping(self) -> None:
        js = self._require_js()
        assert self._nc is not None
        if not self._nc.is_connected:
            raise EventLogUnavailable("nats: not connected")
        with _mapped("ping"):
            await js.account_info()

    def _require_js(self) -> JetStreamContext:
        if self._closed:
            raise EventLogUnavailable("nats event log is closed")
        if self._js is None:
            raise EventLogUnavailable("nats event log is not started")
        return self._js

    async def _on_error(self, exc: Exception) -> None:
        # a refused reconnect repeats every half second while the server is down: the disconnect said it
        level = logging.DEBUG if isinstance(exc, OSError) else logging.WARNING
        log.log(level, "nats error servers=%s error=%r", self.servers, exc)

    async def _on_disconnected(self) -> None:
        if not self._closed:
            log.warning("nats disconnected servers=%s", self.servers)

    async def _on_reconnected(self) -> None:
        url = self._nc.connected_url if self._nc is not None else None
        log.info("nats reconnected url=%s", url.netloc if url is not None else None)

    # -- streams -------------------------------------------------------------------------------
    def _stream_config(self, family: str) -> api.StreamConfig:
        return api.StreamConfig(
            name=stream_name(family),
            subjects=[_family_subjects(family)],
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
            num_replicas=self.replicas,
            duplicate_window=self.duplicate_window_s,
            max_age=self.retention_s,
            allow_direct=True,
            republish=api.RePublish(src=_family_subjects(family), dest=f"{LIVE_PREFIX}.{family}.>"),
        )

    async def _ensure_stream(self, family: str) -> str:
        name = stream_name(family)
        if name in self._streams:
            return name
        js = self._require_js()
        async with self._stream_lock:
            if name in self._streams:
                return name
            with _mapped("create stream"):
                try:
                    await js.add_stream(self._stream_config(family))
                except nats.js.errors.BadRequestError as exc:
                    if exc.err_code != _STREAM_CONFIG_MISMATCH:
                        raise
                    # an operator changed it (replicas, limits): theirs wins
                    log.warning("nats stream exists with another config stream=%s", name)
            self._streams.add(name)
        return name

    async def _stream_exists(self, stream: str) -> bool:
        js = self._require_js()
        with _mapped("stream info"):
            try:
                await js.stream_info(stream)
            except nats.js.errors.NotFoundError:
                return False
        return True

    # -- appending -----------------------------------------------------------------------------
    async def append(self, events: Sequence[Event]) -> list[Appended]:
        if not events:
            return []
        for family in sorted({event.family for event in events}):
            await self._ensure_stream(family)
        with _mapped("append"):
            try:
                acks = await self._publish(events)
            except TimeoutError:
                raise EventLogUnavailable(
                    f"nats append: no PubAck within {self.timeout_s}s; the events may be stored or not, "
                    "append the same events again (their Nats-Msg-Id makes that safe)"
                ) from None
            except nats.js.errors.NoStreamResponseError:
                # a cached stream vanished (deleted, store lost): recreate and re-send; Nats-Msg-Id dedups
                for family in {event.family for event in events}:
                    self._streams.discard(stream_name(family))
                    await self._ensure_stream(family)
                acks = await self._publish(events)
        return await self._placed(events, acks)

    async def _publish(self, events: Sequence[Event]) -> list[api.PubAck]:
        """Publish in order on one connection (so the stream keeps the order), then await all acks."""
        js = self._require_js()
        futures: list[asyncio.Future[api.PubAck]] = []
        try:
            for event in events:
                futures.append(
                    await js.publish_async(
                        event.subject,
                        event.to_json(),
                        wait_stall=self.timeout_s,
                        headers={api.Header.MSG_ID.value: event.dedup_key or event.id},
                    )
                )
            return await asyncio.wait_for(asyncio.gather(*futures), self.timeout_s)
        finally:
            for future in futures:
                if not future.done():
                    future.cancel()  # frees publish_async's slot; the outcome stays unknown

    async def _placed(self, events: Sequence[Event], acks: Sequence[api.PubAck]) -> list[Appended]:
        """Appended per event; a duplicate reports the stored event's id (looked up once per duplicate)."""
        first: dict[tuple[str, int], str] = {
            (ack.stream, ack.seq): event.id
            for event, ack in zip(events, acks, strict=True)
            if not ack.duplicate
        }
        missing = [
            (ack.stream, ack.seq) for ack in acks if ack.duplicate and (ack.stream, ack.seq) not in first
        ]
        if missing:
            found = await asyncio.gather(*(self._stored_id(stream, seq) for stream, seq in missing))
            first.update({key: event_id for key, event_id in zip(missing, found, strict=True) if event_id})
        return [
            Appended(first.get((ack.stream, ack.seq), event.id), ack.seq, duplicate=bool(ack.duplicate))
            for event, ack in zip(events, acks, strict=True)
        ]

    async def _stored_id(self, stream: str, seq: int) -> str | None:
        """The id of the event stored at `seq`, or None (then the caller keeps the re-sent event's id)."""
        try:
            items, _ = await self._direct(stream, {"seq": seq})
            body = orjson.loads(items[0][1]) if items else None
        except (EventLogError, _NoStream, orjson.JSONDecodeError):
            return None
        event_id = body.get("id") if isinstance(body, dict) else None
        return event_id if isinstance(event_id, str) else None

    # -- reading -------------------------------------------------------------------------------
    async def _direct(self, stream: str, request: dict[str, Any]) -> tuple[list[tuple[int, bytes]], int]:
        """One direct-get request (single or batch): the (seq, body) found, and how many match after them."""
        self._require_js()
        nc = self._nc
        assert nc is not None
        inbox = nc.new_inbox()
        replies: asyncio.Queue[Msg] = asyncio.Queue()

        async def on_reply(msg: Msg) -> None:
            replies.put_nowait(msg)

        items: list[tuple[int, bytes]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        with _mapped("read"):
            sub = await nc.subscribe(inbox, cb=on_reply)
            try:
                await nc.publish(f"$JS.API.DIRECT.GET.{stream}", orjson.dumps(request), reply=inbox)
                while True:
                    msg = await asyncio.wait_for(replies.get(), max(0.0, deadline - loop.time()))
                    status = _status(msg)
                    headers = msg.headers or {}
                    if status is None:
                        items.append((int(headers["Nats-Sequence"]), msg.data))
                        if "batch" not in request:
                            return items, 0
                    elif status == "204":  # end of batch
                        return items, int(headers.get("Nats-Num-Pending", 0))
                    elif status == "404":
                        return items, 0
                    elif status == "503":
                        raise _NoStream(stream)
                    else:
                        raise EventLogError(
                            f"nats direct get {stream}: {status} {headers.get('Description')}"
                        )
            finally:
                with contextlib.suppress(nats.errors.Error):
                    await sub.unsubscribe()

    async def _scan(
        self, stream: str, first: int, last: int | None, subject: str | None
    ) -> list[tuple[int, bytes]]:
        """Every message from seq `first` (through `last` if given) on `subject`, paging through batches."""
        out: list[tuple[int, bytes]] = []
        seq = first
        while last is None or seq <= last:
            batch = _PAGE if last is None else min(_PAGE, last - seq + 1)
            request: dict[str, Any] = {"seq": seq, "batch": batch}
            if subject is not None:
                request["next_by_subj"] = subject
            items, pending = await self._direct(stream, request)
            out.extend(item for item in items if last is None or item[0] <= last)
            if not items or pending == 0 or (last is not None and items[-1][0] >= last):
                break
            seq = items[-1][0] + 1
        return out

    async def read(self, family: str, after: int = 0, limit: int = 1000) -> list[StoredEvent]:
        stream = stream_name(family)
        out: list[StoredEvent] = []
        seq = after + 1
        try:
            while len(out) < limit:
                items, pending = await self._direct(
                    stream, {"seq": seq, "batch": min(_PAGE, limit - len(out))}
                )
                out.extend(StoredEvent(offset, Event.from_json(body)) for offset, body in items)
                if not items or pending == 0:
                    break
                seq = items[-1][0] + 1
        except _NoStream:
            if await self._stream_exists(stream):
                raise EventLogUnavailable(f"nats: stream {stream} exists but does not answer") from None
            return []
        return out

    async def recent(self, kind: str | None = None, limit: int = 100) -> list[StoredEvent]:
        if limit <= 0:
            return []
        if kind is not None:
            family = family_of(kind)
            return await self._tail(stream_name(family), f"{SUBJECT_PREFIX}.{kind}", limit)
        tails = await asyncio.gather(
            *(
                self._tail(stream, _family_subjects(stream.removeprefix(STREAM_PREFIX).lower()), limit)
                for stream in await self._stream_names()
            )
        )
        merged = sorted(chain.from_iterable(tails), key=lambda s: (s.event.received_at, s.event.id))
        return merged[-limit:]

    async def _tail(self, stream: str, subject: str, limit: int) -> list[StoredEvent]:
        """The last `limit` messages on `subject`: scan back from its last seq in windows growing 4-fold."""
        try:
            last_items, _ = await self._direct(stream, {"last_by_subj": subject})
            if not last_items:
                return []
            high = last_items[0][0]
            window = max(limit, 16)
            found: list[tuple[int, bytes]] = []
            while high >= 1 and len(found) < limit:
                low = max(1, high - window + 1)
                found = await self._scan(stream, low, high, subject) + found
                high = low - 1
                window *= 4
        except _NoStream:
            if await self._stream_exists(stream):
                raise EventLogUnavailable(f"nats: stream {stream} exists but does not answer") from None
            return []
        return [StoredEvent(seq, Event.from_json(body)) for seq, body in found[-limit:]]

    async def _stream_names(self) -> list[str]:
        self._require_js()
        assert self._nc is not None
        with _mapped("list streams"):
            reply = await self._nc.request(
                "$JS.API.STREAM.NAMES",
                orjson.dumps({"subject": f"{SUBJECT_PREFIX}.>"}),
                timeout=self.timeout_s,
            )
        names = orjson.loads(reply.data).get("streams") or []
        return [name for name in names if isinstance(name, str) and name.startswith(STREAM_PREFIX)]

    # -- consumers -----------------------------------------------------------------------------
    async def consumer(
        self,
        name: str,
        family: str,
        *,
        start: StartAt | int = StartAt.BEGINNING,
        ack_wait: float = 30.0,
    ) -> NatsConsumer:
        stream = await self._ensure_stream(family)
        js = self._require_js()
        with _mapped("consumer"):
            try:
                info = await js.consumer_info(stream, name)
            except nats.js.errors.NotFoundError:
                try:
                    await self._create_consumer(stream, name, start, ack_wait)
                except nats.js.errors.BadRequestError:
                    await js.consumer_info(stream, name)  # created by another member meanwhile: join it
            else:
                if info.config.ack_wait != ack_wait:
                    await js.add_consumer(stream, info.config.evolve(ack_wait=ack_wait))
        assert self._nc is not None
        consumer = NatsConsumer(self, self._nc, stream, name, family)
        with _mapped("consumer"):
            await consumer._subscribe()
        self._consumers.add(consumer)
        return consumer

    async def _create_consumer(self, stream: str, name: str, start: StartAt | int, ack_wait: float) -> None:
        js = self._require_js()
        config = api.ConsumerConfig(
            name=name,
            durable_name=name,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=ack_wait,
            max_deliver=-1,
            replay_policy=api.ReplayPolicy.INSTANT,
        )
        if start == StartAt.NEW:
            config.deliver_policy = api.DeliverPolicy.NEW
        elif start == StartAt.BEGINNING:
            config.deliver_policy = api.DeliverPolicy.ALL
        else:
            config.deliver_policy = api.DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = int(start) + 1
        await js.add_consumer(stream, config)

    async def reset_consumer(self, name: str, family: str, offset: int = 0) -> None:
        """Re-read after `offset`: the server's consumer reset (2.14+) when it allows it, else re-create.

        Re-creating (delete, then create at offset+1) briefly leaves no consumer: a member of the
        group that fetches in that gap gets nothing, one that calls `consumer()` in it may create it.
        """
        stream = await self._ensure_stream(family)
        js = self._require_js()
        for consumer in self._consumers:
            if consumer.name == name and consumer.family == family:
                consumer._forget()
        with _mapped("reset consumer"):
            try:
                info = await js.consumer_info(stream, name)
            except nats.js.errors.NotFoundError:
                await self._create_consumer(stream, name, offset, 30.0)
                return
            version = self._nc.connected_server_version if self._nc is not None else None
            if version is not None and (version.major, version.minor) >= (2, 14):
                try:
                    await js.reset_consumer(stream, name, seq=offset + 1)
                    return
                except nats.js.errors.BadRequestError:
                    pass  # policy does not allow it (deliver NEW, or before its start): re-create
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_consumer(stream, name)
            await self._create_consumer(stream, name, offset, info.config.ack_wait or 30.0)

    # -- live ----------------------------------------------------------------------------------
    async def live(self) -> AsyncIterator[Event]:
        await self._ensure_live_sub()
        async with self._fanout.subscribe() as queue:
            while True:
                event = await queue.get()
                if event is None:
                    return
                yield event

    async def _ensure_live_sub(self) -> None:
        self._require_js()
        async with self._live_lock:
            if self._live_sub is None:
                self._live_sub = await self._subscribe_live()

    async def _subscribe_live(self) -> Subscription:
        assert self._nc is not None

        async def on_live(msg: Msg) -> None:
            try:
                self._fanout.publish(Event.from_json(msg.data))
            except EventError:
                log.warning("nats live: not an event subject=%s", msg.subject)

        with _mapped("live"):
            sub = await self._nc.subscribe(f"{LIVE_PREFIX}.>", cb=on_live)
            await self._nc.flush(timeout=max(1, round(self.timeout_s)))
        return sub


class NatsConsumer:
    """A member of the durable pull consumer `name` on the family's stream (shared by name = group)."""

    def __init__(self, log_: NatsEventLog, nc: Client, stream: str, name: str, family: str) -> None:
        self._log = log_
        self._nc = nc
        self.name = name
        self.family = family
        self._stream = stream
        self._inbox = nc.new_inbox()
        self._requests = 0
        self._queue: asyncio.Queue[Msg] = asyncio.Queue()
        self._inflight: dict[int, Msg] = {}
        self._sub: Subscription | None = None

    async def _subscribe(self) -> None:
        async def on_msg(msg: Msg) -> None:
            self._queue.put_nowait(msg)

        self._sub = await self._nc.subscribe(f"{self._inbox}.*", cb=on_msg)

    def _forget(self) -> None:
        """After a reset the old deliveries are void: drop what is held and buffered here."""
        self._inflight.clear()
        while not self._queue.empty():
            self._queue.get_nowait()

    async def fetch(self, max_events: int = 100, timeout: float = 1.0) -> list[Delivery]:
        """Take what is there now; if nothing, wait for the first event, then take what followed it.

        nats-py's own fetch waits for a full batch or the timeout; a worker fed a trickle would
        sit out every timeout, so the pull requests are made here.
        """
        if self._sub is None:
            raise EventLogUnavailable(f"consumer {self.name} is closed")
        if max_events < 1:
            return []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        quick = max(deadline, loop.time() + min(self._log.timeout_s, 0.5))  # a no-wait pull needs one RTT
        msgs = self._buffered(max_events)
        with _mapped("fetch"):
            if len(msgs) < max_events:
                msgs += await self._pull(max_events - len(msgs), quick, no_wait=True)
            if not msgs and deadline - loop.time() > 0.02:
                msgs = await self._pull(1, deadline, no_wait=False)
                if msgs and max_events > 1:
                    msgs += await self._pull(max_events - 1, loop.time() + 0.5, no_wait=True)
        deliveries = []
        for msg in msgs:
            offset = msg.metadata.sequence.stream
            try:
                event = Event.from_json(msg.data)
            except EventError:
                log.error("nats consumer=%s offset=%d: not an event, terminated", self.name, offset)
                with _mapped("term"):
                    await msg.term()
                continue
            self._inflight[offset] = msg
            deliveries.append(Delivery(offset, event, msg.metadata.num_delivered))
        return deliveries

    def _buffered(self, limit: int) -> list[Msg]:
        """Deliveries that arrived after an earlier fetch gave up waiting: still ours, still pending."""
        out: list[Msg] = []
        while len(out) < limit and not self._queue.empty():
            msg = self._queue.get_nowait()
            if _status(msg) is None:
                out.append(msg)
        return out

    async def _pull(self, batch: int, until: float, *, no_wait: bool) -> list[Msg]:
        loop = asyncio.get_running_loop()
        self._requests += 1
        reply = f"{self._inbox}.{self._requests}"
        request: dict[str, Any] = {"batch": batch}
        if no_wait:
            request["no_wait"] = True
        else:  # let the server expire it a little before we stop listening
            request["expires"] = max(1_000_000, int((until - loop.time() - 0.01) * 1e9))
        await self._nc.publish(
            f"$JS.API.CONSUMER.MSG.NEXT.{self._stream}.{self.name}", orjson.dumps(request), reply=reply
        )
        out: list[Msg] = []
        while len(out) < batch:
            remaining = until - loop.time()
            if remaining <= 0:
                break
            try:
                msg = await asyncio.wait_for(self._queue.get(), remaining)
            except TimeoutError:
                break
            status = _status(msg)
            if status is None:
                out.append(msg)
            elif msg.subject != reply or status == "100":
                continue  # a late status for an earlier request, or a heartbeat
            else:
                if status not in ("404", "408"):
                    log.warning(
                        "nats pull ended consumer=%s status=%s %s",
                        self.name,
                        status,
                        (msg.headers or {}).get("Description"),
                    )
                break
        return out

    async def ack(self, delivery: Delivery) -> None:
        """Waits for the server to confirm (ack_sync): once this returns the ack cannot be lost."""
        msg = self._inflight.get(delivery.offset)
        if msg is None:
            return
        with _mapped("ack"), contextlib.suppress(nats.errors.MsgAlreadyAckdError):
            await msg.ack_sync(timeout=self._log.timeout_s)
        self._inflight.pop(delivery.offset, None)

    async def nak(self, delivery: Delivery) -> None:
        msg = self._inflight.pop(delivery.offset, None)
        if msg is None:
            return
        with _mapped("nak"), contextlib.suppress(nats.errors.MsgAlreadyAckdError):
            await msg.nak()

    async def close(self) -> None:
        """Stop pulling; deliveries not acked come back after ack_wait (to this group)."""
        sub, self._sub = self._sub, None
        self._log._consumers.discard(self)
        self._inflight.clear()
        if sub is not None and not self._nc.is_closed:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
