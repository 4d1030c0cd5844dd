"""A real uvicorn server on a free loopback port, in the test's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from safecity.api.app import create_app
from safecity.cli import _Server
from safecity.config import Settings
from safecity.security import PasswordHasher, Role
from safecity.services import Services, open_services

PASSWORD = "correct horse battery staple"


@dataclass
class RunningApi:
    url: str
    services: Services
    client: httpx.AsyncClient
    tokens: dict[Role, str]

    def auth(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def api_settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", http_port=0, jwt_secret="test-" + "k" * 40, **overrides)


@contextlib.asynccontextmanager
async def running_api(settings: Settings, *, with_workers: bool = False) -> AsyncIterator[RunningApi]:
    # the cheap argon2 profile: the real one is tested in tests/security, here it only costs time
    async with (
        open_services(settings, password_hasher=PasswordHasher.cheap()) as services,
        _workers(services, with_workers),
    ):
        server = _Server(uvicorn.Config(create_app(services), host="127.0.0.1", port=0, log_config=None,
                                        lifespan="on"))
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                tokens: dict[Role, str] = {}
                for role in Role:
                    name = f"user_{role.value}"
                    await services.security.add_user(
                        name, PASSWORD, role, unit_id="U1" if role == Role.FIELD_UNIT else None, actor="test"
                    )
                    answer = await client.post(
                        "/api/v1/auth/token", data={"username": name, "password": PASSWORD}
                    )
                    answer.raise_for_status()
                    tokens[role] = answer.json()["access_token"]
                yield RunningApi(url, services, client, tokens)
        finally:
            server.should_exit = True
            await task


@contextlib.asynccontextmanager
async def _workers(services: Services, enabled: bool) -> AsyncIterator[None]:
    """The DC-09 receiver and the alarm worker, as `safecity serve` runs them."""
    if not enabled:
        yield
        return
    from safecity.receivers.dc09 import start_receiver

    stop = asyncio.Event()
    receiver = await start_receiver(services)
    workers = [
        asyncio.create_task(services.alarms.run_worker(stop)),
        asyncio.create_task(services.dispatch.run_worker(stop)),
    ]
    try:
        yield
    finally:
        stop.set()
        await receiver.stop()
        await asyncio.wait_for(asyncio.gather(*workers), 10)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[RunningApi]:
    async with running_api(api_settings(tmp_path)) as running:
        yield running
