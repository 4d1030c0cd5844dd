"""The demo city behind `safecity serve --demo` (`make run`): Helsinki roads, users, panels, units, a flow.

`prepare` makes the data dir a demo city: the road graph of the Helsinki extract, one user per role with
a known password (printed), a few hundred alarm accounts (panic buttons, apartments, facilities, fire
panels) and a fleet of rapid-response units with crew logins. `run` then drives the panel and unit
simulators against the platform's own receivers and API, in the same process, until `stop`.

DEMO BEHAVIOUR, not the platform's: `DemoDispatcher` stands in for the console staff so incidents flow
with nobody logged in. It escalates some life-safety alarms, closes the rest after a while, and sends
the first recommended unit to each new incident, all through the public REST API as the demo operator
and dispatcher. A real deployment never runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import typer

from safecity.geo.cli import default_graph_path, import_roads
from safecity.geo.graph import RoadGraph
from safecity.geo.roads import demo_extract_path
from safecity.security import Role, UserExists
from safecity.simulate.panels import PanelAccount, PanelSimulator, demo_accounts, provision
from safecity.simulate.units import DemoUnit, UnitSimulator, demo_units, provision_units

if TYPE_CHECKING:
    import uvicorn

    from safecity.receivers import RunningReceiver
    from safecity.services import Services

log = logging.getLogger(__name__)

# known demo passwords: none contains its username (the password policy refuses that)
DEMO_USERS: tuple[tuple[str, Role, str], ...] = (
    ("admin", Role.ADMIN, "keys-to-the-city"),
    ("supervisor", Role.SUPERVISOR, "shift-lead-demo"),
    ("dispatcher", Role.DISPATCHER, "send-the-nearest"),
    ("operator", Role.OPERATOR, "answer-the-panel"),
    ("auditor", Role.AUDITOR, "read-the-chain"),
)
LIFE_SAFETY = frozenset({"panic", "duress", "holdup", "fire", "medical"})


@dataclass(frozen=True)
class DemoCity:
    graph: RoadGraph
    accounts: Sequence[PanelAccount]
    units: Sequence[DemoUnit]
    users: Sequence[tuple[str, str, str]]  # username, role, password (or a note when it existed)


async def prepare(services: Services, *, accounts: int = 300, units: int = 20, seed: int = 2024) -> DemoCity:
    """Roads, users, alarm accounts and units, each created only if missing; prints the demo logins."""
    path = default_graph_path(services.settings.data_dir)
    if not path.is_file():
        report = await asyncio.to_thread(import_roads, demo_extract_path(), path)
        log.info("demo road graph imported %s", report.summary())
    graph = await services.dispatch.graph_provider()
    centre = graph.bounding_box().centre  # the extract covers central Helsinki, about 1.6 by 1 km
    users: list[tuple[str, str, str]] = []
    for name, role, password in DEMO_USERS:
        try:
            await services.security.add_user(name, password, role, actor="demo")
            users.append((name, role.value, password))
        except UserExists:
            users.append((name, role.value, "(existed before: unchanged)"))
    panels = demo_accounts(accounts, seed=seed, center=centre, radius_m=550.0, link_test_interval_s=300)
    created_accounts = await provision(services, panels)
    fleet = demo_units(units, seed=seed, center=centre, radius_m=450.0)
    created_units = await provision_units(services, fleet)
    fleet_logins = f"{fleet[0].username} … {fleet[-1].username}" if fleet else "-"
    users.append((fleet_logins, Role.FIELD_UNIT.value, "crew-shift-NN-demo (NN: the unit's number)"))
    typer.echo(credentials_table(users))
    typer.echo(f"demo city: {len(panels)} alarm accounts ({created_accounts} new), {len(fleet)} units "
               f"({created_units} new), road graph {graph.node_count} junctions")
    return DemoCity(graph, panels, fleet, users)


def credentials_table(rows: Sequence[tuple[str, str, str]]) -> str:
    width = max(len(r[0]) for r in rows)
    lines = ["demo users (demo only: change or remove them before real use)",
             f"  {'username':<{width}}  {'role':<10}  password"]
    lines += [f"  {name:<{width}}  {role:<10}  {password}" for name, role, password in rows]
    return "\n".join(lines)


async def run(
    services: Services,
    city: DemoCity,
    receivers: Sequence[RunningReceiver],
    server: uvicorn.Server,
    stop: asyncio.Event,
    *,
    alarm_rate: float = 0.5,
    fix_interval_s: float = 3.0,
    on_scene_s: float = 60.0,
    dispatch_every_s: float = 4.0,
    speed_factor: float = 1.0,
    seed: int = 2024,
) -> None:
    """Panels, units and the demo dispatcher against this process's receivers and API, until `stop`."""
    from safecity.receivers.dc09 import Dc09Server
    from safecity.receivers.osmand import OsmandServer

    while not server.started:
        if stop.is_set():
            return
        await asyncio.sleep(0.05)
    api_url = f"http://{_reachable(services.settings.http_host)}:{server.servers[0].sockets[0].getsockname()[1]}"
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per simulated request drowns the log
    dc09 = next(r for r in receivers if isinstance(r, Dc09Server))
    osmand = next(r for r in receivers if isinstance(r, OsmandServer))
    panels = PanelSimulator(_reachable(dc09.host), dc09.port, city.accounts,
                            rate_per_s=alarm_rate, link_test_interval_s=300.0, connections=8, seed=seed,
                            keep_acked=False)
    fleet = UnitSimulator(city.graph, city.units, api_url=api_url,
                          osmand_url=f"http://{_reachable(osmand.host)}:{osmand.port}",
                          fix_interval_s=fix_interval_s, on_scene_s=on_scene_s, speed_factor=speed_factor, seed=seed)
    desk = DemoDispatcher(api_url, every_s=dispatch_every_s, seed=seed)
    log.info("demo simulators started api=%s dc09=%d osmand=%d", api_url, dc09.port, osmand.port)
    tasks: list[asyncio.Task[Any]] = [
        asyncio.create_task(panels.run(stop=stop, drain_s=2.0), name="demo-panels"),
        asyncio.create_task(desk.run(stop), name="demo-dispatcher"),
    ]
    # the desk logs in before the crews: logins are throttled per address and the whole fleet is on one
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(desk.ready.wait(), 10)
    tasks.append(asyncio.create_task(fleet.run(stop), name="demo-units"))
    for result in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(result, BaseException):
            log.error("demo task failed", exc_info=result)
    log.info("demo stopped panels=%s units=%s", panels.stats.summary(), fleet.stats.summary())


_WILDCARDS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 (names of the wildcard address, not a bind)


def _reachable(host: str) -> str:
    """Where this process reaches its own listener: a wildcard bind is reached on loopback."""
    return "127.0.0.1" if host in _WILDCARDS else host


class DemoDispatcher:
    """DEMO BEHAVIOUR: the console staff of an empty control room, acting through the REST API."""

    def __init__(self, api_url: str, *, every_s: float = 4.0, escalate_share: float = 0.8,
                 close_after_s: float = 45.0, seed: int = 2024) -> None:
        self.api_url = api_url
        self.every_s = every_s
        self.escalate_share = escalate_share
        self.close_after_s = close_after_s
        self.escalated = 0
        self.assigned = 0
        self._rng = random.Random(seed)
        self._tokens: dict[str, str] = {}
        self._decided: dict[str, bool] = {}
        self.ready = asyncio.Event()  # set once both demo users are logged in

    async def run(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(base_url=self.api_url, timeout=15) as client:
            with contextlib.suppress(httpx.HTTPError):
                await self._request(client, "operator", "GET", "/api/v1/auth/me")
                await self._request(client, "dispatcher", "GET", "/api/v1/auth/me")
            self.ready.set()
            while not stop.is_set():
                try:
                    await self.round(client)
                except (httpx.HTTPError, KeyError, ValueError) as exc:
                    log.warning("demo dispatcher round failed error=%r", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.every_s)

    async def round(self, client: httpx.AsyncClient) -> None:
        await self._work_alarms(client)
        await self._send_units(client)

    async def _work_alarms(self, client: httpx.AsyncClient) -> None:
        now = datetime.now(UTC)
        for alarm in await self._call(client, "operator", "GET", "/api/v1/alarms"):
            if alarm["status"] != "new":
                continue
            alarm_id = alarm["id"]
            if alarm_id not in self._decided:
                wanted = alarm["category"] in LIFE_SAFETY and self._rng.random() < self.escalate_share
                self._decided[alarm_id] = wanted
            age = (now - datetime.fromisoformat(alarm["received_at"])).total_seconds()
            if self._decided[alarm_id] and not alarm["incident_requested"]:
                await self._call(client, "operator", "POST", f"/api/v1/alarms/{alarm_id}/claim")
                await self._call(client, "operator", "POST", f"/api/v1/alarms/{alarm_id}/escalate",
                                 json={"note": "demo: escalated automatically"})
                await self._call(client, "operator", "POST", f"/api/v1/alarms/{alarm_id}/close",
                                 json={"resolution": "dispatched", "note": "demo"})
                self.escalated += 1
            elif age > self.close_after_s:
                await self._call(client, "operator", "POST", f"/api/v1/alarms/{alarm_id}/claim")
                resolution = "test" if alarm["category"] == "test" else "false_alarm"
                await self._call(client, "operator", "POST", f"/api/v1/alarms/{alarm_id}/close",
                                 json={"resolution": resolution, "note": "demo: closed automatically"})
            if age > self.close_after_s:
                self._decided.pop(alarm_id, None)

    async def _send_units(self, client: httpx.AsyncClient) -> None:
        for incident in await self._call(client, "dispatcher", "GET", "/api/v1/incidents"):
            if incident["status"] != "new":
                continue
            path = f"/api/v1/incidents/{incident['id']}"
            found = await self._call(client, "dispatcher", "GET", f"{path}/recommendations?k=1&routes=false")
            if not found:
                continue
            answer = await self._request(client, "dispatcher", "POST", f"{path}/assignments",
                                         json={"unit_id": found[0]["unit_id"], "eta_s": found[0]["eta_s"]})
            if answer.status_code == 201:
                self.assigned += 1

    async def _call(self, client: httpx.AsyncClient, user: str, method: str, path: str, json: Any = None) -> Any:
        answer = await self._request(client, user, method, path, json=json)
        if answer.status_code == 409:  # somebody (a real operator) was faster: fine
            return None
        answer.raise_for_status()
        return answer.json()

    async def _request(
        self, client: httpx.AsyncClient, user: str, method: str, path: str, json: Any = None
    ) -> httpx.Response:
        for attempt in (1, 2):
            if user not in self._tokens:
                password = next(p for name, _, p in DEMO_USERS if name == user)
                login = await client.post("/api/v1/auth/token", data={"username": user, "password": password})
                login.raise_for_status()
                self._tokens[user] = login.json()["access_token"]
            answer = await client.request(method, path, json=json,
                                          headers={"Authorization": f"Bearer {self._tokens[user]}"})
            if answer.status_code == 401 and attempt == 1:
                del self._tokens[user]
                continue
            return answer
        raise AssertionError("unreachable")
