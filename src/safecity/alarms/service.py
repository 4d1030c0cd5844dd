"""The alarm centre's service: accounts, the worker that turns signals into queue items, the queue.

Signals reach the log first (the receiver ACKs only after that); this worker consumes them in
batches, one transaction per batch, idempotently (a redelivered signal is recognised by its event
id), and publishes `alarm.changed` for live views. Operators' commands go through the same rules
in `logic.py`, with an optimistic version check so two operators never work one alarm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from safecity.alarms import logic
from safecity.alarms.events import (
    AccountChanged,
    AlarmChanged,
    CommunicationFailed,
    CommunicationRestored,
    IncidentRequested,
    LinkTestReceived,
    SignalReceived,
)
from safecity.alarms.logic import AlarmStatus, Episode, Resolution, Signal, SignalDecision
from safecity.alarms.model import AlarmAccountRow, AlarmActionRow, AlarmRow, AlarmSignalRow
from safecity.alarms.taxonomy import AlarmCategory, Priority
from safecity.bus import Delivery, EventLog
from safecity.bus.worker import consume
from safecity.events import Event, Location, new_event_id
from safecity.security.audit import AuditLog
from safecity.store.engine import Database

log = logging.getLogger(__name__)

ACCOUNT_KINDS = ("apartment", "facility", "building_panic_button", "fire_panel")


class UnknownAlarm(logic.AlarmError):
    pass


class UnknownAccount(logic.AlarmError):
    pass


class AccountExists(logic.AlarmError):
    pass


class ConcurrentChange(logic.AlarmStateError):
    """Somebody else changed the alarm between our read and our write."""


@dataclass(frozen=True, slots=True)
class AccountKey:
    """What a receiver needs to know of an account, kept in memory there."""

    number: str
    key: bytes | None
    clock_offset_s: int
    supervised: bool


def episode_from_row(row: AlarmRow) -> Episode:
    return Episode(
        id=row.id,
        account=row.account,
        priority=Priority(row.priority),
        status=AlarmStatus(row.status),
        opened_at=row.opened_at,
        last_signal_at=row.last_signal_at,
        first_code=row.code,
        first_zone=row.zone,
        category=row.category,
        signal_count=row.signal_count,
        claimed_by=row.claimed_by,
        claimed_at=row.claimed_at,
        closed_at=row.closed_at,
        resolution=Resolution(row.resolution) if row.resolution else None,
        incident_requested=row.incident_requested,
    )


def _apply_episode(row: AlarmRow, episode: Episode) -> None:
    row.priority = int(episode.priority)
    row.status = episode.status.value
    row.category = episode.category
    row.last_signal_at = episode.last_signal_at
    row.signal_count = episode.signal_count
    row.claimed_by = episode.claimed_by
    row.claimed_at = episode.claimed_at
    row.closed_at = episode.closed_at
    row.resolution = episode.resolution.value if episode.resolution else None
    row.incident_requested = episode.incident_requested


def _changed(row: AlarmRow, change: str, actor: str | None = None, detail: str | None = None) -> AlarmChanged:
    return AlarmChanged(
        alarm_id=row.id, account=row.account, change=change, status=row.status, priority=row.priority,
        category=row.category, code=row.code, zone=row.zone, actor=actor, detail=detail,
    )


class AlarmService:
    def __init__(
        self,
        db: Database,
        events: EventLog,
        audit: AuditLog,
        clock: Callable[[], datetime],
        *,
        episode_window: timedelta = timedelta(minutes=10),
    ) -> None:
        self.db = db
        self.events = events
        self.audit = audit
        self.clock = clock
        self.episode_window = episode_window
        self.watching_since = clock()

    # -- accounts ------------------------------------------------------------------------------
    async def create_account(self, fields: dict[str, Any], actor: str, actor_role: str) -> AlarmAccountRow:
        now = self.clock()
        number = str(fields["number"]).upper()
        async with self.db.session() as session:
            if await session.get(AlarmAccountRow, number) is not None:
                raise AccountExists(f"account {number} exists")
            row = AlarmAccountRow(
                number=number, kind=fields["kind"], name=fields["name"], address=fields["address"],
                lat=fields["lat"], lon=fields["lon"], key_hex=(fields.get("key_hex") or None),
                link_test_interval_s=fields.get("link_test_interval_s") or 0,
                clock_offset_s=fields.get("clock_offset_s") or 0,
                contract_status=fields.get("contract_status") or "active",
                zones=fields.get("zones") or [], contacts=fields.get("contacts") or [],
                notes=fields.get("notes") or "", created_at=now, updated_at=now,
            )
            session.add(row)
            await self.audit.append(
                actor, actor_role, "alarm_account.create", f"alarm_account:{number}",
                detail={"kind": row.kind, "encrypted": row.key_hex is not None}, session=session,
            )
        await self.events.append([Event.of(AccountChanged(account=number, change="created"),
                                           source="alarm-accounts", occurred_at=now)])
        return row

    async def update_account(
        self, number: str, changes: dict[str, Any], actor: str, actor_role: str
    ) -> AlarmAccountRow:
        """Change an account's description, keys or supervision; the receivers pick it up at once."""
        now = self.clock()
        async with self.db.session() as session:
            row = await session.get(AlarmAccountRow, number.upper())
            if row is None:
                raise UnknownAccount(f"no account {number}")
            for name, value in changes.items():
                setattr(row, name, value)
            row.updated_at = now
            detail = {k: ("********" if k == "key_hex" else v) for k, v in changes.items()}
            await self.audit.append(actor, actor_role, "alarm_account.update", f"alarm_account:{row.number}",
                                    detail={"changed": sorted(detail)}, session=session)
        await self.events.append([Event.of(AccountChanged(account=row.number, change="updated"),
                                           source="alarm-accounts", occurred_at=now)])
        return row

    async def get_account(self, number: str) -> AlarmAccountRow:
        async with self.db.session() as session:
            row = await session.get(AlarmAccountRow, number.upper())
        if row is None:
            raise UnknownAccount(f"no account {number}")
        return row

    async def list_accounts(self, limit: int = 1000, after: str = "") -> list[AlarmAccountRow]:
        async with self.db.session() as session:
            rows = await session.scalars(
                select(AlarmAccountRow).where(AlarmAccountRow.number > after)
                .order_by(AlarmAccountRow.number).limit(limit)
            )
            return list(rows)

    async def account_keys(self, numbers: list[str] | None = None) -> dict[str, AccountKey]:
        """The receivers' directory: account number → AES key and clock offset (all, or just `numbers`)."""
        query = select(AlarmAccountRow.number, AlarmAccountRow.key_hex, AlarmAccountRow.clock_offset_s,
                       AlarmAccountRow.link_test_interval_s)
        if numbers is not None:
            query = query.where(AlarmAccountRow.number.in_([n.upper() for n in numbers][:1000]))
        async with self.db.session() as session:
            rows = await session.execute(query)
            return {
                number: AccountKey(number, bytes.fromhex(key) if key else None, offset, interval > 0)
                for number, key, offset, interval in rows
            }

    # -- the worker ----------------------------------------------------------------------------
    async def run_worker(self, stop: asyncio.Event, *, consumer_name: str = "alarm-queue") -> None:
        consumer = await self.events.consumer(consumer_name, "alarm")
        supervision = asyncio.create_task(self.run_supervision(stop))
        try:
            await consume(consumer, self.process, stop)
        finally:
            supervision.cancel()
            await consumer.close()

    async def process(self, deliveries: Sequence[Delivery]) -> None:
        """Apply one batch of the alarm family in one transaction, then publish what changed."""
        outgoing: list[Event] = []
        now = self.clock()
        async with self.db.session() as session:
            batch = _Batch(session, self.episode_window)
            for delivery in deliveries:
                event = delivery.event
                outgoing.extend(await batch.apply(event, now))
        if outgoing:
            await self.events.append(outgoing)

    async def run_supervision(self, stop: asyncio.Event, every_s: float = 5.0) -> None:
        while not stop.is_set():
            try:
                await self.check_links()
            except Exception:
                log.exception("link supervision check failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)

    async def check_links(self) -> list[str]:
        """Append one communication failure per overdue account; the dedup key makes it once only."""
        now = self.clock()
        async with self.db.session() as session:
            rows = await session.execute(
                select(AlarmAccountRow.number, AlarmAccountRow.link_test_interval_s,
                       AlarmAccountRow.last_seen_at, AlarmAccountRow.link_failed_at)
                .where(AlarmAccountRow.link_test_interval_s > 0)
            )
            links = [
                logic.LinkState(number, logic.SupervisionProfile.for_interval(interval), seen, failed)
                for number, interval, seen, failed in rows
            ]
        overdue = logic.overdue_links(links, now, self.watching_since)
        profiles = {link.account: link.profile for link in links}
        events = [
            Event.of(
                CommunicationFailed(account=account, deadline=deadline,
                                    interval_s=int(profiles[account].interval.total_seconds())),
                source="alarm-supervision", occurred_at=deadline,
                dedup_key=f"commfail:{account}:{deadline.isoformat()}",
            )
            for account, deadline in overdue
        ]
        if events:
            await self.events.append(events)
            log.warning("link tests missed accounts=%d", len(events))
        return [a for a, _ in overdue]

    async def prune_history(self, before: datetime) -> int:
        """Retention: signals older than `before`, and closed alarms last touched before it, go."""
        async with self.db.session() as session:
            old_alarms = select(AlarmRow.id).where(
                AlarmRow.status == AlarmStatus.CLOSED.value, AlarmRow.last_signal_at < before,
                AlarmRow.closed_at < before,
            )
            signals = await session.execute(
                delete(AlarmSignalRow).where(
                    (AlarmSignalRow.received_at < before) | AlarmSignalRow.alarm_id.in_(old_alarms)
                )
            )
            await session.execute(delete(AlarmActionRow).where(AlarmActionRow.alarm_id.in_(old_alarms)))
            alarms = await session.execute(delete(AlarmRow).where(AlarmRow.id.in_(old_alarms)))
        return int(signals.rowcount) + int(alarms.rowcount)  # type: ignore[attr-defined]

    # -- the operator queue --------------------------------------------------------------------
    async def open_alarms(self, limit: int = 500) -> list[AlarmRow]:
        async with self.db.session() as session:
            rows = await session.scalars(
                select(AlarmRow).where(AlarmRow.status != AlarmStatus.CLOSED.value)
                .order_by(AlarmRow.priority, AlarmRow.opened_at).limit(limit)
            )
            return list(rows)

    async def get_alarm(self, alarm_id: str) -> tuple[AlarmRow, list[AlarmSignalRow], list[AlarmActionRow]]:
        async with self.db.session() as session:
            row = await session.get(AlarmRow, alarm_id)
            if row is None:
                raise UnknownAlarm(f"no alarm {alarm_id}")
            signals = list(await session.scalars(
                select(AlarmSignalRow).where(AlarmSignalRow.alarm_id == alarm_id)
                .order_by(AlarmSignalRow.received_at)))
            actions = list(await session.scalars(
                select(AlarmActionRow).where(AlarmActionRow.alarm_id == alarm_id).order_by(AlarmActionRow.id)))
        return row, signals, actions

    async def _command(
        self,
        alarm_id: str,
        actor: str,
        actor_role: str,
        change: str,
        decide: Callable[[Episode], Episode],
        *,
        note: str = "",
        extra: Callable[[AsyncSession, AlarmRow], Any] | None = None,
    ) -> AlarmRow:
        now = self.clock()
        async with self.db.session() as session:
            row = await session.get(AlarmRow, alarm_id)
            if row is None:
                raise UnknownAlarm(f"no alarm {alarm_id}")
            before = row.version
            episode = decide(episode_from_row(row))
            values = {
                "status": episode.status.value, "claimed_by": episode.claimed_by, "claimed_at": episode.claimed_at,
                "closed_at": episode.closed_at, "resolution": episode.resolution.value if episode.resolution else None,
                "incident_requested": episode.incident_requested, "version": before + 1,
            }
            result = await session.execute(
                update(AlarmRow).where(AlarmRow.id == alarm_id, AlarmRow.version == before).values(**values)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise ConcurrentChange(f"alarm {alarm_id} changed meanwhile; reload and retry")
            await session.refresh(row)
            session.add(AlarmActionRow(alarm_id=alarm_id, at=now, actor=actor, action=change, note=note))
            if extra is not None:
                await extra(session, row)
            await self.audit.append(actor, actor_role, f"alarm.{change}", f"alarm:{alarm_id}",
                                    detail={"note": note} if note else None, session=session)
        await self.events.append([Event.of(_changed(row, change, actor, note or None), source="alarm-queue",
                                           occurred_at=now)])
        return row

    async def claim(self, alarm_id: str, actor: str, actor_role: str, *, take_over: bool = False) -> AlarmRow:
        return await self._command(alarm_id, actor, actor_role, "claimed",
                                   lambda e: logic.claim(e, actor, self.clock(), take_over=take_over))

    async def release(self, alarm_id: str, actor: str, actor_role: str) -> AlarmRow:
        return await self._command(alarm_id, actor, actor_role, "released", lambda e: logic.release(e, actor))

    async def record_action(
        self, alarm_id: str, actor: str, actor_role: str, action: logic.ActionKind, note: str
    ) -> AlarmRow:
        def check(episode: Episode) -> Episode:
            logic.require_owner(episode, actor)
            return episode

        return await self._command(alarm_id, actor, actor_role, action.value, check, note=note)

    async def close(
        self, alarm_id: str, actor: str, actor_role: str, resolution: Resolution, note: str = ""
    ) -> AlarmRow:
        return await self._command(alarm_id, actor, actor_role, "closed",
                                   lambda e: logic.close(e, actor, resolution, self.clock()), note=note)

    async def escalate(self, alarm_id: str, actor: str, actor_role: str, note: str = "") -> AlarmRow:
        requested: list[Event] = []

        async def request_incident(session: AsyncSession, row: AlarmRow) -> None:
            account = await session.get(AlarmAccountRow, row.account)
            assert account is not None
            requested.append(Event.of(
                IncidentRequested(
                    alarm_id=row.id, account=row.account, account_kind=account.kind, priority=row.priority,
                    category=row.category, code=row.code, zone=row.zone, address=account.address,
                    lat=account.lat, lon=account.lon, requested_by=actor, note=note,
                ),
                source="alarm-queue", occurred_at=self.clock(), location=Location(lat=account.lat, lon=account.lon),
                dedup_key=f"incident-request:{row.id}",
            ))

        row = await self._command(alarm_id, actor, actor_role, "escalated",
                                  lambda e: logic.escalate(e, actor), note=note, extra=request_incident)
        await self.events.append(requested)
        return row


class _Batch:
    """State of one worker batch: the open episode per account, loaded once, kept current."""

    def __init__(self, session: AsyncSession, window: timedelta) -> None:
        self.session = session
        self.window = window
        self.open: dict[str, AlarmRow | None] = {}
        self.accounts: dict[str, AlarmAccountRow | None] = {}

    async def account(self, number: str) -> AlarmAccountRow | None:
        if number not in self.accounts:
            self.accounts[number] = await self.session.get(AlarmAccountRow, number)
        return self.accounts[number]

    async def open_alarm(self, number: str) -> AlarmRow | None:
        if number not in self.open:
            self.open[number] = await self.session.scalar(
                select(AlarmRow).where(AlarmRow.account == number, AlarmRow.status != AlarmStatus.CLOSED.value)
                .order_by(AlarmRow.opened_at.desc()).limit(1)
            )
        return self.open[number]

    async def apply(self, event: Event, now: datetime) -> list[Event]:
        payload = event.typed() if event.kind in _HANDLED else None
        if payload is None:
            return []
        account_number: str = payload.account  # type: ignore[attr-defined]
        account = await self.account(account_number)
        if account is None:
            log.warning("event for unknown account=%s kind=%s", account_number, event.kind)
            return []
        out: list[Event] = []
        if isinstance(payload, SignalReceived | LinkTestReceived):
            if account.last_seen_at is None or event.received_at > account.last_seen_at:
                account.last_seen_at = event.received_at
            if account.link_failed_at is not None:
                out.append(Event.of(
                    CommunicationRestored(account=account.number, failed_at=account.link_failed_at),
                    source="alarm-supervision", occurred_at=event.received_at,
                    dedup_key=f"commrestore:{account.number}:{account.link_failed_at.isoformat()}",
                ))
                account.link_failed_at = None
        if isinstance(payload, SignalReceived):
            signal = Signal(event.id, account.number, payload.code, payload.zone, payload.category,
                            Priority(payload.priority), payload.is_restore, event.received_at)
            out.extend(await self._signal(signal, payload.description))
        elif isinstance(payload, CommunicationFailed):
            account.link_failed_at = payload.deadline
            signal = Signal(event.id, account.number, "COMM", None, AlarmCategory.COMMUNICATION_FAILURE.value,
                            Priority.TROUBLE, False, event.received_at)
            out.extend(await self._signal(signal, "link test missed: communication failure"))
        elif isinstance(payload, CommunicationRestored):
            signal = Signal(event.id, account.number, "COMM", None, AlarmCategory.COMMUNICATION_FAILURE.value,
                            Priority.INFO, True, event.received_at)
            out.extend(await self._signal(signal, "communication restored"))
        return out

    async def _signal(self, signal: Signal, description: str) -> list[Event]:
        if await self.session.get(AlarmSignalRow, signal.event_id) is not None:
            return []  # a redelivery: already applied
        current = await self.open_alarm(signal.account)
        episode = episode_from_row(current) if current is not None else None
        decision = logic.decide_signal(signal, episode, self.window)
        alarm_id: str | None = None
        change: AlarmChanged | None = None
        if decision == SignalDecision.OPEN_EPISODE:
            new = logic.open_episode(new_event_id(), signal)
            row = AlarmRow(id=new.id, account=new.account, priority=int(new.priority), status=new.status.value,
                           category=new.category, code=new.first_code, zone=new.first_zone,
                           opened_at=new.opened_at, last_signal_at=new.last_signal_at, signal_count=1,
                           incident_requested=False, version=1)
            self.session.add(row)
            self.open[signal.account] = row
            alarm_id = row.id
            change = _changed(row, "opened")
        elif decision == SignalDecision.JOIN_EPISODE and current is not None and episode is not None:
            _apply_episode(current, logic.join_episode(episode, signal))
            current.version += 1
            alarm_id = current.id
            change = _changed(current, "signal", detail=f"{signal.code} zone {signal.zone or '-'}")
        self.session.add(AlarmSignalRow(
            event_id=signal.event_id, account=signal.account, alarm_id=alarm_id, code=signal.code,
            zone=signal.zone, category=signal.category, priority=int(signal.priority),
            is_restore=signal.is_restore, description=description[:200], received_at=signal.received_at,
        ))
        await self.session.flush()
        if change is None:
            return []
        return [Event.of(change, source="alarm-queue", occurred_at=signal.received_at)]


_HANDLED = {SignalReceived.KIND, LinkTestReceived.KIND, CommunicationFailed.KIND, CommunicationRestored.KIND}
