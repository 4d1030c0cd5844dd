"""An auditor verifying while operators work must never see a false 'chain broken'."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from safecity.security.audit import AuditLog
from safecity.store.engine import Database


async def test_verify_during_appends_reports_no_false_break(db: Database) -> None:
    audit = AuditLog(db, lambda: datetime.now(UTC))
    done = asyncio.Event()

    async def operators() -> None:
        for n in range(80):
            await audit.append(f"operator{n % 3}", "operator", "alarm.read", f"alarm:{n}")
        done.set()

    async def auditor() -> list[bool]:
        results = []
        while not done.is_set():
            results.append((await audit.verify()).ok)
        return results

    _, results = await asyncio.gather(operators(), auditor())
    assert results
    assert all(results)
    assert (await audit.verify()).checked == 80
