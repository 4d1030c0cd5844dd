"""The unit simulator against the real platform: OsmAnd fixes along the road graph, a job worked end to end."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from safecity.geo.routing import snap
from safecity.receivers.osmand import start_receiver
from safecity.security import Role
from safecity.simulate.units import DemoUnit, UnitSimulator, demo_units, provision_units
from tests.api.conftest import api_settings, running_api


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float = 20.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not await check():
            await asyncio.sleep(0.1)


def test_demo_units_are_deterministic_with_known_crew_logins() -> None:
    fleet = demo_units(5, seed=7)
    assert fleet == demo_units(5, seed=7)
    assert demo_units(8, seed=7)[:5] == fleet
    assert [u.id for u in fleet] == ["RRG-01", "RRG-02", "RRG-03", "RRG-04", "RRG-05"]
    assert all(isinstance(u, DemoUnit) and u.username == u.id.lower() and len(u.password) >= 10 for u in fleet)


async def test_unit_drives_the_roads_and_works_its_job_to_available(tmp_path: Path) -> None:
    settings = api_settings(tmp_path, osmand_port=0, dc09_port=0)
    async with running_api(settings, with_workers=True) as api:
        services = api.services
        osmand = await start_receiver(services)
        try:
            [unit] = demo_units(1, seed=3)
            assert await provision_units(services, [unit]) == 1
            assert await provision_units(services, [unit]) == 0  # idempotent
            graph = await services.dispatch.graph_provider()
            dispatcher = api.auth(Role.DISPATCHER)

            simulator = UnitSimulator(graph, [unit], api_url=api.url, osmand_url=f"http://127.0.0.1:{osmand.port}",
                                      fix_interval_s=0.2, on_scene_s=1.0, speed_factor=15.0, poll_s=5.0, seed=1)
            await simulator.start()
            try:
                async def moved() -> bool:
                    stored = await services.events.read("unit", limit=10_000)
                    fixes = [s.event for s in stored if s.event.kind == "unit.position_reported"
                             and s.event.payload["transport"] == "osmand"]
                    return len({(f.payload["lat"], f.payload["lon"]) for f in fixes}) >= 3

                await until(moved)
                lat, lon = simulator.position(unit.id)
                assert snap(graph, lat, lon).distance_m < 1.0  # on a road, not across the blocks

                answer = await api.client.post("/api/v1/incidents", headers=dispatcher, json={
                    "type": "panic_alarm", "lat": 60.1700, "lon": 24.9410, "address": "Kampinkuja 1"})
                assert answer.status_code == 201, answer.text
                incident_id = answer.json()["id"]
                answer = await api.client.post(f"/api/v1/incidents/{incident_id}/assignments", headers=dispatcher,
                                               json={"unit_id": unit.id})
                assert answer.status_code == 201, answer.text

                async def closed() -> bool:
                    found = (await api.client.get(f"/api/v1/incidents/{incident_id}", headers=dispatcher)).json()
                    state = (await api.client.get(f"/api/v1/units/{unit.id}", headers=dispatcher)).json()
                    return bool(found["status"] == "closed" and state["status"] == "available")

                await until(closed, 30)
            finally:
                await simulator.close()
            detail = (await api.client.get(f"/api/v1/incidents/{incident_id}", headers=dispatcher)).json()
            assert [t["kind"] for t in detail["timeline"]] == [
                "created", "assigned", "acknowledged", "en_route", "on_scene", "cleared", "closed"]
            [job] = detail["assignments"]
            assert job["acknowledged_at"] is not None and job["on_scene_at"] > job["en_route_at"]
            # the crew drove the road route to the scene: its last fix before reporting on scene is there
            stored = [s.event for s in await services.events.read("unit", limit=10_000)]
            arrived = next(i for i, e in enumerate(stored)
                           if e.kind == "unit.status_changed" and e.payload["status"] == "on_scene")
            last = [e for e in stored[:arrived] if e.kind == "unit.position_reported"][-1]
            target = snap(graph, 60.1700, 24.9410)
            assert abs(last.payload["lat"] - target.lat) < 1e-5 and abs(last.payload["lon"] - target.lon) < 1e-5
            assert simulator.stats.completed == 1 and simulator.stats.fixes_sent >= 5
        finally:
            await osmand.stop()
