"""Retention happens because the system does it: old events, alarm history and audit records go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from safecity.config import Settings
from safecity.events import Event
from safecity.services import open_services


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_retention_job_deletes_what_policy_says_and_audits_it(tmp_path: Path) -> None:
    clock = Clock()
    settings = Settings(data_dir=tmp_path / "data", event_retention_days=30, audit_retention_days=365,
                        alarm_retention_days=90, jwt_secret="k" * 40)
    async with open_services(settings, clock=clock) as services:
        old = clock.now
        await services.events.append([
            Event(kind="system.tested", source="t", occurred_at=old, received_at=old, payload={"n": i})
            for i in range(5)
        ])
        await services.audit.append("olga", "operator", "alarm.read", "alarm:1")
        clock.now = old + timedelta(days=31)
        await services.events.append([Event(kind="system.tested", source="t", occurred_at=clock.now,
                                            received_at=clock.now, payload={"n": 99})])

        deleted = await services.retention.run_once()
        assert deleted["events"] == 5
        assert deleted["audit"] == 0
        remaining = await services.events.recent("system.tested")
        assert [s.event.payload["n"] for s in remaining] == [99]

        clock.now = old + timedelta(days=400)
        deleted = await services.retention.run_once()
        assert deleted["audit"] >= 1
        report = await services.audit.verify()
        assert report.ok, report.problems
        records = await services.audit.list(limit=1000)
        assert any(r.action == "retention.enforced" for r in records)
