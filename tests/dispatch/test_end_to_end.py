"""The whole chain: a DC-09 panic frame on the wire → alarm → escalation → incident → recommendation →
assignment → the crew's tablet works the job → the incident closes with every response interval recorded."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from safecity.receivers.dc09_codec import encode_frame
from safecity.security import Role
from tests.alarms.test_alarm_flow import free_port, poll, send_frame
from tests.api.conftest import RunningApi, api_settings, running_api

KEY_HEX = "00112233445566778899AABBCCDDEEFF"
MANNERHEIMINTIE_12 = (60.1699, 24.9384)
NEAR = (60.1710, 24.9414)  # by the central station: about half a minute away by road
FAR = (60.1695, 24.9522)  # Senate Square: about two minutes away
CREW_UNIT = "U1"  # the unit the test platform's field-unit user (user_field_unit) is bound to


@contextlib.asynccontextmanager
async def dispatch_worker(api: RunningApi) -> AsyncIterator[None]:
    """The dispatch worker, as `safecity serve` runs it (a second copy would share its consumer group)."""
    stop = asyncio.Event()
    task = asyncio.create_task(api.services.dispatch.run_worker(stop, every_s=0.5))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[RunningApi]:
    settings = api_settings(tmp_path, dc09_port=free_port())
    async with running_api(settings, with_workers=True) as running, dispatch_worker(running):
        yield running


async def test_panic_frame_to_closed_incident_with_every_interval(platform: RunningApi) -> None:
    api = platform
    supervisor, operator = api.auth(Role.SUPERVISOR), api.auth(Role.OPERATOR)
    dispatcher, crew = api.auth(Role.DISPATCHER), api.auth(Role.FIELD_UNIT)

    async def ok(method: str, path: str, headers: dict[str, str], status: int = 200, **kw: Any) -> Any:
        answer = await api.client.request(method, path, headers=headers, **kw)
        assert answer.status_code == status, (method, path, answer.status_code, answer.text)
        return answer.json()

    # the protected object and two rapid-response units on shift
    await ok("POST", "/api/v1/alarm-accounts", supervisor, 201, json={
        "number": "1234AB", "kind": "building_panic_button", "name": "Block 12, corridor 3",
        "address": "Mannerheimintie 12, Helsinki", "lat": MANNERHEIMINTIE_12[0], "lon": MANNERHEIMINTIE_12[1],
        "key_hex": KEY_HEX,
    })
    for unit_id, (lat, lon) in ((CREW_UNIT, FAR), ("RRG-2", FAR)):
        await ok("POST", "/api/v1/units", supervisor, 201, json={
            "id": unit_id, "callsign": f"Alpha {unit_id}", "kind": "rapid_response_group", "crew": ["A. Virtanen"],
            "home_lat": lat, "home_lon": lon, "on_shift": True,
        })
    # the crew's tablet reports where it is now (near the object); the dispatcher places RRG-2 far away
    await ok("POST", f"/api/v1/units/{CREW_UNIT}/positions", crew, 202,
             json={"lat": NEAR[0], "lon": NEAR[1], "speed_mps": 0, "accuracy_m": 5})
    await ok("POST", "/api/v1/units/RRG-2/positions", dispatcher, 202, json={"lat": FAR[0], "lon": FAR[1]})
    await poll(lambda: api.client.get("/api/v1/units", headers=dispatcher),
               lambda r: r.status_code == 200 and all(u["last_position_at"] for u in r.json()))

    # the panic button: an encrypted SIA-DCS frame over TCP, acknowledged once it is on the log
    frame = encode_frame("SIA-DCS", sequence=21, account="1234AB", data="#1234AB|Nri1/PA003", line="1",
                         timestamp=datetime.now(UTC), key=bytes.fromhex(KEY_HEX))
    ack = await send_frame(api.services.settings.dc09_port, frame)
    assert (ack.protocol_id, ack.sequence) == ("ACK", 21)
    alarms = await poll(lambda: api.client.get("/api/v1/alarms", headers=operator),
                        lambda r: r.status_code == 200 and r.json())
    [alarm] = alarms.json()
    await ok("POST", f"/api/v1/alarms/{alarm['id']}/claim", operator)
    await ok("POST", f"/api/v1/alarms/{alarm['id']}/escalate", operator, json={"note": "screams on the intercom"})

    # the dispatch worker turns the request into a P1 panic incident
    incidents = await poll(lambda: api.client.get("/api/v1/incidents", headers=dispatcher),
                           lambda r: r.status_code == 200 and r.json())
    [incident] = incidents.json()
    assert (incident["type"], incident["priority"], incident["status"]) == ("panic_alarm", 1, "new")
    assert (incident["source"], incident["source_ref"], incident["created_by"]) == ("alarm", alarm["id"],
                                                                                  "user_operator")
    incident_id = incident["id"]

    # recommendations: the crew near the station first, with its ETA and the road to drive
    recommended = await ok("GET", f"/api/v1/incidents/{incident_id}/recommendations", dispatcher)
    assert [r["unit_id"] for r in recommended] == [CREW_UNIT, "RRG-2"]
    best = recommended[0]
    assert 0 < best["eta_s"] < recommended[1]["eta_s"]
    assert (best["position_source"], best["stale"], best["missing_capabilities"]) == ("gps", False, [])
    assert best["route"]["geometry"]["type"] == "LineString"
    assert best["route"]["properties"]["seconds"] == pytest.approx(best["eta_s"], abs=0.1)
    # the graph was built from the OSM extract on first use and cached for the next start
    assert (api.services.settings.data_dir / "roads.graph.npz").is_file()

    assigned = await ok("POST", f"/api/v1/incidents/{incident_id}/assignments", dispatcher, 201,
                        json={"unit_id": CREW_UNIT, "eta_s": best["eta_s"]})
    assert assigned["status"] == "assigned"
    again = await api.client.post(f"/api/v1/incidents/{incident_id}/assignments", headers=dispatcher,
                                  json={"unit_id": CREW_UNIT})
    assert again.status_code == 409

    # the crew's tablet: its job, acknowledge, en route, on scene, clear
    job = await ok("GET", f"/api/v1/units/{CREW_UNIT}/assignment", crew)
    assert job["incident_id"] == incident_id
    seen = await ok("GET", f"/api/v1/incidents/{incident_id}", crew)
    assert seen["address"] == "Mannerheimintie 12, Helsinki"
    await ok("POST", f"/api/v1/units/{CREW_UNIT}/acknowledge", crew)
    assert (await api.client.post("/api/v1/units/RRG-2/status", headers=crew,
                                  json={"status": "out_of_service"})).status_code == 403
    for status in ("en_route", "on_scene", "returning"):
        unit = await ok("POST", f"/api/v1/units/{CREW_UNIT}/status", crew, json={"status": status})
        assert unit["status"] == status
    assert unit["current_incident"] is None

    closed = await ok("GET", f"/api/v1/incidents/{incident_id}", dispatcher)
    assert closed["status"] == "closed" and closed["closed_by"] == "user_field_unit"
    for stamp in ("created_at", "dispatched_at", "en_route_at", "on_scene_at", "cleared_at", "closed_at"):
        assert closed[stamp] is not None, stamp
    intervals = closed["intervals"]
    assert all(value is not None and value >= 0 for value in intervals.values()), intervals
    assert intervals["total_response_s"] == pytest.approx(
        intervals["call_processing_s"] + intervals["turnout_s"] + intervals["travel_s"], abs=1e-3)
    assert [t["kind"] for t in closed["timeline"]] == [
        "created", "assigned", "acknowledged", "en_route", "on_scene", "cleared", "closed"]
    [assignment] = closed["assignments"]
    assert assignment["status"] == "cleared" and assignment["acknowledged_at"] is not None
    assert assignment["eta_s"] == pytest.approx(best["eta_s"])
    assert await ok("GET", "/api/v1/incidents", dispatcher) == []

    report = await ok("GET", "/api/v1/dispatch/statistics", supervisor)
    assert report["incidents"] == 1
    [p1] = report["by_priority"]
    assert p1["group"] == "P1" and p1["intervals"]["total_response_s"]["count"] == 1
    assert [u["group"] for u in report["by_unit"]] == [CREW_UNIT]

    # both crews are free again: how much of the city do they reach within two minutes?
    covered = await ok("GET", "/api/v1/dispatch/coverage", operator, params={"minutes": 2})
    assert covered["units"] == 2 and 0 < covered["share_of_road_length_reachable"] < 1
    assert covered["uncovered"]["type"] == "FeatureCollection"

