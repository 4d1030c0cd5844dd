"""`safecity simulate …`: simulated devices against a running platform.

The main `cli.py` mounts `simulate_app`; settings come from the environment or `--config`, as for
`safecity serve`, so the panels find the receiver (and, with `--provision`, the database) it uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
from pathlib import Path
from typing import Annotated

import typer

from safecity.config import Settings
from safecity.logs import configure_logging
from safecity.simulate.panels import PanelSimulator, demo_accounts, provision

simulate_app = typer.Typer(no_args_is_help=True, help="simulated devices: alarm panels, units")
SUMMARY_EVERY_S = 10.0


@simulate_app.callback()
def _group() -> None:
    """Simulated devices that speak the real protocols to a running platform."""


@simulate_app.command()
def panels(
    accounts: Annotated[int, typer.Option("--accounts", min=1, help="how many panels")] = 100,
    rate: Annotated[float, typer.Option("--rate", min=0.0, help="random alarms per second, all panels")] = 1.0,
    host: Annotated[str | None, typer.Option(help="receiver address; default: settings dc09_host")] = None,
    port: Annotated[int | None, typer.Option(help="receiver port; default: settings dc09_port")] = None,
    link_test_interval: Annotated[
        float, typer.Option("--link-test-interval", min=0.0, help="seconds between link tests (0: none)")
    ] = 90.0,
    encrypted_share: Annotated[
        float, typer.Option("--encrypted-share", min=0.0, max=1.0, help="share of panels with an AES key")
    ] = 0.5,
    connections: Annotated[
        int | None, typer.Option(min=1, help="TCP connections the panels share; default min(accounts, 200)")
    ] = None,
    duration: Annotated[float, typer.Option(min=0.0, help="seconds to run; 0: until Ctrl-C or SIGTERM")] = 0.0,
    do_provision: Annotated[
        bool, typer.Option("--provision/--no-provision", help="create the accounts in the platform database first")
    ] = True,
    seed: Annotated[int, typer.Option(help="seed of the accounts (the same seed gives the same panels)")] = 2024,
    config: Annotated[Path | None, typer.Option("--config", help="TOML settings file", exists=True)] = None,
) -> None:
    """Run DC-09 alarm panels against the receiver; print a summary every 10 s and at the end."""
    settings = Settings(config_file=config) if config else Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    fleet = demo_accounts(accounts, seed=seed, encrypted_share=encrypted_share,
                          link_test_interval_s=math.ceil(link_test_interval))  # 0: not supervised

    async def run() -> None:
        if do_provision:
            from safecity.services import open_services

            async with open_services(settings) as services:
                created = await provision(services, fleet)
            typer.echo(f"provisioned {created} new accounts of {len(fleet)}")
        simulator = PanelSimulator(
            host or settings.dc09_host, settings.dc09_port if port is None else port, fleet,
            rate_per_s=rate, link_test_interval_s=link_test_interval, connections=connections, seed=seed,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
                loop.add_signal_handler(sig, stop.set)
        reporter = asyncio.create_task(_report(simulator, stop))
        try:
            if duration > 0:
                await simulator.run(duration, stop=stop)
            else:
                await simulator.run(stop=stop)
        finally:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
        typer.echo(f"done: {simulator.stats.summary()}")

    asyncio.run(run())


async def _report(simulator: PanelSimulator, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SUMMARY_EVERY_S)
        if not stop.is_set():
            typer.echo(simulator.stats.summary())


@simulate_app.command()
def units(
    count: Annotated[int, typer.Option("--count", min=1, help="how many rapid-response units")] = 20,
    api: Annotated[str, typer.Option("--api", help="platform API base URL")] = "http://127.0.0.1:8080",
    osmand: Annotated[str, typer.Option("--osmand", help="OsmAnd/Traccar receiver URL")] = "http://127.0.0.1:5055",
    username: Annotated[str | None, typer.Option(help="a dispatcher's username: checks the fleet is registered")]
    = None,
    password: Annotated[str | None, typer.Option(help="that dispatcher's password")] = None,
    fix_interval: Annotated[float, typer.Option("--fix-interval", min=0.1, help="seconds between fixes")] = 3.0,
    on_scene: Annotated[float, typer.Option("--on-scene", min=0.0, help="seconds a crew stays on scene")] = 60.0,
    duration: Annotated[float, typer.Option(min=0.0, help="seconds to run; 0: until Ctrl-C or SIGTERM")] = 0.0,
    do_provision: Annotated[
        bool, typer.Option("--provision/--no-provision", help="create the units and crew users in the database first")
    ] = True,
    seed: Annotated[int, typer.Option(help="seed of the fleet (the same seed gives the same units)")] = 2024,
    config: Annotated[Path | None, typer.Option("--config", help="TOML settings file", exists=True)] = None,
) -> None:
    """Drive units on the road graph (fixes over OsmAnd HTTP); crews answer their jobs through the API."""
    from safecity.geo.cli import default_graph_path
    from safecity.geo.graph import RoadGraph
    from safecity.geo.roads import build_road_graph, demo_extract_path
    from safecity.simulate.units import UnitSimulator, demo_units, provision_units

    settings = Settings(config_file=config) if config else Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    fleet = demo_units(count, seed=seed)
    path = default_graph_path(settings.data_dir)
    graph = RoadGraph.load(path) if path.is_file() else build_road_graph(demo_extract_path())

    async def run() -> None:
        if do_provision:
            from safecity.services import open_services

            async with open_services(settings) as services:
                created = await provision_units(services, fleet)
            typer.echo(f"provisioned {created} new units of {len(fleet)} (crew logins: rrg-NN / crew-shift-NN-demo)")
        if username and password:
            await _check_fleet(api, username, password, [u.id for u in fleet])
        simulator = UnitSimulator(graph, fleet, api_url=api, osmand_url=osmand, fix_interval_s=fix_interval,
                                  on_scene_s=on_scene, seed=seed)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
        await simulator.run(stop, duration if duration > 0 else None)
        typer.echo(f"done: {simulator.stats.summary()}")

    asyncio.run(run())


async def _check_fleet(api: str, username: str, password: str, wanted: list[str]) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=api, timeout=15) as client:
        answer = await client.post("/api/v1/auth/token", data={"username": username, "password": password})
        answer.raise_for_status()
        token = answer.json()["access_token"]
        known = {u["id"] for u in (await client.get("/api/v1/units", headers={"Authorization": f"Bearer {token}"}
                                                    )).json()}
    missing = sorted(set(wanted) - known)
    if missing:
        typer.echo(f"warning: units not registered on the platform: {', '.join(missing)}", err=True)
