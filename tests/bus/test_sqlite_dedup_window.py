"""The embedded log forgets dedup keys after its window, as JetStream's duplicate window does."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from safecity.bus.sqlite import SqliteEventLog
from safecity.events import Event


async def test_a_key_seen_long_ago_is_a_new_event_and_then_deduplicated_again(tmp_path: Path) -> None:
    wall = [1_800_000_000.0]
    log = SqliteEventLog(tmp_path / "events.db", dedup_window_s=3600, wall_clock=lambda: wall[0])
    await log.start()
    try:
        now = datetime.now(UTC)
        old = Event(kind="alarm.tested", source="t", occurred_at=now, dedup_key="1234/0007/same-content")
        [first] = await log.append([old])
        wall[0] += 5 * 3600  # the panel's sequence wrapped: the same key comes back hours later
        again = Event(kind="alarm.tested", source="t", occurred_at=now, dedup_key="1234/0007/same-content")
        [second] = await log.append([again])
        [third] = await log.append([again.model_copy(update={"id": "another-id"})])
        assert not first.duplicate
        assert not second.duplicate, "outside the window the same key is a new event (a wrapped sequence)"
        assert third.duplicate
        assert third.offset == second.offset
    finally:
        await log.close()
