"""Where the units are: live positions in memory, the position history, staleness, retention.

Fixes arrive as `unit.position_reported` on the log (from the tablet endpoint, OsmAnd, MQTT, the
simulator). The worker applies them in batches: one history row per fix (the event id is the key,
so a redelivered fix is not stored twice), the unit's last position when the fix is newer, and
the in-memory view that recommendation reads without a query per request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update

from safecity.bus import Delivery, EventLog
from safecity.dispatch.events import PositionReported, PositionStale
from safecity.dispatch.model import UnitPositionRow, UnitRow
from safecity.dispatch.recommend import is_stale
from safecity.events import Event, EventError, Location
from safecity.store.engine import Database

log = logging.getLogger(__name__)

POSITION_HISTORY_RETENTION = timedelta(days=90)
"""How long the track of a crew is kept: long enough for incident review, short enough for privacy."""


@dataclass(frozen=True, slots=True)
class LiveFix:
    unit_id: str
    lat: float
    lon: float
    recorded_at: datetime
    received_at: datetime
    speed_mps: float | None = None
    heading_deg: float | None = None
    accuracy_m: float | None = None


class LivePositions:
    """The newest fix of every unit this process has seen, by unit id.

    Fixes may arrive out of order (a tablet flushing its buffer after a tunnel): an older fix never
    replaces a newer one.
    """

    def __init__(self) -> None:
        self._fixes: dict[str, LiveFix] = {}

    def update(self, fix: LiveFix) -> bool:
        current = self._fixes.get(fix.unit_id)
        if current is not None and current.recorded_at >= fix.recorded_at:
            return False
        self._fixes[fix.unit_id] = fix
        return True

    def get(self, unit_id: str) -> LiveFix | None:
        return self._fixes.get(unit_id)

    def newest(self, unit_id: str, lat: float | None, lon: float | None, at: datetime | None) -> LiveFix | None:
        """The newer of what this process saw and what the store says (another process may have seen more)."""
        mine = self._fixes.get(unit_id)
        if lat is None or lon is None or at is None:
            return mine
        if mine is not None and mine.recorded_at >= at:
            return mine
        return LiveFix(unit_id, lat, lon, at, at)


class Tracking:
    def __init__(
        self,
        db: Database,
        events: EventLog,
        clock: Callable[[], datetime],
        *,
        stale_after: timedelta = timedelta(seconds=120),
    ) -> None:
        self.db = db
        self.events = events
        self.clock = clock
        self.stale_after = stale_after
        self.live = LivePositions()

    async def report(self, fix: PositionReported) -> None:
        """Put a fix on the log; the worker stores it. The caller has checked who may report for the unit."""
        await self.events.append([Event.of(
            fix, source=f"unit:{fix.unit_id}", occurred_at=fix.recorded_at,
            location=Location(lat=fix.lat, lon=fix.lon, accuracy_m=fix.accuracy_m),
            dedup_key=f"position:{fix.unit_id}:{fix.recorded_at.isoformat()}",
        )])

    async def ingest(self, deliveries: Sequence[Delivery]) -> int:
        """Apply one batch of fixes in one transaction; returns how many were new."""
        fixes: list[tuple[str, LiveFix, str]] = []
        for delivery in deliveries:
            if delivery.event.kind != PositionReported.KIND:
                continue
            try:
                payload = delivery.event.typed()
            except EventError as exc:
                log.warning("unreadable fix event=%s error=%s", delivery.event.id, exc)
                continue
            assert isinstance(payload, PositionReported)
            recorded_at = payload.recorded_at
            if recorded_at.tzinfo is None:  # a device without a zone: fixes are UTC by convention
                recorded_at = recorded_at.replace(tzinfo=UTC)
            fixes.append((delivery.event.id, LiveFix(
                payload.unit_id, payload.lat, payload.lon, recorded_at, delivery.event.received_at,
                payload.speed_mps, payload.heading_deg, payload.accuracy_m,
            ), payload.transport))
        if not fixes:
            return 0
        async with self.db.session() as session:
            unit_ids = {fix.unit_id for _, fix, _ in fixes}
            last = dict((await session.execute(
                select(UnitRow.id, UnitRow.last_position_at).where(UnitRow.id.in_(unit_ids)))).all())
            seen = set(await session.scalars(select(UnitPositionRow.event_id).where(
                UnitPositionRow.event_id.in_([event_id for event_id, _, _ in fixes]))))
            fresh: list[LiveFix] = []
            newest: dict[str, LiveFix] = {}
            for event_id, fix, transport in fixes:
                if fix.unit_id not in last:
                    log.warning("position for unknown unit=%s", fix.unit_id)
                    continue
                if event_id in seen:
                    continue  # a redelivery: stored already
                seen.add(event_id)
                session.add(UnitPositionRow(
                    event_id=event_id, unit_id=fix.unit_id, lat=fix.lat, lon=fix.lon, speed_mps=fix.speed_mps,
                    heading_deg=fix.heading_deg, accuracy_m=fix.accuracy_m, transport=transport[:16],
                    recorded_at=fix.recorded_at, received_at=fix.received_at,
                ))
                fresh.append(fix)
                known = newest.get(fix.unit_id)
                if known is None or fix.recorded_at > known.recorded_at:
                    newest[fix.unit_id] = fix
            for unit_id, fix in newest.items():
                previous = last[unit_id]
                if previous is None or fix.recorded_at > previous:
                    await session.execute(
                        update(UnitRow).where(UnitRow.id == unit_id)
                        .where((UnitRow.last_position_at.is_(None)) | (UnitRow.last_position_at < fix.recorded_at))
                        .values(last_lat=fix.lat, last_lon=fix.lon, last_position_at=fix.recorded_at)
                        .execution_options(synchronize_session=False)
                    )
        for fix in fresh:
            self.live.update(fix)
        return len(fresh)

    async def check_stale(self) -> list[str]:
        """Units on shift whose last fix is older than `stale_after`: one `unit.position_stale` per silence.

        The dedup key names the last fix, so each silence is reported once, by whichever worker sees it first.
        """
        now = self.clock()
        async with self.db.session() as session:
            rows = (await session.execute(
                select(UnitRow.id, UnitRow.last_position_at)
                .where(UnitRow.on_shift.is_(True), UnitRow.last_position_at.is_not(None))
            )).all()
        stale = [(unit_id, at) for unit_id, at in rows if at is not None and is_stale(at, now, self.stale_after)]
        if stale:
            await self.events.append([
                Event.of(PositionStale(unit_id=unit_id, last_fix_at=at, max_age_s=self.stale_after.total_seconds()),
                         source="dispatch-tracking", occurred_at=at + self.stale_after,
                         dedup_key=f"position-stale:{unit_id}:{at.isoformat()}")
                for unit_id, at in stale
            ])
        return [unit_id for unit_id, _ in stale]

    async def track(self, unit_id: str, since: datetime, until: datetime, limit: int = 10_000) -> list[UnitPositionRow]:
        async with self.db.session() as session:
            rows = await session.scalars(
                select(UnitPositionRow)
                .where(UnitPositionRow.unit_id == unit_id, UnitPositionRow.recorded_at >= since,
                       UnitPositionRow.recorded_at < until)
                .order_by(UnitPositionRow.recorded_at).limit(limit)
            )
            return list(rows)

    async def prune_positions(self, before: datetime) -> int:
        """Retention: position history received before `before` goes (the units' last positions stay)."""
        async with self.db.session() as session:
            result = await session.execute(delete(UnitPositionRow).where(UnitPositionRow.received_at < before))
        return int(result.rowcount)  # type: ignore[attr-defined]

