"""An operator watches the map, a panic button is pressed, the alarm is worked in the browser;
an auditor sees the audit log and none of the live controls."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from playwright.async_api import Page, expect

from safecity.receivers.dc09_codec import encode_frame
from safecity.security import Role
from tests.alarms.test_alarm_flow import KEY_HEX, send_frame
from tests.api.conftest import RunningApi
from tests.e2e.conftest import SCREENSHOTS, Browser, log_in

ACCOUNT = {
    "number": "1234AB", "kind": "building_panic_button", "name": "Block 12, corridor 3",
    "address": "Mannerheimintie 12, Helsinki", "lat": 60.1699, "lon": 24.9384, "key_hex": KEY_HEX,
    "link_test_interval_s": 0,
    "zones": [
        {"zone": "001", "name": "Main entrance", "type": "burglary"},
        {"zone": "003", "name": "Corridor 3 panic button", "type": "panic"},
    ],
    "contacts": [
        {"name": "Aino Virtanen", "phone": "+358401234567", "role": "caretaker", "order": 1},
        {"name": "Mikko Nieminen", "phone": "+358407654321", "role": "keyholder", "order": 2},
    ],
    "notes": "Caretaker on site 7-15.",
}


async def press_panic_button(api: RunningApi) -> None:
    frame = encode_frame("SIA-DCS", sequence=17, account="1234AB", data="#1234AB|Nri1/PA003", line="1",
                         timestamp=datetime.now(UTC), key=bytes.fromhex(KEY_HEX))
    ack = await send_frame(api.services.settings.dc09_port, frame)
    assert ack.protocol_id == "ACK"


async def map_drawn(page: Page) -> None:
    """The offline base map is on screen: roads from the platform's own tiles were rendered."""
    await expect(page.locator("body")).to_have_attribute("data-map", "ready")
    await expect(page.locator("body")).to_have_attribute("data-map-idle", "true")
    await expect(page.locator("body")).not_to_have_attribute("data-roads", "0")


async def test_operator_works_a_panic_alarm_live(platform: RunningApi, browser: Browser) -> None:
    api = platform
    created = await api.client.post("/api/v1/alarm-accounts", headers=api.auth(Role.SUPERVISOR), json=ACCOUNT)
    assert created.status_code == 201, created.text

    page = await browser.page()
    await log_in(page, api.url, "user_operator")
    await expect(page.get_by_test_id("live-indicator")).to_have_attribute("data-state", "live")
    await expect(page.get_by_test_id("alarm-queue")).to_contain_text("No open alarms")
    await map_drawn(page)

    await press_panic_button(api)
    item = page.get_by_test_id("alarm-item")
    await expect(item).to_have_count(1, timeout=5000)  # pushed over the WebSocket, not polled
    await expect(item).to_have_class(re.compile(r"\bp1\b"))
    await expect(item).to_contain_text("PA")
    await expect(page.get_by_test_id("p1-banner")).to_be_visible()
    await expect(page.locator("body")).to_have_attribute("data-beeps", "1")

    await item.click()
    card = page.get_by_test_id("detail-card")
    await expect(card).to_be_visible()
    await expect(card.get_by_test_id("zones")).to_contain_text("Corridor 3 panic button")
    await expect(card.get_by_test_id("keyholders")).to_contain_text("Aino Virtanen")
    await expect(card.get_by_test_id("keyholders")).to_contain_text("+358401234567")
    await expect(card.get_by_test_id("escalate")).to_be_disabled()  # only after a claim

    await card.get_by_test_id("claim").click()
    await expect(card.get_by_test_id("alarm-status")).to_contain_text("claimed by user_operator")
    await expect(page.get_by_test_id("p1-banner")).to_be_hidden()
    await card.get_by_test_id("alarm-note").fill("panic confirmed by caretaker")
    await card.get_by_test_id("escalate").click()
    await expect(card.get_by_test_id("alarm-status")).to_contain_text("incident requested")
    await expect(card.get_by_test_id("alarm-actions")).to_contain_text("escalated")
    # dispatch takes the request: the incident appears live in the incidents tab
    await expect(page.get_by_test_id("tab-incidents")).to_contain_text("1")

    for layer in ("alarms", "incidents", "units", "accounts", "building", "boundary"):
        await expect(page.get_by_test_id(f"toggle-{layer}")).to_be_visible()
    await page.get_by_test_id("search").fill("mannerheim")
    hits = page.get_by_test_id("search-hit")
    await expect(hits.filter(has_text="Block 12, corridor 3")).to_have_count(1)  # the account, by its address
    await expect(hits.filter(has_text="street")).not_to_have_count(0)  # street names from the offline tiles
    await page.get_by_test_id("search").press("Escape")
    await card.evaluate("card => card.scrollTo(0, 0)")
    await map_drawn(page)
    await page.screenshot(path=SCREENSHOTS / "situation-centre-operator.png")

    [alarm] = (await api.client.get("/api/v1/alarms", headers=api.auth(Role.OPERATOR))).json()
    assert (alarm["claimed_by"], alarm["incident_requested"]) == ("user_operator", True)

    auditor = await browser.page()
    await log_in(auditor, api.url, "user_auditor")
    await expect(auditor.get_by_test_id("audit-view")).to_be_visible()
    rows = auditor.get_by_test_id("audit-row")
    await expect(rows.filter(has_text="alarm.escalated")).to_have_count(1)
    await expect(rows.filter(has_text="alarm.claimed")).to_have_count(1)
    await expect(auditor.get_by_test_id("alarm-queue")).to_be_hidden()
    await expect(auditor.get_by_test_id("map")).to_be_hidden()
    await expect(auditor.get_by_test_id("claim")).to_have_count(0)
    await expect(auditor.get_by_test_id("audit-verdict")).to_contain_text("chain intact")
    await auditor.screenshot(path=SCREENSHOTS / "audit-view-auditor.png")
