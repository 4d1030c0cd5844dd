"""At-least-once MQTT ingestion shared by every MQTT receiver (unit positions, SenML sensors, trackers).

The broker's PUBACK is sent only after the handler returned, i.e. after what the messages carry is in
the event log (rule 1). aiomqtt 2.5.1 has no manual-ack switch of its own (paho acknowledges a QoS 1
message as soon as its callback returns, before we could append), so we switch on paho's `manual_ack`
on the client aiomqtt wraps and call paho's `ack(mid, qos)` after the handler; `_AckingClient` is the
one place that reaches inside aiomqtt. The session is persistent (MQTT 5, clean start off, a session
expiry, fixed client id), so what was delivered but not acknowledged when we crashed or lost the
connection is delivered again on reconnect, and what was published while we were away is queued by
the broker. A handler that raises acknowledges nothing: we reconnect with backoff and the broker
redelivers; the receivers' dedup keys absorb the repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = logging.getLogger(__name__)

Handler = Callable[[list[aiomqtt.Message]], Awaitable[None]]


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @classmethod
    def from_url(cls, url: str) -> BrokerAddress:
        """`mqtt://[user:password@]host[:1883]` or `mqtts://…[:8883]`."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"not an MQTT URL: {url!r} (want mqtt://host:1883 or mqtts://host:8883)")
        tls = parts.scheme == "mqtts"
        return cls(parts.hostname, parts.port or (8883 if tls else 1883),
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None, tls)


def plain_filter(topic_filter: str) -> str:
    """The filter part of a shared subscription (`$share/<group>/<filter>`): the broker delivers plain topics."""
    if topic_filter.startswith("$share/"):
        return topic_filter.split("/", 2)[2] if topic_filter.count("/") >= 2 else ""
    return topic_filter


def matched_level(topic: str, topic_filter: str) -> str | None:
    """The topic level the filter's single `+` matched, or None if the topic does not fit the filter."""
    levels, pattern = topic.split("/"), plain_filter(topic_filter).split("/")
    if len(levels) != len(pattern):
        return None
    matched: str | None = None
    for level, want in zip(levels, pattern, strict=True):
        if want == "+":
            matched = level
        elif level != want:
            return None
    return matched or None


def check_filter(topic_filter: str, *, plus: int = 1) -> None:
    """Refuse filters our topic matching cannot read: exactly `plus` '+' levels, no '#'."""
    if plain_filter(topic_filter).split("/").count("+") != plus or "#" in topic_filter:
        raise ValueError(f"topic filter {topic_filter!r} must hold exactly {plus} '+' and no '#'")
    if topic_filter.startswith("$share/") and topic_filter.count("/") < 3:
        raise ValueError(f"shared subscription {topic_filter!r} wants $share/<group>/<filter>")


def payload_bytes(message: aiomqtt.Message) -> bytes:
    payload = message.payload
    return payload if isinstance(payload, bytes) else str(payload).encode()


class _AckingClient:
    """aiomqtt with paho's manual acknowledgement switched on; the only code that reaches inside aiomqtt.

    Checked against aiomqtt 2.5.1 / paho-mqtt 2.2.0: `Client._client` is the paho client and
    `Client._queue` the queue its message callback fills.
    """

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self._paho = client._client
        self._paho.manual_ack_set(True)
        self._queue = client._queue

    def ack(self, message: aiomqtt.Message) -> None:
        if message.qos > 0:
            self._paho.ack(message.mid, message.qos)  # no connection: the broker redelivers, dedup absorbs it

    def ready(self, limit: int) -> list[aiomqtt.Message]:
        """Messages already received, without waiting (up to `limit`)."""
        out: list[aiomqtt.Message] = []
        while len(out) < limit:
            try:
                out.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        return out


class MqttSubscriber:
    """Subscribes with QoS 1, hands batches to `handle`, acknowledges after it returns; reconnects forever."""

    def __init__(
        self,
        name: str,
        handle: Handler,
        *,
        url: str,
        topic_filter: str,
        client_id: str,
        session_expiry_s: int = 7 * 86400,
        receive_maximum: int = 1000,
        batch_max: int = 500,
        backoff_max_s: float = 30.0,
    ) -> None:
        self.name = name
        self.handle = handle
        self.broker = BrokerAddress.from_url(url)
        self.topic_filter = topic_filter
        self.client_id = client_id
        self.session_expiry_s = session_expiry_s
        self.receive_maximum = receive_maximum
        self.batch_max = batch_max
        self.backoff_max_s = backoff_max_s
        self.connects = 0
        self.handler_failures = 0
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        first = self._client()  # fails here, loudly, if aiomqtt no longer looks the way _AckingClient expects
        self._task = asyncio.get_running_loop().create_task(self._run(first), name=f"mqtt-{self.name}")

    async def wait_subscribed(self, timeout: float) -> None:
        """Until the subscription stands (tests and benchmarks; the receiver works without waiting)."""
        await asyncio.wait_for(self._subscribed.wait(), timeout)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _client(self) -> _AckingClient:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho leaves it untyped
        properties.SessionExpiryInterval = self.session_expiry_s
        properties.ReceiveMaximum = self.receive_maximum
        broker = self.broker
        return _AckingClient(aiomqtt.Client(
            broker.host, broker.port, username=broker.username, password=broker.password,
            identifier=self.client_id, protocol=aiomqtt.ProtocolVersion.V5, clean_start=False,
            properties=properties, tls_context=ssl.create_default_context() if broker.tls else None,
            logger=log,
        ))

    async def _run(self, first: _AckingClient) -> None:
        backoff = 0.5
        acking = first
        while True:
            try:
                async with acking.client as client:
                    granted = await client.subscribe(self.topic_filter, qos=1)
                    if any(getattr(code, "value", code) >= 0x80 for code in granted):
                        raise aiomqtt.MqttError(f"subscription to {self.topic_filter!r} refused: {granted}")
                    self.connects += 1
                    backoff = 0.5
                    self._subscribed.set()
                    log.info("mqtt subscribed receiver=%s broker=%s:%d topic=%s client_id=%s", self.name,
                             self.broker.host, self.broker.port, self.topic_filter, self.client_id)
                    await self._consume(acking)
            except aiomqtt.MqttError as exc:
                log.warning("mqtt disconnected receiver=%s broker=%s:%d error=%s retry_in_s=%.1f",
                            self.name, self.broker.host, self.broker.port, exc, backoff)
            except Exception:
                log.exception("mqtt receiver failed; reconnecting receiver=%s retry_in_s=%.1f", self.name, backoff)
            self._subscribed.clear()
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, self.backoff_max_s)
            acking = self._client()  # a fresh paho client per connection: no message id outlives its session

    async def _consume(self, acking: _AckingClient) -> None:
        async for first in acking.client.messages:
            batch = [first, *acking.ready(self.batch_max - 1)]
            try:
                await self.handle(batch)
            except Exception:
                self.handler_failures += 1
                raise
            for message in batch:  # in arrival order, as MQTT wants PUBACKs
                acking.ack(message)
