"""The shared consume loop survives failures: nothing acked that was not applied, no worker death."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from safecity.bus import Delivery
from safecity.bus.sqlite import SqliteEventLog
from safecity.bus.worker import consume
from safecity.events import Event


async def test_a_poison_event_is_skipped_after_its_attempts_and_the_rest_applied(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "events.db")
    await log.start()
    try:
        now = datetime.now(UTC)
        await log.append([Event(kind="system.tested", source="t", occurred_at=now, payload={"n": n})
                          for n in range(5)])
        applied: list[int] = []
        attempts: dict[int, int] = {}
        stop = asyncio.Event()

        async def handle(deliveries: Sequence[Delivery]) -> None:
            for delivery in deliveries:
                n = delivery.event.payload["n"]
                attempts[n] = delivery.attempt
                if n == 2:
                    raise ValueError("poison")
            applied.extend(d.event.payload["n"] for d in deliveries)

        consumer = await log.consumer("w", "system", ack_wait=0.05)
        worker = asyncio.create_task(consume(consumer, handle, stop, max_attempts=3))
        deadline = asyncio.get_running_loop().time() + 10
        while not (len(set(applied)) == 4 and attempts.get(2, 0) >= 3):
            assert asyncio.get_running_loop().time() < deadline, (applied, attempts)
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(worker, 5)
        reopened = await log.consumer("w2", "system")
        assert len(await reopened.fetch(10, timeout=0.1)) == 5, "skipped events stay in the log for replay"
        assert sorted(set(applied)) == [0, 1, 3, 4]
        assert attempts[2] >= 3
    finally:
        await log.close()


async def test_a_log_that_cannot_be_read_is_retried_not_fatal(tmp_path: Path) -> None:
    class Flaky:
        name = "flaky"
        family = "system"
        calls = 0

        async def fetch(self, max_events: int = 100, timeout: float = 1.0) -> list[Delivery]:
            Flaky.calls += 1
            if Flaky.calls < 3:
                raise ConnectionError("log down")
            stop.set()
            return []

        async def ack(self, delivery: Delivery) -> None: ...

        async def nak(self, delivery: Delivery) -> None: ...

        async def close(self) -> None: ...

    stop = asyncio.Event()

    async def handle(deliveries: Sequence[Delivery]) -> None: ...

    await asyncio.wait_for(consume(Flaky(), handle, stop, max_backoff_s=0.2), 10)
    assert Flaky.calls == 3
