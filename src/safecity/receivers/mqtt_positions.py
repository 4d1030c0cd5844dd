"""Unit positions over MQTT: JSON fixes on `safecity/units/<unit>/position`, QoS 1, at least once.

Payload: `{"lat": 52.52, "lon": 13.405, "ts": 1700000000 | "2023-11-14T22:13:20Z", "speed": m/s,
"heading": degrees, "acc": metres, "batt": percent}`; only lat and lon are required, the unit is the
topic level matched by `+`.

At least once, end to end: the PUBACK goes to the broker only after the fix is in the event log (rule 1).
aiomqtt 2.5.1 has no manual-ack switch of its own (paho acknowledges a QoS 1 message as soon as its
callback returns, which is before we could append), so we switch on paho's `manual_ack` on the client
aiomqtt wraps and call paho's `ack(mid, qos)` after the append; `_AckingClient` is the one place that
reaches inside aiomqtt. The session is persistent (MQTT 5, clean start off, a session expiry, fixed
client id), so what was delivered but not acknowledged when we crashed or lost the connection is
delivered again on reconnect, and fixes published while we were away are queued by the broker. The
dedup key (unit, fix time) keeps a redelivered fix from being recorded twice. A payload that can never
be decoded is logged, acknowledged and dropped; an append that fails acknowledges nothing and
reconnects, so the broker redelivers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import aiomqtt
import orjson
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from safecity.bus import EventLog
from safecity.dispatch.events import PositionReported
from safecity.events import Event, Location
from safecity.receivers import ReceiverSpec
from safecity.receivers.osmand import parse_timestamp

if TYPE_CHECKING:
    from safecity.services import Services

log = logging.getLogger(__name__)

DEFAULT_TOPIC = "safecity/units/+/position"
DEFAULT_CLIENT_ID = "safecity-positions"
MAX_PAYLOAD_BYTES = 16_384


# -- the payload codec ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MqttPosition:
    unit_id: str
    lat: float
    lon: float
    recorded_at: datetime | None = None
    speed_mps: float | None = None
    heading_deg: float | None = None
    accuracy_m: float | None = None
    battery_pct: float | None = None


@dataclass(frozen=True, slots=True)
class BadPayload:
    reason: str


class _Bad(ValueError):
    pass


def unit_of(topic: str, topic_filter: str) -> str | None:
    """The topic level the filter's single `+` matched, or None if the topic does not fit the filter.

    A shared subscription (`$share/<group>/<filter>`, several receivers splitting the load) is matched
    by its filter part: the broker delivers the plain topic.
    """
    if topic_filter.startswith("$share/"):
        topic_filter = topic_filter.split("/", 2)[2] if topic_filter.count("/") >= 2 else ""
    levels, pattern = topic.split("/"), topic_filter.split("/")
    if len(levels) != len(pattern):
        return None
    unit: str | None = None
    for level, want in zip(levels, pattern, strict=True):
        if want == "+":
            unit = level
        elif level != want:
            return None
    return unit or None


def _finite(document: dict[str, Any], key: str, *, required: bool = False) -> float | None:
    value = document.get(key)
    if value is None:
        if required:
            raise _Bad(f"missing {key}")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad(f"{key} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise _Bad(f"{key} is not finite")
    return number


def decode_position(unit_id: str, payload: bytes) -> MqttPosition | BadPayload:
    """One message → one fix, or why it is dropped. -1 (and any negative) speed/heading/acc: unknown."""
    try:
        if not 1 <= len(unit_id) <= 64:
            raise _Bad("unit id must be 1 to 64 characters")
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise _Bad(f"payload larger than {MAX_PAYLOAD_BYTES} bytes")
        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise _Bad("payload is not JSON") from exc
        if not isinstance(document, dict):
            raise _Bad("payload is not a JSON object")
        lat, lon = _finite(document, "lat", required=True), _finite(document, "lon", required=True)
        assert lat is not None and lon is not None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise _Bad(f"position {lat},{lon} out of range")
        stamp = document.get("ts")
        if stamp is not None and (isinstance(stamp, bool) or not isinstance(stamp, (int, float, str))):
            raise _Bad("ts is neither unix seconds nor an ISO 8601 string")
        recorded_at = parse_timestamp(str(stamp)) if stamp is not None else None
        speed, heading = _finite(document, "speed"), _finite(document, "heading")
        accuracy, battery = _finite(document, "acc"), _finite(document, "batt")
        return MqttPosition(
            unit_id=unit_id, lat=lat, lon=lon, recorded_at=recorded_at,
            speed_mps=speed if speed is not None and speed >= 0 else None,
            heading_deg=heading if heading is not None and 0 <= heading <= 360 else None,
            accuracy_m=accuracy if accuracy is not None and accuracy >= 0 else None,
            battery_pct=battery if battery is not None and 0 <= battery <= 100 else None,
        )
    except ValueError as exc:  # _Bad, and parse_timestamp's refusals
        return BadPayload(str(exc))


def position_event(position: MqttPosition, *, received_at: datetime) -> Event:
    recorded_at = position.recorded_at or received_at
    payload = PositionReported(
        unit_id=position.unit_id, lat=position.lat, lon=position.lon, recorded_at=recorded_at,
        speed_mps=position.speed_mps, heading_deg=position.heading_deg, accuracy_m=position.accuracy_m,
        battery_pct=position.battery_pct, transport="mqtt",
    )
    return Event.of(
        payload, source="mqtt", occurred_at=recorded_at, received_at=received_at,
        location=Location(lat=position.lat, lon=position.lon, accuracy_m=position.accuracy_m),
        dedup_key=f"mqtt:{position.unit_id}:{recorded_at.isoformat()}",
    )


# -- the client -------------------------------------------------------------------------------------------
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


@dataclass
class MqttPositionStats:
    received: int = 0
    recorded: int = 0
    duplicates: int = 0
    dropped: int = 0
    append_failures: int = 0
    connects: int = 0


class MqttPositionReceiver:
    """Subscribes, appends in batches, acknowledges after the append; reconnects with backoff forever."""

    def __init__(
        self,
        events: EventLog,
        clock: Callable[[], datetime],
        *,
        url: str,
        topic_filter: str = DEFAULT_TOPIC,
        client_id: str = DEFAULT_CLIENT_ID,
        session_expiry_s: int = 7 * 86400,
        receive_maximum: int = 1000,
        batch_max: int = 500,
        backoff_max_s: float = 30.0,
    ) -> None:
        if topic_filter.split("/").count("+") != 1 or "#" in topic_filter:
            raise ValueError(f"topic filter {topic_filter!r} must hold exactly one '+' (the unit) and no '#'")
        if topic_filter.startswith("$share/") and topic_filter.count("/") < 3:
            raise ValueError(f"shared subscription {topic_filter!r} wants $share/<group>/<filter>")
        self.events = events
        self.clock = clock
        self.broker = BrokerAddress.from_url(url)
        self.topic_filter = topic_filter
        self.client_id = client_id
        self.session_expiry_s = session_expiry_s
        self.receive_maximum = receive_maximum
        self.batch_max = batch_max
        self.backoff_max_s = backoff_max_s
        self.stats = MqttPositionStats()
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        first = self._client()  # fails here, loudly, if aiomqtt no longer looks the way _AckingClient expects
        self._task = asyncio.get_running_loop().create_task(self._run(first), name="mqtt-positions")

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
                    self.stats.connects += 1
                    backoff = 0.5
                    self._subscribed.set()
                    log.info("mqtt positions subscribed broker=%s:%d topic=%s client_id=%s",
                             self.broker.host, self.broker.port, self.topic_filter, self.client_id)
                    await self._consume(acking)
            except aiomqtt.MqttError as exc:
                log.warning("mqtt positions disconnected broker=%s:%d error=%s retry_in_s=%.1f",
                            self.broker.host, self.broker.port, exc, backoff)
            except Exception:
                log.exception("mqtt positions failed; reconnecting retry_in_s=%.1f", backoff)
            self._subscribed.clear()
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, self.backoff_max_s)
            acking = self._client()  # a fresh paho client per connection: no message id outlives its session

    async def _consume(self, acking: _AckingClient) -> None:
        async for first in acking.client.messages:
            batch = [first, *acking.ready(self.batch_max - 1)]
            await self._record(batch)
            for message in batch:  # in arrival order, as MQTT wants PUBACKs
                acking.ack(message)

    async def _record(self, batch: list[aiomqtt.Message]) -> None:
        """Append the decodable fixes of a batch; raises (so nothing is acknowledged) if the log fails."""
        received_at = self.clock()
        events: list[Event] = []
        for message in batch:
            self.stats.received += 1
            topic = message.topic.value
            unit = unit_of(topic, self.topic_filter)
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            decoded = decode_position(unit, payload) if unit else BadPayload("topic names no unit")
            if isinstance(decoded, MqttPosition):
                try:
                    events.append(position_event(decoded, received_at=received_at))
                    continue
                except ValueError as exc:
                    decoded = BadPayload(f"position does not validate: {exc}")
            self.stats.dropped += 1
            log.warning("mqtt position dropped topic=%s reason=%s payload=%r", topic, decoded.reason, payload[:120])
        if not events:
            return
        try:
            appended = await self.events.append(events)
        except Exception:
            self.stats.append_failures += 1
            raise
        duplicates = sum(1 for a in appended if a.duplicate)
        self.stats.duplicates += duplicates
        self.stats.recorded += len(appended) - duplicates


class _Disabled:
    async def stop(self) -> None:
        return None


async def start_receiver(services: Services) -> MqttPositionReceiver | _Disabled:
    settings = services.settings
    url: str | None = settings.mqtt_url
    if not url:
        log.info("mqtt positions receiver disabled: no mqtt_url set")
        return _Disabled()
    receiver = MqttPositionReceiver(
        services.events, services.clock, url=url,
        client_id=settings.mqtt_client_id,
    )
    await receiver.start()
    return receiver


RECEIVER = ReceiverSpec(
    name="mqtt_positions",
    transports=("mqtt",),
    default_port=1883,
    decoder=None,
    start=start_receiver,
)
