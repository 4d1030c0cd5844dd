"""The OsmAnd / Traccar Client receiver: codec on Traccar's own test requests, HTTP framing, real sockets.

The query strings and JSON bodies below are the requests of Traccar's OsmAndProtocolDecoderTest
(traccar/traccar, src/test/java/org/traccar/protocol/OsmAndProtocolDecoderTest.java), framed as the
HTTP/1.1 requests the apps send: GET with the query for the OsmAnd shape, POST with a JSON body for
Traccar Client 9 and later.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safecity.bus import Appended, EventLogUnavailable
from safecity.bus.sqlite import SqliteEventLog
from safecity.dispatch.events import PositionReported
from safecity.events import Event
from safecity.receivers import discover
from safecity.receivers.osmand import (
    KNOT_MPS,
    HttpFailure,
    HttpLimits,
    HttpRequest,
    HttpServerConnection,
    OsmandHandler,
    OsmandServer,
    PositionReport,
    Rejected,
    decode_position,
    parse_timestamp,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

# -- Traccar's test requests --------------------------------------------------------------------------------
QUERY_POSITIONS = [
    "/?id=902064&lat=42.06288&lon=-88.23412&timestamp=2016-01-27T18%3A55%3A47Z&hdop=6.0&altitude=224.0&speed=0.0",
    "/?id=902064&lat=42.06288&lon=-88.23412&timestamp=1442068686579&hdop=6.0&altitude=224.0&speed=0.0",
    "/?lat=49.60688&lon=6.15788&timestamp=2014-06-04+09%3A10%3A11&altitude=384.7&speed=0.0&id=353861053849681",
    "/?id=123456&timestamp=1377177267&lat=60.0&lon=30.0&speed=0.0&bearing=0.0&altitude=0&hdop=0.0",
    "/?id=123456&timestamp=1377177267&lat=60.0&lon=30.0",
    "/?lat=60.0&lon=30.0&speed=0.0&heading=0.0&vacc=0&hacc=0&altitude=0&deviceid=123456",
    "/?id=861001000719969&lat=41.666667&lon=-0.883333&altitude=350.059479&speed=0.000000&batt=87",
    "/?id=123456&timestamp=1377177267&location=60.0,30.0",
    "/?id=123456789012345&timestamp=1504763810&lat=40.7232948571&lon=-74.0061408571&bearing=7.19889788244"
    "&speed=40&ignition=true&rpm=933&fuel=24",
]
# Traccar answers these without a position of ours: no id at all, and a cell/wifi-only report.
QUERY_WITHOUT_ID = "/?timestamp=1377177267&lat=60.0&lon=30.0"
QUERY_WITHOUT_FIX = ("/?id=123456&timestamp=1377177267&cell=257,02,16,2224&cell=257,02,16,2223,-90"
                     "&wifi=00-14-22-01-23-45,-80&wifi=00-1C-B3-09-85-15,-70")

JSON_POSITIONS = [
    b'{"location":{"timestamp":"2025-06-15T13:45:12.862Z","coords":{"latitude":37.4219983,"longitude":-122.084,'
    b'"accuracy":5,"speed":0,"heading":-1,"altitude":5},"is_moving":false,"odometer":0,"event":"motionchange",'
    b'"battery":{"level":1,"is_charging":false},"activity":{"type":"still"},"extras":{},'
    b'"_":"&id=48241179&lat=37.4219983&lon=-122.084&timestamp=2025-06-15T13:45:12.862Z&"},"device_id":"48241179"}',
    b'{"location":{"timestamp":"2025-06-15T13:45:12.862Z","coords":{"latitude":37.4219983,"longitude":-122.084,'
    b'"accuracy":5,"speed":0,"heading":-1,"altitude":5},"is_moving":false,"odometer":0,"event":"motionchange",'
    b'"battery":{"level":1,"is_charging":false},"activity":{"type":"still"},"extras":{"device_string_test":'
    b'"long_device_id","device_bool_test":true,"device_bool_false_test":false,"device_integer_test":1,'
    b'"device_double_test":1.345,"device_very_long_double_test":1763636.3442},'
    b'"_":"&id=48241179&lat=37.4219983&lon=-122.084&timestamp=2025-06-15T13:45:12.862Z&"},"device_id":"48241179"}',
    b'{"location":{"extras":{},"mock":true,"coords":{"speed_accuracy":-1,"speed":-1,"longitude":-122.406417,'
    b'"ellipsoidal_altitude":0,"floor":null,"heading_accuracy":-1,"latitude":37.785834000000001,"accuracy":5,'
    b'"altitude_accuracy":-1,"altitude":0,"heading":-1},"is_moving":false,"age":188,"odometer":0,'
    b'"uuid":"2FB04C65-99CF-42AB-8DD3-EBCB4B108BF8","event":"motionchange","battery":{"level":-1,'
    b'"is_charging":false},"activity":{"type":"unknown","confidence":100},"timestamp":"2025-05-09T04:11:30.579Z"},'
    b'"device_id":"658765"}',
    b'{"location":{"event":"motionchange","is_moving":false,"uuid":"0e9a2473-a9a7-4c00-997b-fb97d2154e75",'
    b'"timestamp":"2021-07-21T08:06:34.444Z","odometer":0,"coords":{"latitude":-6.1148096,"longitude":106.6837015,'
    b'"accuracy":3.8,"speed":18.67,"speed_accuracy":0.26,"heading":63,"heading_accuracy":0.28,"altitude":35.7,'
    b'"altitude_accuracy":3.8},"activity":{"type":"still","confidence":100},"battery":{"is_charging":false,'
    b'"level":0.79},"extras":{}},"device_id":"8737767034"}',
]


def get(target: str, *, extra: str = "") -> bytes:
    return (f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:5055\r\nConnection: Keep-Alive\r\n"
            f"Accept-Encoding: gzip\r\nUser-Agent: okhttp/4.12.0\r\n{extra}\r\n").encode()


def post_json(body: bytes) -> bytes:
    return (b"POST / HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
            + b"\r\nHost: 127.0.0.1:5055\r\nConnection: Keep-Alive\r\nAccept-Encoding: gzip\r\n"
            b"User-Agent: okhttp/4.12.0\r\n\r\n" + body)


ALL_REQUESTS = [get(t) for t in QUERY_POSITIONS] + [post_json(b) for b in JSON_POSITIONS]


def decode(target: str, body: bytes = b"", content_type: bytes | None = None) -> PositionReport | Rejected:
    headers = [(b"content-type", content_type)] if content_type else []
    return decode_position("POST" if body else "GET", target, headers, body)


def report(target: str, body: bytes = b"", content_type: bytes | None = None) -> PositionReport:
    decoded = decode(target, body, content_type)
    assert isinstance(decoded, PositionReport), decoded
    return decoded


# -- the codec --------------------------------------------------------------------------------------------
def test_query_with_iso_time_hdop_and_altitude() -> None:
    fix = report(QUERY_POSITIONS[0])
    assert (fix.device_id, fix.lat, fix.lon) == ("902064", 42.06288, -88.23412)
    assert fix.recorded_at == datetime(2016, 1, 27, 18, 55, 47, tzinfo=UTC)
    assert (fix.altitude_m, fix.speed_mps, fix.accuracy_m) == (224.0, 0.0, 6.0)


def test_query_timestamp_in_milliseconds_keeps_the_milliseconds() -> None:
    assert report(QUERY_POSITIONS[1]).recorded_at == datetime(2015, 9, 12, 14, 38, 6, 579000, tzinfo=UTC)


def test_query_timestamp_as_date_and_time_with_a_plus_for_the_space() -> None:
    fix = report(QUERY_POSITIONS[2])
    assert fix.device_id == "353861053849681"
    assert fix.recorded_at == datetime(2014, 6, 4, 9, 10, 11, tzinfo=UTC)


def test_query_timestamp_in_seconds_and_bearing() -> None:
    fix = report(QUERY_POSITIONS[3])
    assert fix.recorded_at == datetime(2013, 8, 22, 13, 14, 27, tzinfo=UTC)
    assert (fix.lat, fix.lon, fix.heading_deg, fix.altitude_m) == (60.0, 30.0, 0.0, 0.0)


def test_deviceid_and_heading_are_aliases_and_a_missing_time_stays_unknown() -> None:
    fix = report(QUERY_POSITIONS[5])
    assert (fix.device_id, fix.heading_deg, fix.recorded_at) == ("123456", 0.0, None)


def test_battery_percent_and_location_pair() -> None:
    assert report(QUERY_POSITIONS[6]).battery_pct == 87
    fix = report(QUERY_POSITIONS[7])
    assert (fix.lat, fix.lon) == (60.0, 30.0)


def test_query_speed_is_knots() -> None:
    fix = report(QUERY_POSITIONS[8])
    assert fix.speed_mps == pytest.approx(40 * KNOT_MPS)
    assert fix.speed_mps == pytest.approx(20.5778, abs=1e-4)
    assert fix.heading_deg == pytest.approx(7.19889788244)


@pytest.mark.parametrize("target", QUERY_POSITIONS)
def test_every_traccar_query_request_is_a_position(target: str) -> None:
    report(target)


def test_no_device_id_is_refused() -> None:
    decoded = decode(QUERY_WITHOUT_ID)
    assert isinstance(decoded, Rejected) and decoded.status == 400 and "id" in decoded.reason


def test_cell_and_wifi_only_report_is_refused_for_lack_of_a_fix() -> None:
    decoded = decode(QUERY_WITHOUT_FIX)
    assert isinstance(decoded, Rejected) and "position" in decoded.reason


def test_traccar_client_json_shape() -> None:
    fix = report("/", JSON_POSITIONS[3], b"application/json")
    assert (fix.device_id, fix.lat, fix.lon) == ("8737767034", -6.1148096, 106.6837015)
    assert fix.recorded_at == datetime(2021, 7, 21, 8, 6, 34, 444000, tzinfo=UTC)
    # JSON speed is already m/s; battery level is a fraction
    assert (fix.speed_mps, fix.heading_deg, fix.altitude_m, fix.accuracy_m) == (18.67, 63, 35.7, 3.8)
    assert fix.battery_pct == pytest.approx(79)


def test_json_minus_one_means_unknown() -> None:
    fix = report("/", JSON_POSITIONS[2], b"application/json")
    assert (fix.speed_mps, fix.heading_deg, fix.battery_pct) == (None, None, None)
    assert fix.recorded_at == datetime(2025, 5, 9, 4, 11, 30, 579000, tzinfo=UTC)
    first = report("/", JSON_POSITIONS[0], b"application/json")
    assert (first.device_id, first.heading_deg, first.battery_pct, first.speed_mps) == ("48241179", None, 100, 0)


def test_json_is_recognised_without_a_content_type() -> None:
    assert report("/", JSON_POSITIONS[1]).device_id == "48241179"


def test_form_body_when_the_query_is_empty() -> None:
    fix = report("/", b"id=7&lat=1.5&lon=-2.5&timestamp=1700000000&speed=10",
                 b"application/x-www-form-urlencoded")
    assert (fix.device_id, fix.lat, fix.lon) == ("7", 1.5, -2.5)
    assert fix.speed_mps == pytest.approx(10 * KNOT_MPS)


def test_device_reported_invalid_fix_is_marked() -> None:
    assert not report("/?id=1&lat=1&lon=2&valid=false").valid
    assert report("/?id=1&lat=1&lon=2&valid=1").valid


@pytest.mark.parametrize(("target", "words"), [
    ("/?id=1&lat=91&lon=2", "lat"),
    ("/?id=1&lat=1&lon=-180.5", "lon"),
    ("/?id=1&lat=nan&lon=2", "finite"),
    ("/?id=1&lat=inf&lon=2", "finite"),
    ("/?id=1&lat=north&lon=2", "number"),
    ("/?id=1&lat=1&lon=2&timestamp=yesterday", "timestamp"),
    ("/?id=1&lat=1&lon=2&timestamp=99999999999999999999", "timestamp"),
    ("/?id=1&location=1", "location"),
    ("/?id=" + "x" * 65 + "&lat=1&lon=2", "64"),
    ("/?id=&lat=1&lon=2", "id"),
    ("/", "no parameters"),
])
def test_bad_input_is_refused_with_a_reason(target: str, words: str) -> None:
    decoded = decode(target)
    assert isinstance(decoded, Rejected) and decoded.status == 400
    assert words in decoded.reason


@pytest.mark.parametrize("body", [
    b"{", b"[1,2]", b'{"location":1}', b'{"location":{"coords":[]}}', b"\xff\xfe",
    b'{"device_id":"1","location":{"coords":{"latitude":"x","longitude":1}}}',
    b'{"device_id":true,"location":{"coords":{"latitude":1,"longitude":1}}}',
])
def test_bad_bodies_are_refused(body: bytes) -> None:
    decoded = decode("/", body, b"application/json" if body.startswith(b"{") else None)
    assert isinstance(decoded, Rejected) and decoded.status == 400


def test_out_of_range_extras_become_unknown_rather_than_losing_the_fix() -> None:
    fix = report("/?id=1&lat=1&lon=2&batt=250&bearing=400&accuracy=-1&speed=-3")
    assert (fix.battery_pct, fix.heading_deg, fix.accuracy_m, fix.speed_mps) == (None, None, None, None)


@pytest.mark.parametrize(("text", "expected"), [
    ("1377177267", datetime(2013, 8, 22, 13, 14, 27, tzinfo=UTC)),
    ("1442068686579", datetime(2015, 9, 12, 14, 38, 6, 579000, tzinfo=UTC)),
    ("1377177267.25", datetime(2013, 8, 22, 13, 14, 27, 250000, tzinfo=UTC)),
    ("2016-01-27T18:55:47Z", datetime(2016, 1, 27, 18, 55, 47, tzinfo=UTC)),
    ("2016-01-27T20:55:47+02:00", datetime(2016, 1, 27, 18, 55, 47, tzinfo=UTC)),
    ("2014-06-04 09:10:11", datetime(2014, 6, 4, 9, 10, 11, tzinfo=UTC)),
])
def test_timestamp_forms(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == expected


# -- HTTP framing, sans I/O ------------------------------------------------------------------------------------
def run_connection(chunks: Sequence[bytes]) -> tuple[list[HttpRequest | HttpFailure], bytes]:
    """Feed the chunks, answer every request 200, return what came out and what we wrote."""
    http = HttpServerConnection()
    seen: list[HttpRequest | HttpFailure] = []
    written = b""
    for chunk in [*chunks, b""]:
        http.receive_data(chunk)
        while (item := http.next_request()) is not None:
            seen.append(item)
            written += http.reply(item.status if isinstance(item, HttpFailure) else 200, "")
            if http.must_close:
                return seen, written
    return seen, written


def bodies(seen: Sequence[HttpRequest | HttpFailure]) -> list[tuple[str, bytes]]:
    return [(r.target, r.body) for r in seen if isinstance(r, HttpRequest)]


def test_requests_fed_whole_byte_by_byte_and_back_to_back_come_out_the_same() -> None:
    stream = b"".join(ALL_REQUESTS)
    whole = [run_connection([request])[0][0] for request in ALL_REQUESTS]
    back_to_back, written = run_connection([stream])
    byte_by_byte, _ = run_connection([stream[i : i + 1] for i in range(len(stream))])
    assert bodies(back_to_back) == bodies(byte_by_byte) == bodies(whole)
    assert len(whole) == len(ALL_REQUESTS)
    assert written.count(b"HTTP/1.1 200 OK\r\n") == len(ALL_REQUESTS)
    for request in back_to_back:
        assert isinstance(request, HttpRequest)
        assert isinstance(decode_position(request.method, request.target, request.headers, request.body),
                          PositionReport)


def test_chunked_body_is_reassembled() -> None:
    body = JSON_POSITIONS[3]
    chunked = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
               + f"{10:x}\r\n".encode() + body[:10] + b"\r\n" + f"{len(body) - 10:x}\r\n".encode() + body[10:]
               + b"\r\n0\r\n\r\n")
    [request], _ = run_connection([chunked])
    assert isinstance(request, HttpRequest) and request.body == body


def test_garbage_is_a_400_and_the_connection_closes() -> None:
    seen, written = run_connection([b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n"])
    assert isinstance(seen[0], HttpFailure) and seen[0].status == 400
    assert written.startswith(b"HTTP/1.1 400 ") and b"connection: close" in written


def test_a_declared_body_over_the_limit_is_refused_before_it_is_read() -> None:
    http = HttpServerConnection(max_body_bytes=100)
    http.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
    failure = http.next_request()
    assert isinstance(failure, HttpFailure) and failure.status == 413
    assert http.reply(failure.status, failure.reason).startswith(b"HTTP/1.1 413 ")
    assert http.must_close


def test_a_chunked_body_over_the_limit_is_refused() -> None:
    http = HttpServerConnection(max_body_bytes=100)
    http.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + b"c8\r\n" + b"a" * 200)
    failure = http.next_request()
    assert isinstance(failure, HttpFailure) and failure.status == 413


def test_an_endless_header_is_refused() -> None:
    http = HttpServerConnection(max_head_bytes=1024)
    http.receive_data(b"GET /?id=1 HTTP/1.1\r\nX-Long: " + b"a" * 4096)
    failure = http.next_request()
    assert isinstance(failure, HttpFailure) and failure.status == 431


def test_http_1_0_closes_after_the_answer() -> None:
    http = HttpServerConnection()
    http.receive_data(b"GET /?id=1&lat=1&lon=2 HTTP/1.0\r\n\r\n")
    assert isinstance(http.next_request(), HttpRequest)
    http.reply(200)
    assert http.must_close


def test_expect_continue_is_honoured() -> None:
    http = HttpServerConnection()
    http.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\nExpect: 100-continue\r\n\r\n")
    assert http.next_request() is None
    assert http.pending_continue().startswith(b"HTTP/1.1 100 ")
    http.receive_data(b"id=1&lat=1&lon=2&x=1")
    assert http.pending_continue() == b""  # asked once
    request = http.next_request()
    assert isinstance(request, HttpRequest) and request.body == b"id=1&lat=1&lon=2&x=1"


def test_no_continue_for_a_client_that_sent_its_body_anyway() -> None:
    http = HttpServerConnection()
    http.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 16\r\nExpect: 100-continue\r\n\r\n"
                      b"id=1&lat=1&lon=2")
    assert isinstance(http.next_request(), HttpRequest)
    assert http.reply(200).startswith(b"HTTP/1.1 200 ")
    assert http.pending_continue() == b""


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(1, 64), max_size=20))
def test_fuzzed_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    chunks, position = [], 0
    for cut in cuts:
        chunks.append(data[position : position + cut])
        position += cut
    chunks.append(data[position:])
    seen, _ = run_connection(chunks)
    for item in seen:
        if isinstance(item, HttpRequest):
            decode_position(item.method, item.target, item.headers, item.body)


@settings(max_examples=200, deadline=None)
@given(request=st.sampled_from(ALL_REQUESTS), flips=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)),
                                                              min_size=1, max_size=4))
def test_mutated_traccar_requests_never_raise(request: bytes, flips: list[tuple[int, int]]) -> None:
    data = bytearray(request)
    for position, value in flips:
        data[position % len(data)] = value
    seen, written = run_connection([bytes(data)])
    for item in seen:
        if isinstance(item, HttpRequest):
            decoded = decode_position(item.method, item.target, item.headers, item.body)
            assert isinstance(decoded, (PositionReport, Rejected))
    assert written.startswith(b"HTTP/1.1 ") or not seen


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["id", "deviceid", "lat", "lon", "timestamp", "speed", "bearing", "heading",
                                        "altitude", "accuracy", "hdop", "batt", "valid", "location"]),
                       st.one_of(st.text(max_size=30), st.floats(allow_nan=True).map(repr),
                                 st.integers(-(10**20), 10**20).map(str))))
def test_fuzzed_parameters_decode_or_are_refused(params: dict[str, str]) -> None:
    decoded = decode("/?" + urlencode(params))
    assert isinstance(decoded, (PositionReport, Rejected))
    if isinstance(decoded, PositionReport):
        assert -90 <= decoded.lat <= 90 and -180 <= decoded.lon <= 180
        assert all(v is None or math.isfinite(v) for v in (decoded.speed_mps, decoded.heading_deg,
                                                           decoded.altitude_m, decoded.accuracy_m))


# -- the server over real sockets ---------------------------------------------------------------------------------
class GatedLog:
    """The real log behind a gate the test opens: shows that no answer leaves before the append returns."""

    def __init__(self, log: SqliteEventLog) -> None:
        self.log = log
        self.gate = asyncio.Event()
        self.backend = log.backend

    async def append(self, events: Sequence[Event]) -> list[Appended]:
        await self.gate.wait()
        return await self.log.append(events)


@dataclass
class Receiver:
    server: OsmandServer
    log: SqliteEventLog

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.server.port)

    async def positions(self) -> list[PositionReported]:
        out = []
        for stored in await self.log.recent("unit.position_reported", limit=1000):
            payload = stored.event.typed()
            assert isinstance(payload, PositionReported)
            out.append(payload)
        return out


async def start(tmp_path: Path, events: object = None, limits: HttpLimits | None = None) -> Receiver:
    log = SqliteEventLog(tmp_path / "events.db")
    await log.start()
    handler = OsmandHandler(events or log, lambda: NOW)  # type: ignore[arg-type]
    server = OsmandServer(handler, "127.0.0.1", 0, limits)
    await server.start()
    return Receiver(server, log)


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[Receiver]:
    running = await start(tmp_path)
    try:
        yield running
    finally:
        await running.server.stop()
        await running.log.close()


async def response(reader: asyncio.StreamReader, timeout: float = 3.0) -> tuple[int, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    status = int(head.split(b" ", 2)[1])
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    return status, await asyncio.wait_for(reader.readexactly(length), timeout)


async def test_the_200_leaves_only_after_the_fix_is_in_the_log(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "events.db")
    await log.start()
    gated = GatedLog(log)
    server = OsmandServer(OsmandHandler(gated, lambda: NOW), "127.0.0.1", 0)  # type: ignore[arg-type]
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(get(QUERY_POSITIONS[0]))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(1), 0.3)
        assert await log.recent() == []
        gated.gate.set()
        assert (await response(reader))[0] == 200
        [stored] = await log.recent("unit.position_reported")  # already there when the 200 arrives
        payload = stored.event.typed()
        assert isinstance(payload, PositionReported)
        assert (payload.unit_id, payload.transport) == ("902064", "osmand")
        assert stored.event.dedup_key == "osmand:902064:2016-01-27T18:55:47+00:00"
        assert stored.event.occurred_at == datetime(2016, 1, 27, 18, 55, 47, tzinfo=UTC)
        assert stored.event.location is not None and stored.event.location.alt == 224.0
        writer.close()
    finally:
        await server.stop()
        await log.close()


async def test_pipelined_requests_on_one_keep_alive_connection_are_answered_in_order(receiver: Receiver) -> None:
    reader, writer = await receiver.connect()
    stream = b"".join([*ALL_REQUESTS[:4], get(QUERY_WITHOUT_ID), *ALL_REQUESTS[4:]])
    writer.write(stream)
    statuses = [(await response(reader))[0] for _ in range(len(ALL_REQUESTS) + 1)]
    assert statuses == [200] * 4 + [400] + [200] * (len(ALL_REQUESTS) - 4)
    # same device, same fix time = the same fix sent again: Traccar's set holds three such repeats
    # (two of 123456 at 1377177267, one of the JSON pair), each recorded once
    assert len(await receiver.positions()) == len(ALL_REQUESTS) - 3
    writer.close()


async def test_a_request_sent_byte_by_byte_is_answered(receiver: Receiver) -> None:
    reader, writer = await receiver.connect()
    for byte in post_json(JSON_POSITIONS[3]):
        writer.write(bytes([byte]))
        await writer.drain()
    assert (await response(reader))[0] == 200
    [position] = await receiver.positions()
    assert (position.unit_id, position.battery_pct) == ("8737767034", pytest.approx(79))
    writer.close()


async def test_a_re_sent_fix_is_answered_200_and_recorded_once(receiver: Receiver) -> None:
    reader, writer = await receiver.connect()
    for _ in range(3):
        writer.write(get(QUERY_POSITIONS[4]))
        assert (await response(reader))[0] == 200
    assert len(await receiver.positions()) == 1
    assert receiver.server.handler.stats.duplicates == 2
    writer.close()


async def test_garbage_gets_400_and_a_closed_connection_and_the_server_goes_on(receiver: Receiver) -> None:
    reader, writer = await receiver.connect()
    writer.write(b"\x00\xff" * 300 + b"\r\n\r\n")
    status, reason = await response(reader)
    assert status == 400 and reason
    assert await asyncio.wait_for(reader.read(), 3) == b""
    writer.close()
    reader, writer = await receiver.connect()
    writer.write(get(QUERY_POSITIONS[3]))
    assert (await response(reader))[0] == 200
    writer.close()


async def test_bad_input_gets_400_with_the_reason_and_the_connection_stays_open(receiver: Receiver) -> None:
    reader, writer = await receiver.connect()
    writer.write(get("/?id=1&lat=95&lon=1"))
    status, reason = await response(reader)
    assert status == 400 and b"lat" in reason
    writer.write(get(QUERY_POSITIONS[3]))
    assert (await response(reader))[0] == 200
    writer.close()


async def test_503_while_the_log_is_down_and_the_app_may_retry_on_the_same_connection(receiver: Receiver) -> None:
    reader, writer = await receiver.connect()
    await receiver.log.close()
    writer.write(get(QUERY_POSITIONS[3]))
    status, _ = await response(reader)
    assert status == 503
    assert receiver.server.handler.stats.append_failures == 1
    writer.write(get(QUERY_POSITIONS[4]))
    assert (await response(reader))[0] == 503
    writer.close()


async def test_unavailable_log_error_is_a_503(tmp_path: Path) -> None:
    class DownLog:
        backend = "down"

        async def append(self, events: Sequence[Event]) -> list[Appended]:
            raise EventLogUnavailable("backend down")

    running = await start(tmp_path, DownLog())
    try:
        async with httpx.AsyncClient(base_url=running.url) as client:
            answer = await client.get(QUERY_POSITIONS[3])
        assert answer.status_code == 503
    finally:
        await running.server.stop()
        await running.log.close()


async def test_device_marked_invalid_fix_is_acknowledged_but_not_recorded(receiver: Receiver) -> None:
    async with httpx.AsyncClient(base_url=receiver.url) as client:
        answer = await client.get("/", params={"id": "9", "lat": "0", "lon": "0", "valid": "false"})
    assert answer.status_code == 200
    assert await receiver.positions() == []


async def test_httpx_get_post_form_and_json_work(receiver: Receiver) -> None:
    async with httpx.AsyncClient(base_url=receiver.url) as client:
        got = await client.get("/", params={"id": "unit-7", "lat": "52.52", "lon": "13.405",
                                            "timestamp": "1700000000", "speed": "10", "batt": "55"})
        form = await client.post("/", data={"deviceid": "unit-8", "lat": "48.1", "lon": "11.6",
                                            "timestamp": "2023-11-14T22:13:20Z", "bearing": "270"})
        json = await client.post("/", content=JSON_POSITIONS[3], headers={"content-type": "application/json"})
        refused = await client.post("/", data={"lat": "1", "lon": "2"})
    assert [got.status_code, form.status_code, json.status_code, refused.status_code] == [200, 200, 200, 400]
    assert "id" in refused.text
    by_unit = {p.unit_id: p for p in await receiver.positions()}
    assert set(by_unit) == {"unit-7", "unit-8", "8737767034"}
    assert by_unit["unit-7"].speed_mps == pytest.approx(10 * KNOT_MPS)
    assert by_unit["unit-7"].battery_pct == 55
    assert by_unit["unit-8"].heading_deg == 270
    assert by_unit["unit-8"].recorded_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


async def test_a_fix_without_a_time_is_placed_at_its_arrival(receiver: Receiver) -> None:
    async with httpx.AsyncClient(base_url=receiver.url) as client:
        assert (await client.get(QUERY_POSITIONS[5])).status_code == 200
    [position] = await receiver.positions()
    assert position.recorded_at == NOW


async def test_concurrent_devices_are_all_recorded(receiver: Receiver) -> None:
    async def device(index: int) -> list[int]:
        reader, writer = await receiver.connect()
        statuses = []
        for i in range(20):
            writer.write(get(f"/?id=d{index}&lat=1&lon=2&timestamp={1700000000 + i}"))
            statuses.append((await response(reader))[0])
        writer.close()
        return statuses

    results = await asyncio.gather(*(device(i) for i in range(10)))
    assert all(status == 200 for statuses in results for status in statuses)
    assert await receiver.log.count() == 200


async def test_idle_connection_is_closed(tmp_path: Path) -> None:
    running = await start(tmp_path, limits=HttpLimits(idle_timeout_s=0.2))
    try:
        reader, writer = await running.connect()
        writer.write(b"GET /?id=1&lat=1&lon=2 HTTP/1.1\r\nHost:")  # a request that never completes
        assert await asyncio.wait_for(reader.read(), 3) == b""
        writer.close()
    finally:
        await running.server.stop()
        await running.log.close()


async def test_connections_over_the_limit_are_refused(tmp_path: Path) -> None:
    running = await start(tmp_path, limits=HttpLimits(max_connections=1))
    try:
        reader, writer = await running.connect()
        writer.write(get(QUERY_POSITIONS[3]))
        assert (await response(reader))[0] == 200
        other_reader, other_writer = await running.connect()
        assert await asyncio.wait_for(other_reader.read(), 3) == b""
        other_writer.close()
        writer.close()
    finally:
        await running.server.stop()
        await running.log.close()


async def test_stop_closes_open_connections(tmp_path: Path) -> None:
    running = await start(tmp_path)
    reader, writer = await running.connect()
    writer.write(get(QUERY_POSITIONS[3]))
    assert (await response(reader))[0] == 200
    await running.server.stop()
    assert await asyncio.wait_for(reader.read(), 3) == b""
    writer.close()
    await running.log.close()


def test_both_receivers_are_discovered() -> None:
    specs = {spec.name: spec for spec in discover()}
    assert specs["osmand"].default_port == 5055 and specs["osmand"].transports == ("http",)
    assert specs["mqtt_positions"].transports == ("mqtt",)
