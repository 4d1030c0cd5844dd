"""The hash-chained audit log: tamper detection, append-only enforcement, concurrency, retention."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from safecity.security import AuditLog, AuditRecord, ChainPoint, record_hash, verify_records
from safecity.security.audit import GENESIS
from safecity.store.engine import Database, create_database

T0 = datetime(2025, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def make_chain(n: int, start: ChainPoint = GENESIS) -> list[AuditRecord]:
    records, prev = [], start.hash
    for seq in range(start.seq + 1, start.seq + n + 1):
        record = AuditRecord(
            seq=seq,
            at=T0 + timedelta(seconds=seq, microseconds=seq),
            actor=f"dispatcher{seq % 3}",
            actor_role="dispatcher",
            action="plate.search",
            resource=f"plate:B-XY{seq}",
            outcome="ok",
            client="10.0.0.7",
            detail={"query": f"XY{seq}", "hits": seq % 4},
            prev_hash=prev,
            hash="",
        )
        record = replace(record, hash=record_hash(record))
        records.append(record)
        prev = record.hash
    return records


def head_of(records: list[AuditRecord]) -> ChainPoint:
    return ChainPoint(records[-1].seq, records[-1].hash)


def kinds(report: Any) -> list[tuple[int, str]]:
    return [(p.seq, p.kind) for p in report.problems]


# -- verify_records: pure -----------------------------------------------------------------------


def test_intact_chain_verifies() -> None:
    chain = make_chain(20)
    report = verify_records(chain, head=head_of(chain))
    assert report.ok
    assert report.checked == 20
    assert report.problems == []


def test_empty_chain_verifies_against_genesis_head() -> None:
    assert verify_records([], head=GENESIS).ok


def test_edited_record_is_named() -> None:
    chain = make_chain(10)
    chain[4] = replace(chain[4], resource="plate:B-ZZ999")
    assert kinds(verify_records(chain, head=head_of(chain))) == [(5, "edited")]


def test_deleted_record_is_named() -> None:
    chain = make_chain(10)
    del chain[4]
    report = verify_records(chain, head=head_of(chain))
    assert kinds(report) == [(5, "deleted")]
    assert "record 5 is missing" in report.problems[0].message


def test_deleted_run_of_records_is_one_problem() -> None:
    chain = make_chain(10)
    del chain[2:6]
    report = verify_records(chain, head=head_of(chain))
    assert kinds(report) == [(3, "deleted")]
    assert "3..6" in report.problems[0].message


def test_deleted_first_and_last_records_are_named() -> None:
    chain = make_chain(10)
    head = head_of(chain)
    assert kinds(verify_records(chain[1:], head=head)) == [(1, "deleted")]
    assert kinds(verify_records(chain[:-2], head=head)) == [(9, "deleted")]


def test_swapped_records_are_reported_as_reordered() -> None:
    chain = make_chain(10)
    chain[3], chain[4] = chain[4], chain[3]
    assert kinds(verify_records(chain, head=head_of(chain))) == [(4, "reordered")]


def test_records_swapped_in_place_are_both_named() -> None:
    # Contents swapped between seq 4 and 5, the seq column left alone (what an UPDATE would do).
    chain = make_chain(10)
    a, b = chain[3], chain[4]
    chain[3], chain[4] = replace(b, seq=4), replace(a, seq=5)
    assert kinds(verify_records(chain, head=head_of(chain))) == [(4, "reordered"), (5, "reordered")]


def test_rewritten_and_rehashed_record_breaks_the_link() -> None:
    chain = make_chain(10)
    forged = replace(chain[4], outcome="denied")
    chain[4] = replace(forged, hash=record_hash(forged))
    assert kinds(verify_records(chain, head=head_of(chain))) == [(5, "broken_link")]


def test_tampered_head_is_reported() -> None:
    chain = make_chain(10)
    report = verify_records(chain, head=ChainPoint(10, "f" * 64))
    assert kinds(report) == [(10, "broken_link")]
    assert "head" in report.problems[0].message
    assert kinds(verify_records(chain, head=ChainPoint(8, chain[7].hash))) == [(8, "broken_link")]


def test_anchor_accepts_a_pruned_start_and_nothing_else() -> None:
    chain = make_chain(10)
    anchor = ChainPoint(chain[3].seq, chain[3].hash)
    assert verify_records(chain[4:], anchor=anchor, head=head_of(chain)).ok
    assert kinds(verify_records(chain[5:], anchor=anchor, head=head_of(chain))) == [(5, "deleted")]
    assert not verify_records(chain[4:], anchor=ChainPoint(4, "0" * 64), head=head_of(chain)).ok
    assert kinds(verify_records(chain[4:], head=head_of(chain))) == [(1, "deleted")]


FIELDS: dict[str, Any] = {
    "at": T0 - timedelta(days=1),
    "actor": "intruder",
    "actor_role": "admin",
    "action": "user.create",
    "resource": "user:1",
    "outcome": "denied",
    "client": None,
    "detail": {"query": "something else"},
    "prev_hash": "a" * 64,
    "hash": "b" * 64,
}


@given(index=st.integers(0, 11), field=st.sampled_from(sorted(FIELDS)))
def test_any_single_edit_is_reported_at_that_record(index: int, field: str) -> None:
    chain = make_chain(12)
    head = head_of(chain)
    chain[index] = replace(chain[index], **{field: FIELDS[field]})
    report = verify_records(chain, head=head)
    assert not report.ok
    assert {p.seq for p in report.problems} == {index + 1}


@given(index=st.integers(0, 10))
def test_any_adjacent_swap_is_one_reordering(index: int) -> None:
    chain = make_chain(12)
    chain[index], chain[index + 1] = chain[index + 1], chain[index]
    assert kinds(verify_records(chain, head=head_of(make_chain(12)))) == [(index + 1, "reordered")]


@given(index=st.integers(0, 11))
def test_any_single_deletion_is_reported_at_that_record(index: int) -> None:
    chain = make_chain(12)
    head = head_of(chain)
    del chain[index]
    assert kinds(verify_records(chain, head=head)) == [(index + 1, "deleted")]


# -- the database ---------------------------------------------------------------------------


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def audit(db: Database, clock: Clock) -> AuditLog:
    return AuditLog(db, clock, chunk_size=7)  # small chunks: verify() streams across several


async def fill(audit: AuditLog, clock: Clock, n: int, **step: float) -> None:
    for i in range(n):
        await audit.append(f"op{i % 2}", "operator", "alarm.read", f"alarm:{i}", client="10.1.1.1", detail={"i": i})
        if step:
            clock.advance(**step)


async def sql(db: Database, statement: str) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text(statement))


async def drop_guards(db: Database) -> None:
    """What someone with DBA rights could do; the chain must still tell."""
    if db.dialect == "sqlite":
        await sql(db, "DROP TRIGGER audit_log_no_update")
        await sql(db, "DROP TRIGGER audit_log_no_delete")
    else:
        await sql(db, "DROP TRIGGER audit_log_append_only ON audit_log")


async def test_appended_records_read_back_identically(audit: AuditLog, clock: Clock) -> None:
    clock.now = datetime(2025, 6, 1, 8, 30, 15, 123456, tzinfo=UTC)
    written = await audit.append(
        "ops1",
        "operator",
        "plate.search",
        "plate:B-XY123",
        client="192.0.2.4",
        detail={"hits": 2, "ä": [1.5]},
    )
    (read,) = await audit.list()
    assert read == written
    assert read.seq == 1
    assert read.prev_hash == GENESIS.hash
    assert read.hash == record_hash(read)
    assert await audit.head() == ChainPoint(1, read.hash)


async def test_intact_log_verifies(audit: AuditLog, clock: Clock) -> None:
    await fill(audit, clock, 30, seconds=1)
    report = await audit.verify()
    assert report.ok, report.problems
    assert report.checked == 30


async def test_list_pages_and_filters(audit: AuditLog, clock: Clock) -> None:
    await fill(audit, clock, 10)
    assert [r.seq for r in await audit.list(after_seq=3, limit=4)] == [4, 5, 6, 7]
    assert [r.seq for r in await audit.list(actor="op1")] == [2, 4, 6, 8, 10]
    assert await audit.list(action="plate.search") == []


async def test_record_commits_and_rolls_back_with_the_callers_session(db: Database, audit: AuditLog) -> None:
    async def failing_change() -> None:
        async with db.session() as session:
            await audit.append("ops1", "operator", "alarm.ack", "alarm:1", session=session)
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        await failing_change()
    assert await audit.list() == []
    assert await audit.head() == GENESIS
    async with db.session() as session:
        await audit.append("ops1", "operator", "alarm.ack", "alarm:1", session=session)
    assert len(await audit.list()) == 1


async def test_pruned_marker_cannot_be_forged(audit: AuditLog) -> None:
    with pytest.raises(ValueError, match=r"prune\(\)"):
        await audit.append("admin", "admin", "audit.pruned", "audit_log", detail={"upto_seq": 99})


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET outcome = 'denied' WHERE seq = 2",
        "UPDATE audit_log SET seq = seq + 100",
        "DELETE FROM audit_log WHERE seq = 2",
        "DELETE FROM audit_log",
        "UPDATE audit_head SET seq = 1",
        "DELETE FROM audit_head",
        "UPDATE audit_prune_allowance SET upto = -1",
    ],
)
async def test_database_refuses_rewriting_history(db: Database, audit: AuditLog, clock: Clock, statement: str) -> None:
    await fill(audit, clock, 3)
    with pytest.raises(DBAPIError, match=r"append-only|only moves forward"):
        await sql(db, statement)
    assert len(await audit.list()) == 3
    assert (await audit.verify()).ok


async def test_database_refuses_emptying_the_log(db: Database, audit: AuditLog, clock: Clock) -> None:
    await fill(audit, clock, 3)
    # SQLite has no TRUNCATE; its equivalent is the unqualified DELETE (which the triggers also see).
    statement = "TRUNCATE audit_log" if db.dialect == "postgresql" else "DELETE FROM audit_log"
    with pytest.raises(DBAPIError, match="append-only"):
        await sql(db, statement)
    assert len(await audit.list()) == 3


async def test_verify_names_a_record_edited_behind_the_triggers(db: Database, audit: AuditLog, clock: Clock) -> None:
    await fill(audit, clock, 20, seconds=1)
    await drop_guards(db)
    await sql(db, "UPDATE audit_log SET resource = 'alarm:999' WHERE seq = 13")
    report = await audit.verify()
    assert kinds(report) == [(13, "edited")]


async def test_verify_names_a_deleted_record(db: Database, audit: AuditLog, clock: Clock) -> None:
    await fill(audit, clock, 20, seconds=1)
    await drop_guards(db)
    await sql(db, "DELETE FROM audit_log WHERE seq = 8")
    assert kinds(await audit.verify()) == [(8, "deleted")]


async def test_verify_names_swapped_records(db: Database, audit: AuditLog, clock: Clock) -> None:
    await fill(audit, clock, 10, seconds=1)
    await drop_guards(db)
    # Give row 4 the contents of row 5 and vice versa (via a spare seq, since seq is the key).
    await sql(db, "UPDATE audit_log SET seq = 1000 WHERE seq = 4")
    await sql(db, "UPDATE audit_log SET seq = 4 WHERE seq = 5")
    await sql(db, "UPDATE audit_log SET seq = 5 WHERE seq = 1000")
    assert kinds(await audit.verify()) == [(4, "reordered"), (5, "reordered")]


async def test_verify_reports_a_tampered_head(db: Database, audit: AuditLog, clock: Clock) -> None:
    await fill(audit, clock, 5)
    await sql(db, f"UPDATE audit_head SET hash = '{'e' * 64}' WHERE id = 1")
    assert kinds(await audit.verify()) == [(5, "broken_link")]


async def test_verify_reports_records_truncated_from_the_end(db: Database, audit: AuditLog, clock: Clock) -> None:
    await fill(audit, clock, 5)
    await drop_guards(db)
    await sql(db, "DELETE FROM audit_log WHERE seq >= 4")
    assert kinds(await audit.verify()) == [(4, "deleted")]


async def test_concurrent_appends_keep_one_chain(db: Database, audit: AuditLog, clock: Clock) -> None:
    # A second engine stands in for a second process.
    other = create_database(db.url)
    try:
        logs = [audit, AuditLog(other, clock)]
        await asyncio.gather(
            *(logs[i % 2].append(f"u{i}", "operator", "alarm.read", f"alarm:{i}", detail={"i": i}) for i in range(50))
        )
    finally:
        await other.close()
    records = await audit.list(limit=100)
    assert [r.seq for r in records] == list(range(1, 51))
    assert sorted(r.detail["i"] for r in records if r.detail) == list(range(50))
    report = await audit.verify()
    assert report.ok, report.problems
    assert report.checked == 50


async def test_prune_deletes_only_old_records_and_keeps_the_chain_valid(
    db: Database, audit: AuditLog, clock: Clock
) -> None:
    await fill(audit, clock, 10, days=1)  # record i+1 written at T0 + i days
    deleted = await audit.prune(T0 + timedelta(days=4, hours=12))
    assert deleted == 5
    records = await audit.list(limit=100)
    assert [r.seq for r in records] == [6, 7, 8, 9, 10, 11]
    marker = records[-1]
    assert (marker.action, marker.actor) == ("audit.pruned", "system")
    assert marker.detail is not None
    assert (marker.detail["upto_seq"], marker.detail["count"]) == (5, 5)
    assert marker.detail["upto_hash"] == records[0].prev_hash
    report = await audit.verify()
    assert report.ok, report.problems

    # Records past the allowance stay protected, and the chain goes on.
    with pytest.raises(DBAPIError, match="append-only"):
        await sql(db, "DELETE FROM audit_log WHERE seq = 6")
    await fill(audit, clock, 3)
    assert (await audit.verify()).ok

    # A second round moves the anchor on.
    assert await audit.prune(T0 + timedelta(days=8)) == 3
    assert [r.seq for r in await audit.list(limit=3)] == [9, 10, 11]
    assert (await audit.verify()).ok


async def test_prune_stops_at_the_first_record_that_is_not_old(audit: AuditLog, clock: Clock) -> None:
    await fill(audit, clock, 3, days=1)  # seq 1..3 at T0 .. T0+2d
    clock.now = T0 + timedelta(days=30)
    await fill(audit, clock, 1)  # seq 4: new
    clock.now = T0 - timedelta(days=30)
    await fill(audit, clock, 1)  # seq 5: an old timestamp (clock stepped back) after a new record
    clock.now = T0 + timedelta(days=31)
    assert await audit.prune(T0 + timedelta(days=10)) == 3
    assert [r.seq for r in await audit.list()][:2] == [4, 5]
    assert (await audit.verify()).ok


async def test_prune_with_nothing_old_writes_nothing(audit: AuditLog, clock: Clock) -> None:
    assert await audit.prune(T0) == 0
    await fill(audit, clock, 3)
    assert await audit.prune(T0) == 0
    assert len(await audit.list()) == 3


async def test_tampering_after_a_prune_is_still_detected(db: Database, audit: AuditLog, clock: Clock) -> None:
    await fill(audit, clock, 10, days=1)
    await audit.prune(T0 + timedelta(days=4, hours=12))
    await drop_guards(db)
    await sql(db, "DELETE FROM audit_log WHERE seq = 6")  # the new first record
    assert kinds(await audit.verify()) == [(6, "deleted")]
