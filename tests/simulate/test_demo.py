"""`safecity serve --demo` in-process on a temp data dir: the demo city comes up, moves, alarms, and stops cleanly."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from safecity.alarms.model import AlarmRow
from safecity.cli import _serve
from safecity.config import Settings
from safecity.security import PasswordHasher
from safecity.services import open_services
from safecity.simulate import demo as demo_city


async def test_demo_city_runs_and_stops_on_sigterm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(data_dir=tmp_path / "data", http_port=0, dc09_port=0, osmand_port=0,
                        jwt_secret="test-" + "k" * 40)
    # a busier city than `make run`, so that a few seconds show everything
    monkeypatch.setattr(demo_city, "run", functools.partial(demo_city.run, alarm_rate=4.0, fix_interval_s=0.5,
                                                            dispatch_every_s=1.0))
    serving = asyncio.create_task(_serve(settings, "all", demo=True))
    async with open_services(settings, migrate=False, password_hasher=PasswordHasher.cheap()) as services:
        async def seen() -> tuple[int, int]:
            fixes = [s.event for s in await services.events.read("unit", limit=100_000)
                     if s.event.kind == "unit.position_reported" and s.event.payload["transport"] == "osmand"]
            async with services.db.session() as session:
                alarms = int(await session.scalar(select(func.count()).select_from(AlarmRow)) or 0)
            return len({(f.payload["unit_id"], f.payload["lat"], f.payload["lon"]) for f in fixes}), alarms

        async with asyncio.timeout(25):
            while True:
                await asyncio.sleep(0.5)
                assert not serving.done(), serving
                if (settings.data_dir / "roads.graph.npz").is_file():
                    moved, alarms = await seen()
                    if moved >= 20 and alarms >= 1:
                        break
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(serving, 15)  # clean: returns, no exception

        users = {u.username: u.role for u in await services.security.list_users()}
        assert {name: role.value for name, role, _ in demo_city.DEMO_USERS}.items() <= {
            k: str(v) for k, v in users.items()}.items()
        assert sum(1 for name in users if name.startswith("rrg-")) == 20
        assert len(await services.alarms.account_keys()) == 300
        assert len(await services.dispatch.units.list_units(on_shift=True)) == 20
    printed = capsys.readouterr().out
    assert "dispatcher" in printed and "send-the-nearest" in printed and "initial-admin-password" not in printed
