"""OsmAnd / Traccar Client receiver: officers' phones report GPS fixes over HTTP (Traccar's port 5055).

Two request shapes share the port, read the way Traccar's OsmAnd decoder reads them:

- query or form parameters (the OsmAnd app, Traccar Client before 9, most home-made trackers), any
  method: `id` or `deviceid`, `lat`+`lon` or `location=lat,lon`, `timestamp` (unix seconds or
  milliseconds, ISO 8601 or `yyyy-MM-dd HH:mm:ss`), `speed` in knots, `bearing`/`heading`,
  `altitude`, `accuracy` (metres), `hdop`, `batt` (percent), `valid`;
- a JSON body (Traccar Client 9 and later): `device_id`, `location.timestamp` (ISO 8601),
  `location.coords.{latitude, longitude, speed (m/s), heading, altitude, accuracy}`,
  `location.battery.level` (0..1); -1 means unknown.

The app deletes a stored fix only when it gets 200 and sends it again otherwise. So: 200 only after
the append returned (rule 1), 400 for a request that can never succeed, 503 while the event log
cannot take it. The dedup key (device, fix time) keeps a re-sent fix from being recorded twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qsl

import orjson

from safecity.bus import EventLog
from safecity.dispatch.events import PositionReported
from safecity.events import Event, Location
from safecity.receivers import ReceiverSpec
from safecity.receivers._http import HttpFailure, HttpLimits, HttpRequest, HttpServerConnection

if TYPE_CHECKING:
    from safecity.services import Services

log = logging.getLogger(__name__)

KNOT_MPS = 1852 / 3600
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLIS_FROM = 2**31 - 1  # Traccar's rule: an integer timestamp at or above this counts milliseconds
_INTEGER = re.compile(r"[+-]?\d{1,19}")
_DECIMAL = re.compile(r"[+-]?\d{1,13}\.\d*")
_MAX_FIELDS = 200


# -- the position codec ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PositionReport:
    """One fix as the device reported it; `recorded_at` None: the device sent no time."""

    device_id: str
    lat: float
    lon: float
    recorded_at: datetime | None = None
    speed_mps: float | None = None
    heading_deg: float | None = None
    altitude_m: float | None = None
    accuracy_m: float | None = None
    battery_pct: float | None = None
    valid: bool = True


@dataclass(frozen=True, slots=True)
class Rejected:
    """Input the device must not send again as it is: the HTTP status and a reason in words."""

    status: int
    reason: str


class _Bad(ValueError):
    pass


def parse_timestamp(text: str) -> datetime:
    """Unix seconds or milliseconds (Traccar's 2^31 rule), ISO 8601, or `yyyy-MM-dd HH:mm:ss` (UTC)."""
    text = text.strip()
    try:
        if _INTEGER.fullmatch(text):
            value = int(text)
            if abs(value) >= _MILLIS_FROM:
                return _EPOCH + timedelta(milliseconds=value)
            return _EPOCH + timedelta(seconds=value)
        if _DECIMAL.fullmatch(text):
            seconds = float(text)
            if abs(seconds) >= _MILLIS_FROM:
                seconds /= 1000
            return _EPOCH + timedelta(seconds=seconds)
        if len(text) > 40:
            raise _Bad(f"timestamp too long: {text[:40]!r}…")
        parsed = datetime.fromisoformat(text)
    except (OverflowError, ValueError) as exc:
        raise _Bad(f"bad timestamp {text!r}") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _number(text: object, name: str) -> float:
    if isinstance(text, bool) or not isinstance(text, (int, float, str)):
        raise _Bad(f"{name} is not a number")
    try:
        value = float(text)
    except (ValueError, OverflowError) as exc:
        raise _Bad(f"{name} is not a number: {str(text)[:40]!r}") from exc
    if not math.isfinite(value):
        raise _Bad(f"{name} is not finite")
    return value


def _non_negative(value: float | None) -> float | None:
    """Devices say 'unknown' with -1."""
    return value if value is not None and value >= 0 else None


def _heading(value: float | None) -> float | None:
    return value if value is not None and 0 <= value <= 360 else None


def _battery(percent: float | None) -> float | None:
    return percent if percent is not None and 0 <= percent <= 100 else None


def _report(fields: dict[str, Any]) -> PositionReport:
    device = fields.get("id")
    if device is None or device == "":
        raise _Bad("missing device id (id, deviceid or device_id)")
    if len(device) > 64:
        raise _Bad("device id longer than 64 characters")
    if "lat" not in fields or "lon" not in fields:
        raise _Bad("missing position (lat and lon, or location)")
    lat, lon = fields["lat"], fields["lon"]
    if not -90 <= lat <= 90:
        raise _Bad(f"lat {lat} out of range -90..90")
    if not -180 <= lon <= 180:
        raise _Bad(f"lon {lon} out of range -180..180")
    return PositionReport(
        device_id=device, lat=lat, lon=lon, recorded_at=fields.get("timestamp"),
        speed_mps=_non_negative(fields.get("speed")), heading_deg=_heading(fields.get("heading")),
        altitude_m=fields.get("altitude"), accuracy_m=_non_negative(fields.get("accuracy")),
        battery_pct=_battery(fields.get("batt")), valid=fields.get("valid", True),
    )


def _location(text: str) -> tuple[float, float]:
    parts = text.split(",")
    if len(parts) != 2:
        raise _Bad("location is not 'lat,lon'")
    return _number(parts[0], "lat"), _number(parts[1], "lon")


def _from_parameters(pairs: Sequence[tuple[str, str]]) -> PositionReport:
    fields: dict[str, Any] = {}
    hdop: float | None = None
    for name, value in pairs:
        if name in ("id", "deviceid"):
            fields["id"] = value
        elif name in ("lat", "lon", "altitude", "accuracy", "batt"):
            fields[name] = _number(value, name)
        elif name == "location":
            fields["lat"], fields["lon"] = _location(value)
        elif name == "timestamp":
            fields["timestamp"] = parse_timestamp(value)
        elif name == "speed":
            fields["speed"] = _number(value, name) * KNOT_MPS
        elif name in ("bearing", "heading"):
            fields["heading"] = _number(value, name)
        elif name == "hdop":
            hdop = _number(value, name)
        elif name == "valid":
            fields["valid"] = value.lower() in ("true", "1")
    if "accuracy" not in fields and hdop is not None:
        fields["accuracy"] = hdop  # OsmAnd fills its {3} "hdop" placeholder with the fix accuracy in metres
    return _report(fields)


def _from_json(body: bytes) -> PositionReport:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _Bad("body is not JSON") from exc
    if not isinstance(document, dict):
        raise _Bad("JSON body is not an object")
    location, device = document.get("location"), document.get("device_id")
    if not isinstance(location, dict):
        raise _Bad("JSON body has no location object")
    coords = location.get("coords")
    if not isinstance(coords, dict):
        raise _Bad("JSON location has no coords object")
    fields: dict[str, Any] = {}
    if isinstance(device, (str, int)) and not isinstance(device, bool):
        fields["id"] = str(device)
    for name, key in (("lat", "latitude"), ("lon", "longitude"), ("speed", "speed"), ("heading", "heading"),
                      ("altitude", "altitude"), ("accuracy", "accuracy")):
        if coords.get(key) is not None:
            fields[name] = _number(coords[key], key)
    stamp = location.get("timestamp")
    if stamp is not None:
        fields["timestamp"] = parse_timestamp(str(stamp))
    battery = location.get("battery")
    if isinstance(battery, dict) and battery.get("level") is not None:
        level = _number(battery["level"], "battery level")
        fields["batt"] = level * 100 if level >= 0 else None
    return _report(fields)


def decode_position(method: str, target: str, headers: Sequence[tuple[bytes, bytes]], body: bytes
                    ) -> PositionReport | Rejected:
    """One request → one fix, or why not. Like Traccar: the query wins; without one, the body."""
    try:
        query = target.partition("?")[2].partition("#")[0]
        pairs = parse_qsl(query, max_num_fields=_MAX_FIELDS)
        if pairs:
            return _from_parameters(pairs)
        if not body:
            raise _Bad("no parameters in the query and no body")
        content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"").lower()
        if b"json" in content_type or body.lstrip()[:1] == b"{":
            return _from_json(body)
        text = body.decode("utf-8")
        return _from_parameters(parse_qsl(text.strip(), max_num_fields=_MAX_FIELDS))
    except (_Bad, UnicodeDecodeError) as exc:
        return Rejected(400, str(exc))
    except ValueError as exc:  # parse_qsl: too many fields
        return Rejected(400, f"bad parameters: {exc}")


def position_event(report: PositionReport, *, received_at: datetime) -> Event:
    """The log event of one fix; a fix without a time is placed at its arrival."""
    recorded_at = report.recorded_at or received_at
    payload = PositionReported(
        unit_id=report.device_id, lat=report.lat, lon=report.lon, recorded_at=recorded_at,
        speed_mps=report.speed_mps, heading_deg=report.heading_deg, altitude_m=report.altitude_m,
        accuracy_m=report.accuracy_m, battery_pct=report.battery_pct, transport="osmand",
    )
    return Event.of(
        payload, source="osmand", occurred_at=recorded_at, received_at=received_at,
        location=Location(lat=report.lat, lon=report.lon, alt=report.altitude_m, accuracy_m=report.accuracy_m),
        dedup_key=f"osmand:{report.device_id}:{recorded_at.isoformat()}",
    )


# -- handling: decode, append, answer --------------------------------------------------------------------
@dataclass
class OsmandStats:
    requests: int = 0
    recorded: int = 0
    duplicates: int = 0
    rejected: int = 0
    ignored_invalid: int = 0
    append_failures: int = 0


class OsmandHandler:
    """Decide the answer to one request; a 200 only once the fix is in the event log."""

    def __init__(self, events: EventLog, clock: Callable[[], datetime]) -> None:
        self.events = events
        self.clock = clock
        self.stats = OsmandStats()

    async def handle(self, request: HttpRequest, *, peer: str | None = None) -> tuple[int, str]:
        self.stats.requests += 1
        decoded = decode_position(request.method, request.target, request.headers, request.body)
        if isinstance(decoded, Rejected):
            self.stats.rejected += 1
            log.info("osmand rejected peer=%s status=%d reason=%s", peer, decoded.status, decoded.reason)
            return decoded.status, decoded.reason
        if not decoded.valid:
            # the device itself says the fix is bad: acknowledge so it stops re-sending, record nothing
            self.stats.ignored_invalid += 1
            return 200, ""
        try:
            event = position_event(decoded, received_at=self.clock())
        except ValueError as exc:
            self.stats.rejected += 1
            return 400, f"position does not validate: {exc}"
        try:
            [appended] = await self.events.append([event])
        except Exception:
            self.stats.append_failures += 1
            log.exception("osmand append failed device=%s", decoded.device_id)
            return 503, "event log unavailable; send again later"
        if appended.duplicate:
            self.stats.duplicates += 1
        else:
            self.stats.recorded += 1
        return 200, ""


# -- asyncio server ----------------------------------------------------------------------------------------
class _Connection(asyncio.Protocol):
    """One device connection; requests are answered strictly one after another, in order."""

    def __init__(self, server: OsmandServer) -> None:
        self._server = server
        self._limits = server.limits
        self._http = HttpServerConnection(max_head_bytes=self._limits.max_head_bytes,
                                          max_body_bytes=self._limits.max_body_bytes)
        self._inbox = bytearray()
        self._eof = False
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._transport: asyncio.Transport | None = None
        self._peer: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        if len(self._server.connections) >= self._limits.max_connections:
            log.warning("osmand connection refused: %d connections open", len(self._server.connections))
            self._transport.abort()
            return
        peer = self._transport.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if peer else None
        self._server.connections.add(self)
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + self._limits.idle_timeout_s
        self._timer = loop.call_at(self._deadline, self._check_idle)
        self._task = loop.create_task(self._work())

    def data_received(self, data: bytes) -> None:
        self._inbox += data
        if len(self._inbox) > self._limits.max_backlog_bytes and not self._paused and self._transport is not None:
            self._transport.pause_reading()
            self._paused = True
        self._wake()

    def eof_received(self) -> bool | None:
        self._eof = True
        self._wake()
        return True  # keep our side open until the answers are written

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._transport = None
        self._server.connections.discard(self)
        if self._timer is not None:
            self._timer.cancel()
        self._wake()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        if self._task is not None:
            self._task.cancel()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _check_idle(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() < self._deadline:
            self._timer = loop.call_at(self._deadline, self._check_idle)
            return
        log.debug("osmand idle connection closed peer=%s", self._peer)
        if self._transport is not None:
            self._transport.close()

    async def _work(self) -> None:
        eof_fed = False
        try:
            while self._transport is not None:
                item = self._http.next_request()
                if item is None:
                    if self._http.must_close:
                        break
                    if self._inbox:
                        self._http.receive_data(bytes(self._inbox))
                        self._inbox.clear()
                        if self._paused and self._transport is not None:
                            self._transport.resume_reading()
                            self._paused = False
                        continue
                    if self._eof:
                        if eof_fed:
                            break
                        self._http.receive_data(b"")
                        eof_fed = True
                        continue
                    if continue_bytes := self._http.pending_continue():
                        self._transport.write(continue_bytes)
                    self._waiter = asyncio.get_running_loop().create_future()
                    await self._waiter
                    self._waiter = None
                    continue
                if isinstance(item, HttpFailure):
                    log.info("osmand bad request peer=%s status=%d reason=%s", self._peer, item.status, item.reason)
                    self._server.handler.stats.rejected += 1
                    self._transport.write(self._http.reply(item.status, item.reason))
                    break
                try:
                    status, text = await self._server.handler.handle(item, peer=self._peer)
                except Exception:
                    log.exception("osmand request handling failed peer=%s", self._peer)
                    status, text = 500, "internal error"
                if self._transport is None or self._transport.is_closing():
                    break
                self._transport.write(self._http.reply(status, text))
                self._deadline = asyncio.get_running_loop().time() + self._limits.idle_timeout_s
        except asyncio.CancelledError:
            pass
        finally:
            if self._transport is not None:
                self._transport.close()


class OsmandServer:
    """The HTTP listener; `stop()` closes it and every open connection."""

    def __init__(self, handler: OsmandHandler, host: str, port: int, limits: HttpLimits | None = None) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.limits = limits or HttpLimits()
        self.connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), self.host, self.port,
                                                reuse_address=True, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("osmand receiver listening host=%s port=%d", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [c._task for c in self.connections if c._task is not None]
        for connection in list(self.connections):
            connection.close()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            await self._server.wait_closed()


async def start_receiver(services: Services) -> OsmandServer:
    settings = services.settings
    server = OsmandServer(
        OsmandHandler(services.events, services.clock),
        settings.osmand_host,
        settings.osmand_port,
    )
    await server.start()
    return server


RECEIVER = ReceiverSpec(
    name="osmand",
    transports=("http",),
    default_port=5055,
    decoder=HttpServerConnection,
    start=start_receiver,
)
