"""Retention enforced by the system: a job deletes what the policy says must go, and says so.

Each kind of data registers a pruner (`name`, a cut-off age, a coroutine deleting what is older);
every run writes one audit record with what was deleted, so an auditor sees retention happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from safecity.security.audit import AuditLog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pruner:
    name: str
    keep: timedelta
    prune: Callable[[datetime], Awaitable[int]]  # deletes everything older than the cut-off


class RetentionJob:
    def __init__(self, pruners: Sequence[Pruner], audit: AuditLog, clock: Callable[[], datetime]) -> None:
        self.pruners = list(pruners)
        self.audit = audit
        self.clock = clock

    async def run_once(self) -> dict[str, int]:
        now = self.clock()
        deleted: dict[str, int] = {}
        for pruner in self.pruners:
            cutoff = now - pruner.keep
            try:
                deleted[pruner.name] = await pruner.prune(cutoff)
            except Exception:
                log.exception("retention failed name=%s", pruner.name)
                deleted[pruner.name] = -1
        if any(count != 0 for count in deleted.values()):
            await self.audit.append(
                "system", None, "retention.enforced", "retention",
                outcome="ok" if all(c >= 0 for c in deleted.values()) else "error",
                detail={"deleted": deleted, "keep_days": {p.name: p.keep.days for p in self.pruners}},
            )
        log.info("retention run %s", " ".join(f"{k}={v}" for k, v in deleted.items()))
        return deleted

    async def run(self, stop: asyncio.Event, every_s: float = 3600.0) -> None:
        while not stop.is_set():
            await self.run_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)
