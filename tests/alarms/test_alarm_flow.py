"""From a DC-09 panic frame on the wire to an incident request, through the public API."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import websockets

from safecity.receivers.dc09_codec import Dc09Decoder, Dc09Message, encode_frame
from safecity.security import Role
from tests.api.conftest import RunningApi, api_settings, running_api

KEY_HEX = "00112233445566778899AABBCCDDEEFF"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[RunningApi]:
    settings = api_settings(tmp_path, dc09_port=free_port())
    async with running_api(settings, with_workers=True) as running:
        yield running


async def send_frame(port: int, frame: bytes) -> Dc09Message:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(frame)
        raw = await asyncio.wait_for(reader.readuntil(b"\r"), 5)
    finally:
        writer.close()
        await writer.wait_closed()
    decoder = Dc09Decoder()
    decoder.feed(raw)
    reply = decoder.next_frame()
    assert isinstance(reply, Dc09Message)
    return reply


async def poll(fetch: Any, ready: Any, timeout: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await fetch()
        if ready(value):
            return value
        assert asyncio.get_running_loop().time() < deadline, f"not ready: {value}"
        await asyncio.sleep(0.05)


async def test_panic_button_to_incident_request(platform: RunningApi) -> None:
    api = platform
    supervisor = api.auth(Role.SUPERVISOR)
    created = await api.client.post("/api/v1/alarm-accounts", headers=supervisor, json={
        "number": "1234AB", "kind": "building_panic_button", "name": "Block 12, corridor 3",
        "address": "Mannerheimintie 12, Helsinki", "lat": 60.1699, "lon": 24.9384, "key_hex": KEY_HEX,
        "link_test_interval_s": 90,
    })
    assert created.status_code == 201, created.text
    assert created.json()["encrypted"] is True
    assert "key_hex" not in created.json()

    operator = api.auth(Role.OPERATOR)
    ws_url = api.url.replace("http", "ws") + f"/api/v1/live?access_token={api.tokens[Role.OPERATOR]}&topics=alarm"
    async with websockets.connect(ws_url) as live:
        subscribed = orjson.loads(await live.recv())
        assert subscribed["topics"] == ["alarm"]

        frame = encode_frame("SIA-DCS", sequence=17, account="1234AB", data="#1234AB|Nri1/PA003", line="1",
                             timestamp=datetime.now(UTC), key=bytes.fromhex(KEY_HEX))
        ack = await send_frame(api.services.settings.dc09_port, frame)
        assert (ack.protocol_id, ack.sequence, ack.encrypted) == ("ACK", 17, True)

        alarms = await poll(lambda: api.client.get("/api/v1/alarms", headers=operator),
                            lambda r: r.status_code == 200 and r.json())
        [alarm] = alarms.json()
        assert (alarm["account"], alarm["code"], alarm["zone"], alarm["priority"], alarm["status"]) == (
            "1234AB", "PA", "003", 1, "new")

        pushed = orjson.loads(await asyncio.wait_for(live.recv(), 5))
        assert pushed["type"] == "event"
        assert pushed["event"]["kind"] in ("alarm.signal_received", "alarm.changed")

    alarm_id = alarm["id"]
    claimed = await api.client.post(f"/api/v1/alarms/{alarm_id}/claim", headers=operator)
    assert claimed.json()["claimed_by"] == "user_operator"
    other = await api.client.post(f"/api/v1/alarms/{alarm_id}/claim", headers=api.auth(Role.DISPATCHER))
    assert other.status_code == 409
    assert other.headers["content-type"].startswith("application/problem+json")

    action = await api.client.post(f"/api/v1/alarms/{alarm_id}/actions", headers=operator,
                                   json={"action": "called_keyholder", "note": "no answer"})
    assert action.status_code == 200, action.text
    escalated = await api.client.post(f"/api/v1/alarms/{alarm_id}/escalate", headers=operator,
                                      json={"note": "panic confirmed by caretaker"})
    assert escalated.json()["incident_requested"] is True

    events = await api.client.get("/api/v1/events", params={"kind": "incident.requested"},
                                  headers=api.auth(Role.AUDITOR))
    [request] = events.json()
    assert request["payload"]["alarm_id"] == alarm_id
    assert request["location"]["lat"] == pytest.approx(60.1699)

    detail = await api.client.get(f"/api/v1/alarms/{alarm_id}", headers=operator)
    body = detail.json()
    assert [a["action"] for a in body["actions"]] == ["claimed", "called_keyholder", "escalated"]
    assert body["signals"][0]["code"] == "PA"

    closed = await api.client.post(f"/api/v1/alarms/{alarm_id}/close", headers=operator,
                                   json={"resolution": "dispatched"})
    assert closed.json()["status"] == "closed"
    assert (await api.client.get("/api/v1/alarms", headers=operator)).json() == []


async def test_auditor_is_refused_the_alarm_topic(platform: RunningApi) -> None:
    api = platform
    ws_url = api.url.replace("http", "ws") + f"/api/v1/live?access_token={api.tokens[Role.AUDITOR]}"
    async with websockets.connect(ws_url) as live:
        await live.send(orjson.dumps({"type": "subscribe", "topics": ["alarm", "audit"]}).decode())
        answer = orjson.loads(await live.recv())
        assert answer == {"type": "subscribed", "topics": ["audit"], "denied": ["alarm"]}


async def test_account_changes_reach_the_receiver_at_once(platform: RunningApi) -> None:
    api = platform
    supervisor = api.auth(Role.SUPERVISOR)
    await api.client.post("/api/v1/alarm-accounts", headers=supervisor, json={
        "number": "77AA", "kind": "fire_panel", "name": "School 41", "address": "Koulukatu 1",
        "lat": 60.2, "lon": 24.9,
    })
    patched = await api.client.patch("/api/v1/alarm-accounts/77aa", headers=supervisor, json={
        "key_hex": KEY_HEX, "zones": [{"zone": "002", "name": "Boiler room", "type": "fire"}],
        "contacts": [{"name": "Janitor", "phone": "+358 40 1234567"}],
    })
    assert patched.status_code == 200, patched.text
    assert patched.json()["encrypted"] is True
    assert patched.json()["zones"][0]["name"] == "Boiler room"
    port = api.services.settings.dc09_port
    # the receiver learns of the change through the log's live feed: within moments, not at its next reload
    deadline = asyncio.get_running_loop().time() + 2
    sequence = 0
    while True:
        sequence += 1
        plain = encode_frame("SIA-DCS", sequence=sequence, account="77AA", data="#77AA|NFA002", line="1",
                             timestamp=datetime.now(UTC))
        if (await send_frame(port, plain)).protocol_id == "DUH":  # a keyed account refuses plain text
            break
        assert asyncio.get_running_loop().time() < deadline, "the new key did not reach the receiver"
        await asyncio.sleep(0.02)
    secret = encode_frame("SIA-DCS", sequence=sequence + 1, account="77AA", data="#77AA|NFA002", line="1",
                          timestamp=datetime.now(UTC), key=bytes.fromhex(KEY_HEX))
    assert (await send_frame(port, secret)).protocol_id == "ACK"
    refused = await api.client.patch("/api/v1/alarm-accounts/77AA", headers=api.auth(Role.OPERATOR),
                                     json={"key_hex": None})
    assert refused.status_code == 403


async def test_batching_clients_get_events_in_batch_frames(platform: RunningApi) -> None:
    api = platform
    token = api.tokens[Role.OPERATOR]
    ws_url = api.url.replace("http", "ws") + f"/api/v1/live?access_token={token}&topics=alarm&batch=1"
    async with websockets.connect(ws_url) as live:
        assert orjson.loads(await live.recv())["type"] == "subscribed"
        await api.client.post("/api/v1/alarm-accounts", headers=api.auth(Role.SUPERVISOR), json={
            "number": "5555", "kind": "facility", "name": "Depot", "address": "Satamakatu 1", "lat": 60.16,
            "lon": 24.95})
        frame = orjson.loads(await asyncio.wait_for(live.recv(), 5))
        assert frame["type"] == "batch"
        assert frame["messages"][0]["type"] == "event"
        assert frame["messages"][0]["event"]["kind"] == "alarm.account_changed"
