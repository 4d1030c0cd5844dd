"""The whole chain in the browsers: a panic alarm escalated, the dispatcher assigns the recommended
unit with one click, the crew works it on the tablet to the end, the dispatcher's map follows live."""

from __future__ import annotations

import asyncio

from playwright.async_api import expect

from safecity.geo.cli import default_graph_path, import_roads
from safecity.geo.roads import demo_extract_path
from safecity.security import Role
from tests.api.conftest import RunningApi
from tests.e2e.conftest import SCREENSHOTS, Browser, log_in
from tests.e2e.test_situation_centre import ACCOUNT, press_panic_button

UNIT = {"id": "U1", "callsign": "Patrol 12", "kind": "rapid_response_group", "home_lat": 60.1712,
        "home_lon": 24.9441, "on_shift": True}


async def test_dispatcher_assigns_the_recommended_unit_and_the_crew_clears_it(
    platform: RunningApi, browser: Browser
) -> None:
    api = platform
    import_roads(demo_extract_path(), default_graph_path(api.services.settings.data_dir))
    assert (await api.client.post("/api/v1/alarm-accounts", headers=api.auth(Role.SUPERVISOR),
                                  json=ACCOUNT)).status_code == 201
    assert (await api.client.post("/api/v1/units", headers=api.auth(Role.SUPERVISOR), json=UNIT)).status_code == 201

    await press_panic_button(api)
    operator = api.auth(Role.OPERATOR)
    alarms: list[dict[str, object]] = []
    for _ in range(100):
        alarms = (await api.client.get("/api/v1/alarms", headers=operator)).json()
        if alarms:
            break
        await asyncio.sleep(0.05)
    [alarm] = alarms
    await api.client.post(f"/api/v1/alarms/{alarm['id']}/claim", headers=operator)
    await api.client.post(f"/api/v1/alarms/{alarm['id']}/escalate", headers=operator, json={"note": "confirmed"})

    dispatcher = await browser.page()
    await log_in(dispatcher, api.url, "user_dispatcher")
    await expect(dispatcher.get_by_test_id("live-indicator")).to_have_attribute("data-state", "live")
    await dispatcher.get_by_test_id("tab-incidents").click()
    incident = dispatcher.get_by_test_id("incident-item")
    await expect(incident).to_have_count(1, timeout=10_000)
    await incident.click()
    [open_incident] = (await api.client.get("/api/v1/incidents", headers=api.auth(Role.DISPATCHER))).json()
    assign = dispatcher.get_by_test_id("assign")
    await expect(assign).to_have_count(1, timeout=10_000)  # U1 recommended, ETA by road
    await assign.click()
    await expect(dispatcher.get_by_test_id("incident-units")).to_contain_text("U1")

    tablet = await browser.page()
    await tablet.set_viewport_size({"width": 800, "height": 1100})
    await log_in(tablet, f"{api.url}/tablet", "user_field_unit")
    await expect(tablet.get_by_test_id("assignment-address")).to_have_text("Mannerheimintie 12, Helsinki")
    await expect(tablet.locator("body")).to_have_attribute("data-route", "road")  # the road route, not a line
    await tablet.get_by_test_id("acknowledge").click()
    for status in ("en_route", "on_scene"):
        await tablet.get_by_test_id(f"status-{status}").click()
        await expect(tablet.locator("body")).to_have_attribute("data-unit-status", status)
    await dispatcher.bring_to_front()
    await dispatcher.get_by_test_id("tab-units").click()
    await expect(dispatcher.get_by_test_id("unit-item")).to_contain_text("on scene")  # pushed live
    await dispatcher.screenshot(path=SCREENSHOTS / "dispatch-unit-on-scene.png")

    await tablet.bring_to_front()
    await tablet.locator("#note").fill("Door forced, resident safe, police informed.")
    await tablet.locator("#send-note").click()
    await tablet.get_by_test_id("status-returning").click()  # the crew clears the scene
    await expect(tablet.locator("body")).to_have_attribute("data-unit-status", "returning")
    await tablet.screenshot(path=SCREENSHOTS / "tablet-cleared.png")

    detail = (await api.client.get(f"/api/v1/incidents/{open_incident['id']}",
                                   headers=api.auth(Role.DISPATCHER))).json()
    assert detail["status"] == "closed"  # the last unit cleared the scene
    assert any(t["kind"] == "note" and "resident safe" in t["detail"] for t in detail["timeline"])
    assert all(detail["intervals"].get(name) is not None for name in ("call_processing_s", "turnout_s", "travel_s"))
