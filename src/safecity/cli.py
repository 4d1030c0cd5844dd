"""`safecity` command line (typer). Settings are built here, once, and passed down."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
import uvicorn
from pydantic import ValidationError

from safecity.config import Settings
from safecity.logs import configure_logging
from safecity.simulate.cli import simulate_app
from safecity.web.cli import web_app

app = typer.Typer(no_args_is_help=True, add_completion=False, help="safecity public-safety platform")
db_app = typer.Typer(no_args_is_help=True, help="database schema")
user_app = typer.Typer(no_args_is_help=True, help="platform users")
audit_app = typer.Typer(no_args_is_help=True, help="the audit chain")
config_app = typer.Typer(no_args_is_help=True, help="settings")
import_app = typer.Typer(no_args_is_help=True, help="import city data")
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(audit_app, name="audit")
app.add_typer(config_app, name="config")
app.add_typer(import_app, name="import")
app.add_typer(simulate_app, name="simulate")
app.add_typer(web_app, name="web")

if TYPE_CHECKING:
    from safecity.services import Services

log = logging.getLogger("safecity")
ConfigOption = Annotated[Path | None, typer.Option("--config", help="TOML settings file", exists=True)]


def build_settings(config: Path | None) -> Settings:
    """Settings from the environment and the TOML file; a bad value is reported, not a traceback."""
    try:
        settings = Settings(config_file=config) if config else Settings()
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "settings"
            typer.echo(f"error: setting {field} (SAFECITY_{field.upper()}): {error['msg']}", err=True)
        raise typer.Exit(2) from None
    except (OSError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_level, json=settings.log_json)
    return settings


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: `serve` owns SIGTERM/SIGINT for all roles."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _serve(settings: Settings, role: str, demo: bool = False) -> None:
    from safecity.receivers import RunningReceiver, discover
    from safecity.services import open_services

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async with open_services(settings) as services:
        if demo:  # the demo city (`make run`): roads, demo users, accounts, units; simulators below
            from safecity.simulate import demo as demo_city

            city = await demo_city.prepare(services)
        if role in ("all", "api"):
            await _first_administrator(services)
        receivers: list[RunningReceiver] = []
        workers: list[asyncio.Task[None]] = []
        server: _Server | None = None
        server_task: asyncio.Task[None] | None = None
        try:
            if role in ("all", "workers"):
                workers.append(asyncio.create_task(services.alarms.run_worker(stop), name="alarm-worker"))
                workers.append(asyncio.create_task(services.dispatch.run_worker(stop), name="dispatch-worker"))
                workers.append(asyncio.create_task(services.retention.run(stop), name="retention"))
                log.info("workers started names=alarm-queue,dispatch,retention")
            if role in ("all", "receivers"):
                for spec in discover():
                    receivers.append(await spec.start(services))
                    log.info("receiver started name=%s transports=%s", spec.name, ",".join(spec.transports))
            if role in ("all", "api"):
                from safecity.api.app import create_app
                from safecity.web.cli import prepare_basemap

                await asyncio.to_thread(prepare_basemap, settings.data_dir)

                config = uvicorn.Config(
                    create_app(services),
                    host=settings.http_host,
                    port=settings.http_port,
                    log_config=None,
                    access_log=False,
                    lifespan="on",
                    ws_max_size=1 << 20,
                )
                server = _Server(config)
                server_task = asyncio.create_task(server.serve())
                log.info("api listening url=http://%s:%d", settings.http_host, settings.http_port)
            if demo and server is not None:
                workers.append(asyncio.create_task(demo_city.run(services, city, receivers, server, stop), name="demo"))
            stop_task = asyncio.create_task(stop.wait())
            waiting: set[asyncio.Task[None] | asyncio.Task[bool]] = {stop_task}
            if server_task is not None:
                waiting.add(server_task)
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            stop_task.cancel()
            log.info("shutting down")
        finally:
            if server is not None and server_task is not None:
                server.should_exit = True
                with contextlib.suppress(Exception):
                    await server_task
            for receiver in receivers:
                await receiver.stop()
            stop.set()
            for worker in workers:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(worker, 10)


async def _first_administrator(services: Services) -> None:
    """On a platform with no users, create `admin` with a random password, shown once and kept 0600."""
    if await services.security.list_users():
        return
    from safecity.security import Role

    password = secrets.token_urlsafe(18)
    await services.security.add_user("admin", password, Role.ADMIN, actor="system")
    path = services.settings.data_dir / "initial-admin-password"
    path.touch(mode=0o600)
    path.write_text(password + "\n")
    typer.echo(f"first start: created user 'admin' with password {password} (also in {path}); change it")


@app.command()
def serve(
    config: ConfigOption = None,
    role: Annotated[str, typer.Option(help="all | receivers | workers | api")] = "all",
    demo: Annotated[bool, typer.Option("--demo", help="the demo city: Helsinki roads, demo users, simulators")]
    = False,
) -> None:
    """Run the platform in the foreground until SIGTERM."""
    if role not in ("all", "receivers", "workers", "api"):
        raise typer.BadParameter("role must be all, receivers, workers or api")
    if demo and role != "all":
        raise typer.BadParameter("--demo runs every role in one process: leave --role at all")
    settings = build_settings(config)
    asyncio.run(_serve(settings, role, demo))


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None, revision: str = "head") -> None:
    """Apply the schema migrations."""
    from safecity.store.engine import create_database
    from safecity.store.migrate import upgrade

    settings = build_settings(config)
    settings.ensure_data_dir()

    async def run() -> None:
        db = create_database(settings.effective_database_url)
        try:
            await upgrade(db, revision)
        finally:
            await db.close()

    asyncio.run(run())
    typer.echo(f"database at {revision}")


@user_app.command("add")
def user_add(
    name: str,
    role: Annotated[str, typer.Option(help="operator|dispatcher|supervisor|admin|field_unit|auditor")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password from stdin")] = False,
    unit: Annotated[str | None, typer.Option(help="unit id, for field_unit users")] = None,
    config: ConfigOption = None,
) -> None:
    """Create a user (the password comes from stdin, never from the command line)."""
    from safecity.security import Role, SecurityError
    from safecity.services import open_services

    try:
        role_value = Role(role)
    except ValueError as exc:
        raise typer.BadParameter(f"unknown role {role!r}") from exc
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    settings = build_settings(config)

    async def run() -> None:
        async with open_services(settings) as services:
            await services.security.add_user(name, password, role_value, unit_id=unit, actor="cli")

    try:
        asyncio.run(run())
    except SecurityError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"user {name} added with role {role_value.value}")


@audit_app.command("verify")
def audit_verify(config: ConfigOption = None) -> None:
    """Check the audit chain; exit 1 and name each bad record if it was edited, deleted or reordered."""
    from safecity.security.audit import AuditLog
    from safecity.services import utcnow
    from safecity.store.engine import create_database

    settings = build_settings(config)

    async def run() -> bool:
        db = create_database(settings.effective_database_url)
        try:
            report = await AuditLog(db, utcnow).verify()
        finally:
            await db.close()
        for problem in report.problems:
            typer.echo(f"record {problem.seq}: {problem.kind}: {problem.message}")
        typer.echo(f"{'ok' if report.ok else 'FAILED'}: {report.checked} records checked")
        return report.ok

    if not asyncio.run(run()):
        raise typer.Exit(1)


@config_app.command("show")
def config_show(config: ConfigOption = None) -> None:
    """Print the effective settings, secrets masked."""
    settings = build_settings(config)
    typer.echo(json.dumps(settings.masked(), indent=2, default=str))


@import_app.command("roads")
def import_roads(
    extract: Annotated[Path, typer.Argument(help="OpenStreetMap extract (.osm.pbf)", exists=True, dir_okay=False)],
    config: ConfigOption = None,
) -> None:
    """Build the driving graph from an OSM extract into the data dir; dispatch routes on it."""
    from safecity.geo.cli import default_graph_path
    from safecity.geo.cli import import_roads as build
    from safecity.geo.errors import GeoError

    settings = build_settings(config)
    settings.ensure_data_dir()
    try:
        report = build(extract, default_graph_path(settings.data_dir))
    except (GeoError, RuntimeError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(report.summary())


def main() -> None:
    app()
