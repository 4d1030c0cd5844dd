"""Unit positions over MQTT: JSON fixes on `safecity/units/<unit>/position`, QoS 1, at least once.

Payload: `{"lat": 52.52, "lon": 13.405, "ts": 1700000000 | "2023-11-14T22:13:20Z", "speed": m/s,
"heading": degrees, "acc": metres, "batt": percent}`; only lat and lon are required, the unit is the
topic level matched by `+`.

At least once, end to end: the PUBACK goes to the broker only after the fix is in the event log (rule 1);
the persistent session, manual acknowledgement and reconnection live in `_mqtt.py`, shared by every MQTT
receiver. The
dedup key (unit, fix time) keeps a redelivered fix from being recorded twice. A payload that can never
be decoded is logged, acknowledged and dropped; an append that fails acknowledges nothing and
reconnects, so the broker redelivers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aiomqtt
import orjson

from safecity.bus import EventLog
from safecity.dispatch.events import PositionReported
from safecity.events import Event, Location
from safecity.receivers import ReceiverSpec
from safecity.receivers._mqtt import BrokerAddress as BrokerAddress  # re-exported for callers
from safecity.receivers._mqtt import MqttSubscriber, check_filter, matched_level, payload_bytes
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
    """The unit: the topic level the filter's single `+` matched (shared subscriptions by their filter part)."""
    return matched_level(topic, topic_filter)


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


# -- the receiver -----------------------------------------------------------------------------------------
@dataclass
class MqttPositionStats:
    received: int = 0
    recorded: int = 0
    duplicates: int = 0
    dropped: int = 0
    append_failures: int = 0
    connects: int = 0


class MqttPositionReceiver:
    """Appends the fixes of each batch; `MqttSubscriber` acknowledges them after the append."""

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
        check_filter(topic_filter)
        self.events = events
        self.clock = clock
        self.topic_filter = topic_filter
        self._stats = MqttPositionStats()
        self.subscriber = MqttSubscriber(
            "positions", self._record, url=url, topic_filter=topic_filter, client_id=client_id,
            session_expiry_s=session_expiry_s, receive_maximum=receive_maximum, batch_max=batch_max,
            backoff_max_s=backoff_max_s,
        )
        self.broker = self.subscriber.broker
        self.client_id = client_id

    @property
    def stats(self) -> MqttPositionStats:
        self._stats.connects = self.subscriber.connects
        return self._stats

    async def start(self) -> None:
        await self.subscriber.start()

    async def wait_subscribed(self, timeout: float) -> None:
        await self.subscriber.wait_subscribed(timeout)

    async def stop(self) -> None:
        await self.subscriber.stop()

    async def _record(self, batch: list[aiomqtt.Message]) -> None:
        """Append the decodable fixes of a batch; raises (so nothing is acknowledged) if the log fails."""
        received_at = self.clock()
        events: list[Event] = []
        for message in batch:
            self._stats.received += 1
            topic = message.topic.value
            unit = unit_of(topic, self.topic_filter)
            payload = payload_bytes(message)
            decoded = decode_position(unit, payload) if unit else BadPayload("topic names no unit")
            if isinstance(decoded, MqttPosition):
                try:
                    events.append(position_event(decoded, received_at=received_at))
                    continue
                except ValueError as exc:
                    decoded = BadPayload(f"position does not validate: {exc}")
            self._stats.dropped += 1
            log.warning("mqtt position dropped topic=%s reason=%s payload=%r", topic, decoded.reason, payload[:120])
        if not events:
            return
        try:
            appended = await self.events.append(events)
        except Exception:
            self._stats.append_failures += 1
            raise
        duplicates = sum(1 for a in appended if a.duplicate)
        self._stats.duplicates += duplicates
        self._stats.recorded += len(appended) - duplicates


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
