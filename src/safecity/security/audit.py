"""The audit log: an append-only, hash-chained record of every sensitive read and every change.

Each record's hash is sha256(prev_hash || canonical JSON of its fields), so changing, removing or
moving a record breaks the chain at that record. `audit_head` holds the last seq and hash; every
append locks it first (`UPDATE … RETURNING`, a write on both backends), which serializes appenders
across processes. The database refuses UPDATE and DELETE on `audit_log` (migration 0001); retention
deletes only a prefix of the chain, after raising `audit_prune_allowance` and after appending an
`audit.pruned` record that keeps the seq and hash of the last record it removed: the new start of
the chain stays anchored.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, cast

from sqlalchemy import CursorResult, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from safecity.security.model import GENESIS_HASH, AuditEntry, AuditHead, AuditPruneAllowance
from safecity.store.engine import Database

log = logging.getLogger(__name__)

Outcome = Literal["ok", "denied", "error"]
ProblemKind = Literal["edited", "deleted", "reordered", "broken_link"]

PRUNED_ACTION = "audit.pruned"
SYSTEM_ACTOR = "system"
MAX_LIST_LIMIT = 1000
_OUTCOMES = frozenset({"ok", "denied", "error"})
_REORDER_SEARCH = 8  # a record failing its hash is tried at seqs this close before calling it edited


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    at: datetime
    actor: str
    actor_role: str | None
    action: str
    resource: str
    outcome: str
    client: str | None
    detail: dict[str, Any] | None
    prev_hash: str
    hash: str


class ChainPoint(NamedTuple):
    """A position in the chain: the head, or the anchor left by pruning."""

    seq: int
    hash: str


GENESIS = ChainPoint(0, GENESIS_HASH)


class Problem(NamedTuple):
    seq: int
    kind: ProblemKind
    message: str


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    checked: int
    problems: list[Problem]


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def record_hash(record: AuditRecord, *, seq: int | None = None) -> str:
    """The hash the record should carry (at `seq`, when given, instead of its own)."""
    body = {
        "seq": record.seq if seq is None else seq,
        "at": record.at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": record.actor,
        "actor_role": record.actor_role,
        "action": record.action,
        "resource": record.resource,
        "outcome": record.outcome,
        "client": record.client,
        "detail": record.detail,
    }
    data = record.prev_hash.encode("utf-8") + canonical_json(body).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def _hash_matches(record: AuditRecord, seq: int | None = None) -> bool:
    try:
        return record_hash(record, seq=seq) == record.hash
    except (ValueError, TypeError):  # a tampered detail that no longer serializes
        return False


class _ChainVerifier:
    """Checks records one at a time (so `AuditLog.verify` can stream) and names the record at fault.

    Links are checked by seq, not by arrival order, so a record out of place is reported once,
    as reordered, instead of breaking the links around it.
    """

    WINDOW = 4096  # hashes kept for link checks; records further out of place are still reported

    def __init__(self, anchor: ChainPoint | None) -> None:
        self.start = anchor or GENESIS
        self.problems: list[Problem] = []
        self.checked = 0
        self.max_seq = self.start.seq
        self.gaps: list[list[int]] = []  # [first, last] seqs not seen (yet)
        self.recent: OrderedDict[int, str] = OrderedDict({self.start.seq: self.start.hash})
        self.awaiting: dict[int, tuple[int, str]] = {}  # unseen predecessor -> (successor, its prev_hash)
        self.flagged: set[int] = set()

    def _report(self, seq: int, kind: ProblemKind, message: str) -> None:
        self.problems.append(Problem(seq, kind, message))
        self.flagged.add(seq)

    def _report_rewritten(self, seq: int, successor: int) -> None:
        # Both records match their own hashes but do not link: most likely `seq` was changed and
        # re-hashed by someone who knows the algorithm (or the successor's prev_hash was).
        message = f"record {seq} was rewritten: record {successor} links to another hash"
        self._report(seq, "broken_link", message)

    def _fill_gap(self, seq: int) -> bool:
        for i, (first, last) in enumerate(self.gaps):
            if first <= seq <= last:
                pieces = [[first, seq - 1], [seq + 1, last]]
                self.gaps[i : i + 1] = [p for p in pieces if p[0] <= p[1]]
                return True
        return False

    def feed(self, record: AuditRecord) -> None:
        self.checked += 1
        seq = record.seq
        content_ok = _hash_matches(record)
        if not content_ok:
            moved_from = next(
                (
                    s
                    for d in range(1, _REORDER_SEARCH + 1)
                    for s in (seq - d, seq + d)
                    if s > 0 and _hash_matches(record, s)
                ),
                None,
            )
            if moved_from is None:
                self._report(seq, "edited", f"record {seq}: contents do not match its hash")
            else:
                self._report(seq, "reordered", f"record {seq} holds the record written as {moved_from}")

        if seq <= self.start.seq:
            message = f"record {seq} lies before the start of the chain ({self.start.seq})"
            self._report(seq, "broken_link", message)
            return
        if seq > self.max_seq:
            if seq > self.max_seq + 1:
                self.gaps.append([self.max_seq + 1, seq - 1])
            self.max_seq = seq
        elif self._fill_gap(seq):
            self._report(seq, "reordered", f"record {seq} comes after record {self.max_seq}")
        else:
            self._report(seq, "reordered", f"record {seq} appears more than once")
            return

        prev = seq - 1
        if content_ok:
            if prev in self.recent:
                if self.recent[prev] != record.prev_hash and prev not in self.flagged:
                    self._report_rewritten(prev, seq)
            else:
                self.awaiting[prev] = (seq, record.prev_hash)
        if seq in self.awaiting:
            successor, expected = self.awaiting.pop(seq)
            if expected != record.hash and seq not in self.flagged:
                self._report_rewritten(seq, successor)
        self.recent[seq] = record.hash
        if len(self.recent) > self.WINDOW:
            self.recent.popitem(last=False)

    def finish(self, head: ChainPoint | None) -> VerifyReport:
        for first, last in self.gaps:
            what = f"record {first} is" if first == last else f"records {first}..{last} are"
            self.problems.append(Problem(first, "deleted", f"{what} missing"))
        if head is not None:
            if head.seq > self.max_seq:
                first = self.max_seq + 1
                what = f"record {first} is" if first == head.seq else f"records {first}..{head.seq} are"
                self.problems.append(Problem(first, "deleted", f"{what} missing at the end of the chain"))
            elif head.seq < self.max_seq:
                message = f"the head is at {head.seq} but records go on to {self.max_seq}"
                self.problems.append(Problem(head.seq, "broken_link", message))
            elif self.recent.get(head.seq, head.hash) != head.hash:
                self.problems.append(
                    Problem(head.seq, "broken_link", f"the head's hash does not match record {head.seq}")
                )
        self.problems.sort(key=lambda p: p.seq)
        return VerifyReport(ok=not self.problems, checked=self.checked, problems=self.problems)


def verify_records(
    records: Iterable[AuditRecord], anchor: ChainPoint | None = None, head: ChainPoint | None = None
) -> VerifyReport:
    """Check a chain given in seq order, starting after `anchor` (the genesis when None) and,
    when `head` is given, ending exactly there. Each problem names the record at fault."""
    verifier = _ChainVerifier(anchor)
    for record in records:
        verifier.feed(record)
    return verifier.finish(head)


def _clip(value: str | None, size: int) -> str | None:
    return None if value is None else value[:size]


def _to_record(row: AuditEntry) -> AuditRecord:
    detail: dict[str, Any] | None = None
    if row.detail is not None:
        try:
            loaded = json.loads(row.detail)
        except ValueError:
            loaded = None
        # anything but an object cannot have been written by `append`: keep it visible to the hash check
        detail = loaded if isinstance(loaded, dict) else {"__unreadable__": row.detail}
    return AuditRecord(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        actor_role=row.actor_role,
        action=row.action,
        resource=row.resource,
        outcome=row.outcome,
        client=row.client,
        detail=detail,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


class AuditLog:
    def __init__(self, db: Database, clock: Callable[[], datetime], *, chunk_size: int = 1000) -> None:
        self._db = db
        self._clock = clock
        self._chunk_size = chunk_size

    async def append(
        self,
        actor: str,
        actor_role: str | None,
        action: str,
        resource: str,
        outcome: Outcome = "ok",
        client: str | None = None,
        detail: Mapping[str, Any] | None = None,
        session: AsyncSession | None = None,
    ) -> AuditRecord:
        """Append one record. Pass the `session` of the change being recorded so both commit together."""
        if action == PRUNED_ACTION:
            raise ValueError(f"{PRUNED_ACTION!r} records are written by prune() only")
        if session is not None:
            return await self._append(session, actor, actor_role, action, resource, outcome, client, detail)
        async with self._db.session() as own:
            return await self._append(own, actor, actor_role, action, resource, outcome, client, detail)

    async def _append(
        self,
        session: AsyncSession,
        actor: str,
        actor_role: str | None,
        action: str,
        resource: str,
        outcome: str,
        client: str | None,
        detail: Mapping[str, Any] | None,
    ) -> AuditRecord:
        if outcome not in _OUTCOMES:
            raise ValueError(f"outcome must be one of {sorted(_OUTCOMES)}")
        detail_json = None if detail is None else canonical_json(dict(detail))
        # The first statement is a write: it takes the head's row lock (PostgreSQL) or the database's
        # write lock (SQLite) before anything is read, so two appenders never see the same head.
        seq, prev_hash = (
            await session.execute(
                update(AuditHead)
                .where(AuditHead.id == 1)
                .values(seq=AuditHead.seq + 1)
                .returning(AuditHead.seq, AuditHead.hash)
                .execution_options(synchronize_session=False)
            )
        ).one()
        at = self._clock()  # read under the lock, so time order follows seq order
        if at.tzinfo is None:
            raise ValueError("the audit clock must return aware datetimes")
        record = AuditRecord(
            seq=seq,
            at=at.astimezone(UTC),
            actor=cast(str, _clip(actor, 128)),
            actor_role=_clip(actor_role, 32),
            action=cast(str, _clip(action, 64)),
            resource=cast(str, _clip(resource, 255)),
            outcome=outcome,
            client=_clip(client, 64),
            detail=None if detail_json is None else json.loads(detail_json),
            prev_hash=prev_hash,
            hash="",
        )
        record = replace(record, hash=record_hash(record))
        await session.execute(
            insert(AuditEntry).values(
                seq=record.seq,
                at=record.at,
                actor=record.actor,
                actor_role=record.actor_role,
                action=record.action,
                resource=record.resource,
                outcome=record.outcome,
                client=record.client,
                detail=detail_json,
                prev_hash=record.prev_hash,
                hash=record.hash,
            )
        )
        await session.execute(
            update(AuditHead)
            .where(AuditHead.id == 1)
            .values(hash=record.hash)
            .execution_options(synchronize_session=False)
        )
        return record

    async def list(
        self, after_seq: int = 0, limit: int = 100, actor: str | None = None, action: str | None = None
    ) -> builtins.list[AuditRecord]:
        """Records after `after_seq` in chain order (page with the last seq you got)."""
        stmt = select(AuditEntry).where(AuditEntry.seq > after_seq)
        if actor is not None:
            stmt = stmt.where(AuditEntry.actor == actor)
        if action is not None:
            stmt = stmt.where(AuditEntry.action == action)
        stmt = stmt.order_by(AuditEntry.seq).limit(max(0, min(limit, MAX_LIST_LIMIT)))
        async with self._db.sessions() as session:
            return [_to_record(row) for row in await session.scalars(stmt)]

    async def head(self) -> ChainPoint:
        async with self._db.sessions() as session:
            return await _read_head(session)

    async def verify(self) -> VerifyReport:
        """Re-check the whole chain, streamed in chunks, up to the head as it was when we started."""
        async with self._db.sessions() as session:
            head = await _read_head(session)
            verifier = _ChainVerifier(await _read_anchor(session, head.seq))
            after = 0
            while True:
                rows = (
                    await session.scalars(
                        select(AuditEntry)
                        .where(AuditEntry.seq > after, AuditEntry.seq <= head.seq)
                        .order_by(AuditEntry.seq)
                        .limit(self._chunk_size)
                    )
                ).all()
                for row in rows:
                    verifier.feed(_to_record(row))
                session.expunge_all()
                if len(rows) < self._chunk_size:
                    break
                after = rows[-1].seq
            report = verifier.finish(head)
            # Appends since we began are fine; records beyond the current head are not. One statement,
            # so an append committing meanwhile cannot make a consistent chain look broken.
            head_seq = select(AuditHead.seq).where(AuditHead.id == 1).scalar_subquery()
            beyond = await session.scalar(select(func.min(AuditEntry.seq)).where(AuditEntry.seq > head_seq))
        if beyond is not None:
            problem = Problem(beyond, "broken_link", f"record {beyond} lies beyond the head")
            report = VerifyReport(ok=False, checked=report.checked, problems=[*report.problems, problem])
        if not report.ok:
            log.error("audit chain broken problems=%d first=%s", len(report.problems), report.problems[0])
        return report

    async def prune(self, older_than: datetime) -> int:
        """Delete the records older than `older_than` from the start of the chain; returns how many.

        Stops at the first record that is not old enough, so the chain stays one unbroken piece.
        """
        async with self._db.session() as session:
            # Lock the head first (a write), so no append or other prune interleaves.
            last_seq = (
                await session.execute(
                    update(AuditHead)
                    .where(AuditHead.id == 1)
                    .values(seq=AuditHead.seq)
                    .returning(AuditHead.seq)
                    .execution_options(synchronize_session=False)
                )
            ).scalar_one()
            first_kept = await session.scalar(select(func.min(AuditEntry.seq)).where(AuditEntry.at >= older_than))
            upto = last_seq if first_kept is None else first_kept - 1
            oldest = await session.scalar(select(func.min(AuditEntry.seq)))
            if oldest is None or upto < oldest:
                return 0
            upto_hash = await session.scalar(select(AuditEntry.hash).where(AuditEntry.seq == upto))
            count = await session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.seq <= upto))
            detail = {
                "upto_seq": upto,
                "upto_hash": upto_hash,
                "count": count,
                "older_than": older_than.astimezone(UTC).isoformat(timespec="microseconds"),
            }
            await self._append(session, SYSTEM_ACTOR, None, PRUNED_ACTION, "audit_log", "ok", None, detail)
            await session.execute(
                update(AuditPruneAllowance)
                .where(AuditPruneAllowance.id == 1, AuditPruneAllowance.upto < upto)
                .values(upto=upto)
                .execution_options(synchronize_session=False)
            )
            result = await session.execute(
                delete(AuditEntry).where(AuditEntry.seq <= upto).execution_options(synchronize_session=False)
            )
            deleted = cast(CursorResult[Any], result).rowcount
        log.info("audit records pruned count=%d upto_seq=%d", deleted, upto)
        return deleted


async def _read_head(session: AsyncSession) -> ChainPoint:
    row = (await session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1))).one()
    return ChainPoint(row.seq, row.hash)


async def _read_anchor(session: AsyncSession, head_seq: int) -> ChainPoint | None:
    """Where the chain starts after pruning: the last pruned record, as the newest `audit.pruned` kept it."""
    detail = await session.scalar(
        select(AuditEntry.detail)
        .where(AuditEntry.action == PRUNED_ACTION, AuditEntry.seq <= head_seq)
        .order_by(AuditEntry.seq.desc())
        .limit(1)
    )
    if detail is None:
        return None
    try:
        data = json.loads(detail)
        return ChainPoint(int(data["upto_seq"]), str(data["upto_hash"]))
    except (ValueError, KeyError, TypeError):
        return None  # the record's own hash check reports the damage
