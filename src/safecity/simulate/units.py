"""Rapid-response units driving the real road graph and answering their jobs like a crew.

Each unit drives fastest routes (`geo.routing.route`) between random destinations on the loaded
graph at the route's own travel speed and reports a fix every few seconds over the real OsmAnd HTTP
protocol (one keep-alive client for the whole fleet), so the GPS path of the platform is what moves
it on the map. Each crew logs in as its own field_unit user and listens on the live WebSocket (topic
`unit`, which a field user gets for its own unit only) for `unit.assigned`; a slow poll of its
assignment covers a dropped socket. A job is worked as a crew works it, through the public REST
API: acknowledge, en route, drive the road route to the incident, on scene, wait, returning,
available.

`speed_factor` makes simulated time pass faster than wall time (tests); positions and statuses are
still the ones a real crew would send.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import websockets

from safecity.geo.coords import bearing_deg, haversine_m
from safecity.geo.errors import GeoError
from safecity.geo.graph import RoadGraph
from safecity.geo.routing import Route, route, snap, snap_to_node

if TYPE_CHECKING:
    from safecity.services import Services

log = logging.getLogger(__name__)

HELSINKI_CENTRE = (60.1716, 24.9443)  # the middle of the road extract the demo ships
KNOT_MPS = 1852 / 3600
_METRES_PER_DEGREE = 111_320.0
_STATIONS = ("Kamppi", "Kluuvi", "Kaartinkaupunki", "Punavuori", "Kruununhaka", "Etu-Töölö", "Ullanlinna",
             "Katajanokka")
# what a crew still has to report after each assignment status, in order
_REMAINING: dict[str, tuple[str, ...]] = {
    "assigned": ("en_route", "on_scene", "returning", "available"),
    "en_route": ("on_scene", "returning", "available"),
    "on_scene": ("returning", "available"),
}


@dataclass(frozen=True, slots=True)
class DemoUnit:
    """One unit of the demo fleet and the crew tablet's login (a known demo password)."""

    id: str
    callsign: str
    kind: str
    station: str
    home_lat: float
    home_lon: float
    username: str
    password: str

    def fields(self) -> dict[str, Any]:
        """What `UnitDesk.create_unit` takes: on shift from the start."""
        return {"id": self.id, "callsign": self.callsign, "kind": self.kind, "home_lat": self.home_lat,
                "home_lon": self.home_lon, "on_shift": True, "crew": [f"{self.callsign} crew"]}


def demo_password(unit_id: str) -> str:
    """A known demo password; it must not contain the username (the unit id), so only its number."""
    return f"crew-shift-{unit_id.rsplit('-', 1)[-1]}-demo"


def demo_units(
    count: int, seed: int = 2024, *, center: tuple[float, float] = HELSINKI_CENTRE, radius_m: float = 500.0
) -> list[DemoUnit]:
    """`count` rapid-response groups based at stations around `center`; the same arguments, the same fleet."""
    units = []
    for index in range(count):
        rng = random.Random(f"{seed}:unit:{index}")
        distance, bearing = radius_m * math.sqrt(rng.random()), rng.uniform(0.0, 2 * math.pi)
        lat = center[0] + distance * math.cos(bearing) / _METRES_PER_DEGREE
        lon = center[1] + distance * math.sin(bearing) / (_METRES_PER_DEGREE * math.cos(math.radians(center[0])))
        unit_id = f"RRG-{index + 1:02d}"
        units.append(DemoUnit(
            id=unit_id, callsign=f"Rapid {index + 1}", kind="rapid_response_group",
            station=_STATIONS[index % len(_STATIONS)], home_lat=round(lat, 6), home_lon=round(lon, 6),
            username=unit_id.lower(), password=demo_password(unit_id),
        ))
    return units


async def provision_units(services: Services, units: Sequence[DemoUnit]) -> int:
    """Create the units (on shift) and one field_unit user per unit that do not exist yet; returns units made."""
    from safecity.dispatch.logic import Actor, UnitExists
    from safecity.security import Role, UserExists

    actor = Actor("simulator", "admin")
    created = 0
    for unit in units:
        try:
            await services.dispatch.units.create_unit(unit.fields(), actor)
            created += 1
        except UnitExists:
            pass
        with contextlib.suppress(UserExists):
            await services.security.add_user(unit.username, unit.password, Role.FIELD_UNIT, unit_id=unit.id,
                                             actor="simulator")
    return created


# -- the fleet ---------------------------------------------------------------------------------------
@dataclass
class UnitStats:
    fixes_sent: int = 0
    fixes_failed: int = 0
    assignments: int = 0
    completed: int = 0
    errors: int = 0

    def summary(self) -> str:
        return (f"fixes={self.fixes_sent} failed_fixes={self.fixes_failed} assignments={self.assignments} "
                f"completed={self.completed} errors={self.errors}")


@dataclass
class _Crew:
    unit: DemoUnit
    lat: float
    lon: float
    token: str = ""
    refresh_token: str = ""
    login_after: float = 0.0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    logged_in: asyncio.Event = field(default_factory=asyncio.Event)
    status: str = "available"
    last_fix_ms: int = 0


class UnitSimulator:
    """Units on `graph` reporting to the OsmAnd receiver at `osmand_url`, crews using the API at `api_url`."""

    def __init__(
        self,
        graph: RoadGraph,
        units: Sequence[DemoUnit],
        *,
        api_url: str,
        osmand_url: str,
        fix_interval_s: float = 3.0,
        on_scene_s: float = 60.0,
        speed_factor: float = 1.0,
        poll_s: float = 15.0,
        seed: int | None = None,
    ) -> None:
        if not units:
            raise ValueError("a simulator needs at least one unit")
        self.graph = graph
        self.api_url = api_url.rstrip("/")
        self.osmand_url = osmand_url.rstrip("/") + "/"
        self.fix_interval_s = fix_interval_s
        self.on_scene_s = on_scene_s
        self.speed_factor = speed_factor
        self.poll_s = poll_s
        self.stats = UnitStats()
        self._rng = random.Random(seed)
        self._crews = [_Crew(u, u.home_lat, u.home_lon) for u in units]
        self._tasks: list[asyncio.Task[None]] = []
        self._osmand: httpx.AsyncClient | None = None
        self._api: httpx.AsyncClient | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._tasks:
            raise RuntimeError("the simulator is running already")
        limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
        self._osmand = httpx.AsyncClient(timeout=10, limits=limits)
        self._api = httpx.AsyncClient(base_url=self.api_url, timeout=15)
        for crew in self._crews:
            self._tasks.append(asyncio.create_task(self._run_crew(crew), name=f"unit-{crew.unit.id}"))
            self._tasks.append(asyncio.create_task(self._listen(crew), name=f"unit-live-{crew.unit.id}"))

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, Exception):
                log.error("unit simulator task failed", exc_info=result)
        for client in (self._osmand, self._api):
            if client is not None:
                await client.aclose()
        self._osmand = self._api = None

    async def run(self, stop: asyncio.Event, duration_s: float | None = None) -> UnitStats:
        """Drive until `stop` is set (or `duration_s` passed), then close."""
        await self.start()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), duration_s)
        finally:
            await self.close()
        return self.stats

    def position(self, unit_id: str) -> tuple[float, float]:
        crew = next(c for c in self._crews if c.unit.id == unit_id)
        return crew.lat, crew.lon

    # -- one crew ----------------------------------------------------------------------------------
    async def _run_crew(self, crew: _Crew) -> None:
        start = await asyncio.to_thread(snap, self.graph, crew.lat, crew.lon)
        crew.lat, crew.lon = start.lat, start.lon
        while True:
            try:
                if not crew.token and time.monotonic() >= crew.login_after:
                    await self._login(crew)
                job = await self._assignment(crew) if crew.token else None
                if job is not None:
                    await self._work(crew, job)
                    continue
                await self._patrol(crew)
            except asyncio.CancelledError:
                raise
            except (httpx.HTTPError, GeoError, KeyError, ValueError) as exc:
                self.stats.errors += 1
                log.warning("unit simulator step failed unit=%s error=%r", crew.unit.id, exc)
                await asyncio.sleep(self.fix_interval_s)

    async def _patrol(self, crew: _Crew) -> None:
        """Drive to a random junction; stop early when a job may have come in or a poll is due."""
        node = self._rng.randrange(self.graph.node_count)
        found = await self._route(crew, snap_to_node(self.graph, node))
        crew.wake.clear()
        await self._drive(crew, found, interrupt=crew.wake, budget_s=self.poll_s)

    async def _work(self, crew: _Crew, job: dict[str, Any]) -> None:
        unit_id = crew.unit.id
        self.stats.assignments += 1
        log.info("unit answers job unit=%s incident=%s status=%s", unit_id, job["incident_id"], job["status"])
        await self._call(crew, "POST", f"/api/v1/units/{unit_id}/acknowledge")
        incident = await self._call(crew, "GET", f"/api/v1/incidents/{job['incident_id']}")
        for status in _REMAINING.get(job["status"], ()):
            if status == "on_scene":
                target = await asyncio.to_thread(snap, self.graph, incident["lat"], incident["lon"])
                await self._drive(crew, await self._route(crew, target))
            elif status == "returning":
                await self._hold(crew, self.on_scene_s)
            elif status == "available":
                await self._hold(crew, self.fix_interval_s * self.speed_factor)
            await self._call(crew, "POST", f"/api/v1/units/{unit_id}/status", json={"status": status})
            crew.status = status
        self.stats.completed += 1

    async def _route(self, crew: _Crew, target: Any) -> Route:
        source = await asyncio.to_thread(snap, self.graph, crew.lat, crew.lon)
        return await asyncio.to_thread(route, self.graph, source, target)

    async def _drive(
        self, crew: _Crew, found: Route, *, interrupt: asyncio.Event | None = None, budget_s: float | None = None
    ) -> None:
        """Follow the route's line at its travel speed, a fix every `fix_interval_s` of wall time."""
        points = [(lat, lon) for lon, lat in found.coordinates]
        speed = found.metres / found.seconds if found.seconds > 0 else 0.0
        step = speed * self.fix_interval_s * self.speed_factor
        started = time.monotonic()
        index, heading = 0, 0.0
        while index < len(points) - 1:
            left = step
            while index < len(points) - 1 and left > 0:
                nxt = points[index + 1]
                gap = haversine_m(crew.lat, crew.lon, nxt[0], nxt[1])
                if gap > 0:
                    heading = bearing_deg(crew.lat, crew.lon, nxt[0], nxt[1])
                if gap <= left:
                    crew.lat, crew.lon = nxt
                    left -= gap
                    index += 1
                else:
                    share = left / gap
                    crew.lat += (nxt[0] - crew.lat) * share
                    crew.lon += (nxt[1] - crew.lon) * share
                    left = 0.0
            await self._fix(crew, speed, heading)
            if step <= 0:
                break
            if interrupt is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(interrupt.wait(), self.fix_interval_s)
                if interrupt.is_set():
                    return
            else:
                await asyncio.sleep(self.fix_interval_s)
            if budget_s is not None and time.monotonic() - started >= budget_s:
                return

    async def _hold(self, crew: _Crew, sim_seconds: float) -> None:
        """Stand still for `sim_seconds` of simulated time, still reporting fixes."""
        until = time.monotonic() + sim_seconds / self.speed_factor
        while True:
            await self._fix(crew, 0.0, 0.0)
            left = until - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, self.fix_interval_s))

    async def _fix(self, crew: _Crew, speed_mps: float, heading: float) -> None:
        """One OsmAnd report; timestamps in milliseconds and strictly increasing, so none is deduplicated."""
        assert self._osmand is not None
        stamp = max(int(time.time() * 1000), crew.last_fix_ms + 1)
        crew.last_fix_ms = stamp
        params = {"id": crew.unit.id, "lat": f"{crew.lat:.7f}", "lon": f"{crew.lon:.7f}", "timestamp": str(stamp),
                  "speed": f"{speed_mps / KNOT_MPS:.1f}", "bearing": f"{heading:.0f}", "accuracy": "5"}
        try:
            answer = await self._osmand.get(self.osmand_url, params=params)
        except httpx.HTTPError as exc:
            self.stats.fixes_failed += 1
            log.debug("fix not delivered unit=%s error=%r", crew.unit.id, exc)
            return
        if answer.status_code == 200:
            self.stats.fixes_sent += 1
        else:
            self.stats.fixes_failed += 1

    # -- the API, as the crew's tablet uses it -----------------------------------------------------
    async def _login(self, crew: _Crew) -> None:
        """Refresh the session if there is one, else log in. Logins are throttled per address (a fleet on
        one host exceeds it): on 429 the crew keeps driving and tries again when told to."""
        assert self._api is not None
        if crew.refresh_token:
            answer = await self._api.post("/api/v1/auth/refresh", json={"refresh_token": crew.refresh_token})
            crew.refresh_token = ""
            if answer.status_code == 200:
                self._took(crew, answer.json())
                return
        answer = await self._api.post("/api/v1/auth/token",
                                      data={"username": crew.unit.username, "password": crew.unit.password})
        if answer.status_code == 429:
            crew.token = ""
            crew.login_after = time.monotonic() + float(answer.headers.get("Retry-After", "10"))
            log.info("crew login throttled unit=%s retry_after_s=%s", crew.unit.id, answer.headers.get("Retry-After"))
            return
        answer.raise_for_status()
        self._took(crew, answer.json())

    @staticmethod
    def _took(crew: _Crew, tokens: dict[str, Any]) -> None:
        crew.token, crew.refresh_token = tokens["access_token"], tokens["refresh_token"]
        crew.logged_in.set()

    async def _call(self, crew: _Crew, method: str, path: str, json: Any = None) -> Any:
        """One request with the crew's token; a 401 (token expired) logs in again once."""
        assert self._api is not None
        for attempt in (1, 2):
            answer = await self._api.request(method, path, json=json,
                                             headers={"Authorization": f"Bearer {crew.token}"})
            if answer.status_code == 401 and attempt == 1:
                await self._login(crew)
                if not crew.token:
                    break
                continue
            answer.raise_for_status()
            return answer.json()
        raise httpx.HTTPError(f"unit {crew.unit.id}: not logged in")

    async def _assignment(self, crew: _Crew) -> dict[str, Any] | None:
        job: dict[str, Any] | None = await self._call(crew, "GET", f"/api/v1/units/{crew.unit.id}/assignment")
        if job is None or not job.get("active") or job.get("status") not in _REMAINING:
            return None
        return job

    async def _listen(self, crew: _Crew) -> None:
        """The live feed: `unit.assigned` for this unit wakes the crew at once."""
        url = "ws" + self.api_url.removeprefix("http") + "/api/v1/live"
        while True:
            try:
                await crew.logged_in.wait()
                async with websockets.connect(f"{url}?access_token={crew.token}&topics=unit") as socket:
                    async for raw in socket:
                        message = orjson.loads(raw)
                        if message.get("type") != "event":
                            continue
                        event = message["event"]
                        if event["kind"] == "unit.assigned" and event["payload"].get("unit_id") == crew.unit.id:
                            crew.wake.set()
            except asyncio.CancelledError:
                raise
            except (OSError, websockets.WebSocketException) as exc:
                log.debug("unit live feed dropped unit=%s error=%r", crew.unit.id, exc)
            await asyncio.sleep(2.0)
