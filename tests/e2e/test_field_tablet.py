"""A crew on its tablet gets a job, acknowledges it, reports en route and shares its location;
the dispatcher's map follows live."""

from __future__ import annotations

from playwright.async_api import expect

from safecity.security import Role
from tests.api.conftest import RunningApi
from tests.e2e.conftest import SCREENSHOTS, Browser, log_in

INCIDENT = {"type": "burglary", "lat": 60.1712, "lon": 24.9441, "address": "Keskuskatu 5, Helsinki",
            "narrative": "Shop window broken, caller sees two people inside."}
UNIT = {"id": "U1", "callsign": "Patrol 12", "kind": "patrol_car", "home_lat": 60.1690, "home_lon": 24.9400,
        "on_shift": True}
TABLET_FIX = {"latitude": 60.1735, "longitude": 24.9410, "accuracy": 8}


async def test_crew_takes_a_job_on_the_tablet(platform: RunningApi, browser: Browser) -> None:
    api = platform
    unit = await api.client.post("/api/v1/units", headers=api.auth(Role.SUPERVISOR), json=UNIT)
    assert unit.status_code == 201, unit.text
    incident = await api.client.post("/api/v1/incidents", headers=api.auth(Role.DISPATCHER), json=INCIDENT)
    assert incident.status_code == 201, incident.text
    incident_id = incident.json()["id"]

    dispatcher = await browser.page()
    await log_in(dispatcher, api.url, "user_dispatcher")
    await expect(dispatcher.get_by_test_id("live-indicator")).to_have_attribute("data-state", "live")
    await dispatcher.get_by_test_id("tab-incidents").click()
    await expect(dispatcher.get_by_test_id("incident-item")).to_contain_text("Keskuskatu 5")

    assigned = await api.client.post(f"/api/v1/incidents/{incident_id}/assignments", headers=api.auth(Role.DISPATCHER),
                                     json={"unit_id": "U1", "eta_s": 240})
    assert assigned.status_code == 201, assigned.text

    await browser.context.grant_permissions(["geolocation"], origin=api.url)
    await browser.context.set_geolocation(TABLET_FIX)
    tablet = await browser.page()
    await tablet.set_viewport_size({"width": 800, "height": 1100})
    await log_in(tablet, f"{api.url}/tablet", "user_field_unit")
    await expect(tablet.get_by_test_id("assignment-address")).to_have_text("Keskuskatu 5, Helsinki")
    await expect(tablet.get_by_test_id("unit-status")).to_have_text("dispatched")
    await tablet.get_by_test_id("acknowledge").click()
    await expect(tablet.get_by_test_id("acknowledge")).to_have_text("Acknowledged")
    await tablet.get_by_test_id("status-en_route").click()
    await expect(tablet.get_by_test_id("unit-status")).to_have_text("en route")

    async with tablet.expect_response(lambda r: r.url.endswith("/api/v1/units/U1/positions")) as answer:
        await tablet.get_by_test_id("share-location").check()
    assert (await answer.value).status == 202

    await dispatcher.get_by_test_id("tab-units").click()
    await expect(dispatcher.get_by_test_id("unit-item")).to_contain_text("en route")  # pushed live
    await expect(tablet.locator("body")).to_have_attribute("data-unit-status", "en_route")
    await tablet.bring_to_front()  # a background tab draws no frames
    await expect(tablet.locator("body")).to_have_attribute("data-map-idle", "true")
    await tablet.screenshot(path=SCREENSHOTS / "field-tablet.png")
    await dispatcher.bring_to_front()
    await dispatcher.get_by_test_id("tab-incidents").click()
    await dispatcher.get_by_test_id("incident-item").click()
    await expect(dispatcher.get_by_test_id("incident-units")).to_contain_text("U1: en route")
    await expect(dispatcher.locator("body")).to_have_attribute("data-map-idle", "true")
    await dispatcher.screenshot(path=SCREENSHOTS / "situation-centre-dispatcher.png")
