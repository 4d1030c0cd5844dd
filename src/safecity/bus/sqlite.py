"""The embedded event log: one SQLite file in WAL mode with group commit.

Appends from any number of coroutines queue up; one writer thread drains the queue and stores
everything it found in a single transaction (synchronous=FULL, so the commit is fsynced), then
releases all the waiting appenders together. Under load, batches grow by themselves and the cost
of the fsync is shared. Consumers live in this process; their acked offsets are persisted by the
same writer, piggy-backing on the next transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from safecity.bus.base import (
    Appended,
    Delivery,
    EventLogError,
    EventLogUnavailable,
    StartAt,
    StoredEvent,
)
from safecity.bus.fanout import Fanout
from safecity.events import Event

log = logging.getLogger(__name__)
T = TypeVar("T")

SCHEMA_VERSION = 2  # the file format of the log; a file of another format is refused, never guessed at
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    "offset"    INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL,
    family      TEXT NOT NULL,
    dedup_key   TEXT NOT NULL,  -- the event's dedup key, or its id; a duplicate only within the window
    event_id    TEXT NOT NULL,
    received_at REAL NOT NULL,
    appended_at REAL NOT NULL,  -- the log's own clock: the dedup window is measured on it
    body        BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_family ON events (family, "offset");
CREATE INDEX IF NOT EXISTS events_dedup ON events (dedup_key, appended_at);
CREATE TABLE IF NOT EXISTS consumers (
    name   TEXT NOT NULL,
    family TEXT NOT NULL,
    acked  INTEGER NOT NULL,
    PRIMARY KEY (name, family)
);
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'events', 0 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'events');
"""


def path_from_url(url: str) -> Path:
    if not url.startswith("sqlite:///"):
        raise EventLogError(f"not a sqlite event log URL: {url!r} (want sqlite:///path/events.db)")
    return Path(url.removeprefix("sqlite:///"))


@dataclass
class _AppendOp:
    events: Sequence[Event]
    future: asyncio.Future[list[Appended]]


@dataclass
class _ConsumerState:
    name: str
    family: str
    acked: int  # every offset <= acked is done
    cursor: int  # highest offset handed out
    ack_wait: float
    pending: dict[int, tuple[float, int, Event]] = field(default_factory=dict)  # offset -> deadline, n, ev
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # members of a group take turns reading

    def floor(self) -> int:
        return (min(self.pending) - 1) if self.pending else self.cursor


class SqliteEventLog:
    backend = "sqlite"

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_ms: int = 10_000,
        dedup_window_s: float = 7200.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self._wall_clock = wall_clock
        # like JetStream's duplicate window: a key repeats as a duplicate only this long, so keys
        # that legitimately come back much later (a wrapped panel sequence) are new events
        self.dedup_window_s = dedup_window_s
        self._busy_timeout_ms = busy_timeout_ms
        self._queue: asyncio.Queue[_AppendOp | None] = asyncio.Queue()
        self._commits: dict[tuple[str, str], int] = {}
        self._writer_pool = ThreadPoolExecutor(1, thread_name_prefix="eventlog-writer")
        self._reader_pool = ThreadPoolExecutor(2, thread_name_prefix="eventlog-reader")
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._writer_task: asyncio.Task[None] | None = None
        self._wconn: sqlite3.Connection | None = None
        self._appended = asyncio.Event()
        self._consumers: dict[tuple[str, str], _ConsumerState] = {}
        self._fanout: Fanout[Event] = Fanout()
        self._closed = False

    @classmethod
    def from_url(cls, url: str, *, dedup_window_s: float = 7200.0) -> SqliteEventLog:
        return cls(path_from_url(url), dedup_window_s=dedup_window_s)

    # -- lifecycle -----------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()

        def open_writer() -> sqlite3.Connection:
            conn = self._connect()
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            exists = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'events'").fetchone()
            if exists and version != SCHEMA_VERSION:
                conn.close()
                raise EventLogError(
                    f"{self.path} has event log format {version}, this version reads {SCHEMA_VERSION}"
                )
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            return conn

        self._wconn = await loop.run_in_executor(self._writer_pool, open_writer)
        self._writer_task = asyncio.create_task(self._writer(), name="eventlog-writer")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer_task is not None:
            await self._queue.put(None)
            await self._writer_task
        self._fanout.close()
        loop = asyncio.get_running_loop()
        if self._wconn is not None:
            await loop.run_in_executor(self._writer_pool, self._wconn.close)
        self._writer_pool.shutdown(wait=True)
        self._reader_pool.shutdown(wait=True)
        for conn in self._reader_conns:
            conn.close()

    async def ping(self) -> None:
        if self._closed or self._writer_task is None or self._writer_task.done():
            raise EventLogUnavailable("sqlite event log is not running")
        await self._read(lambda c: c.execute("SELECT 1").fetchone())

    # -- appending -----------------------------------------------------------------------------
    async def append(self, events: Sequence[Event]) -> list[Appended]:
        if not events:
            return []
        if self._closed or self._writer_task is None:
            raise EventLogUnavailable("sqlite event log is closed")
        future: asyncio.Future[list[Appended]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_AppendOp(events, future))
        return await future

    async def _writer(self) -> None:
        loop = asyncio.get_running_loop()
        stop = False
        while not stop:
            first = await self._queue.get()
            ops: list[_AppendOp] = []
            if first is None:
                stop = True
            else:
                ops.append(first)
            while not self._queue.empty():
                op = self._queue.get_nowait()
                if op is None:
                    stop = True
                else:
                    ops.append(op)
            commits, self._commits = self._commits, {}
            if not ops and not commits:
                continue
            try:
                results = await loop.run_in_executor(self._writer_pool, self._write_batch, ops, commits)
            except Exception as exc:  # the batch failed as a whole: nothing in it is durable
                log.exception("event log batch failed size=%d", len(ops))
                for key, acked in commits.items():
                    self._commits.setdefault(key, acked)
                for op in ops:
                    if not op.future.done():
                        op.future.set_exception(EventLogError(f"append failed: {exc}"))
                continue
            for op, result in zip(ops, results, strict=True):
                if not op.future.done():
                    op.future.set_result(result)
                for appended, event in zip(result, op.events, strict=True):
                    if not appended.duplicate:
                        self._fanout.publish(event)
            if ops:
                self._appended.set()
                self._appended = asyncio.Event()

    def _write_batch(
        self, ops: list[_AppendOp], commits: dict[tuple[str, str], int]
    ) -> list[list[Appended]]:
        """One transaction for everything queued: look up known keys, insert the rest in one go.

        With AUTOINCREMENT and a single writer the new offsets are consecutive after the stored
        sequence, so no per-row round trip is needed to learn them.
        """
        conn = self._wconn
        assert conn is not None
        keyed = [(event.dedup_key or event.id, event) for op in ops for event in op.events]
        appended_at = self._wall_clock()
        window_start = appended_at - self.dedup_window_s
        conn.execute("BEGIN IMMEDIATE")
        try:
            known: dict[str, tuple[int, str]] = {}
            for chunk_start in range(0, len(keyed), 500):
                chunk = [key for key, _ in keyed[chunk_start : chunk_start + 500]]
                marks = ",".join("?" * len(chunk))
                for offset, key, event_id in conn.execute(
                    f'SELECT "offset", dedup_key, event_id FROM events WHERE dedup_key IN ({marks}) '  # noqa: S608
                    "AND appended_at >= ? ORDER BY \"offset\"",
                    [*chunk, window_start],
                ):
                    known.setdefault(key, (offset, event_id))
            (seq,) = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
            rows = []
            placed: list[Appended] = []
            for key, event in keyed:
                hit = known.get(key)
                if hit is not None:
                    placed.append(Appended(hit[1], hit[0], duplicate=True))
                    continue
                seq += 1
                known[key] = (seq, event.id)
                received = event.received_at.timestamp()
                rows.append((seq, event.kind, event.family, key, event.id, received, appended_at, event.to_json()))
                placed.append(Appended(event.id, seq, duplicate=False))
            conn.executemany(
                'INSERT INTO events ("offset", kind, family, dedup_key, event_id, received_at, appended_at, body) '
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            for (name, family), acked in commits.items():
                conn.execute(
                    "INSERT INTO consumers (name, family, acked) VALUES (?, ?, ?) "
                    "ON CONFLICT (name, family) DO UPDATE SET acked = excluded.acked",
                    (name, family, acked),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        results: list[list[Appended]] = []
        position = 0
        for op in ops:
            results.append(placed[position : position + len(op.events)])
            position += len(op.events)
        return results

    # -- reading -------------------------------------------------------------------------------
    def _reader_conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            self._reader_conns.append(conn)
        return conn

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader_pool, lambda: fn(self._reader_conn()))

    async def read(self, family: str, after: int = 0, limit: int = 1000) -> list[StoredEvent]:
        rows = await self._read(
            lambda c: c.execute(
                'SELECT "offset", body FROM events WHERE family = ? AND "offset" > ? '
                'ORDER BY "offset" LIMIT ?',
                (family, after, limit),
            ).fetchall()
        )
        return [StoredEvent(offset, Event.from_json(body)) for offset, body in rows]

    async def recent(self, kind: str | None = None, limit: int = 100) -> list[StoredEvent]:
        if kind is None:
            sql, args = 'SELECT "offset", body FROM events ORDER BY "offset" DESC LIMIT ?', (limit,)
        else:
            sql = (
                'SELECT "offset", body FROM events WHERE family = ? AND kind = ? '
                'ORDER BY "offset" DESC LIMIT ?'
            )
            args = (kind.split(".", 1)[0], kind, limit)  # type: ignore[assignment]
        rows = await self._read(lambda c: c.execute(sql, args).fetchall())
        return [StoredEvent(offset, Event.from_json(body)) for offset, body in reversed(rows)]

    async def count(self) -> int:
        row = await self._read(lambda c: c.execute("SELECT count(*) FROM events").fetchone())
        return int(row[0])

    async def prune(self, received_before: float) -> int:
        """Delete events received before the given epoch second (retention)."""
        loop = asyncio.get_running_loop()

        def delete() -> int:
            assert self._wconn is not None
            # received_at follows the offset closely; the offset bound keeps this an index range delete
            row = self._wconn.execute(
                'SELECT min("offset") FROM events WHERE received_at >= ?', (received_before,)
            ).fetchone()
            if row[0] is None:
                cur = self._wconn.execute("DELETE FROM events WHERE received_at < ?", (received_before,))
            else:
                cur = self._wconn.execute(
                    'DELETE FROM events WHERE "offset" < ? AND received_at < ?', (row[0], received_before)
                )
            return cur.rowcount

        return await loop.run_in_executor(self._writer_pool, delete)

    # -- consumers -----------------------------------------------------------------------------
    async def consumer(
        self,
        name: str,
        family: str,
        *,
        start: StartAt | int = StartAt.BEGINNING,
        ack_wait: float = 30.0,
    ) -> SqliteConsumer:
        key = (name, family)
        state = self._consumers.get(key)
        if state is None:
            row = await self._read(
                lambda c: c.execute(
                    "SELECT acked FROM consumers WHERE name = ? AND family = ?", (name, family)
                ).fetchone()
            )
            if row is not None:
                acked = int(row[0])
            elif start == StartAt.NEW:
                last = await self._read(
                    lambda c: c.execute('SELECT coalesce(max("offset"), 0) FROM events').fetchone()
                )
                acked = int(last[0])
            elif start == StartAt.BEGINNING:
                acked = 0
            else:
                acked = int(start)
            state = _ConsumerState(name, family, acked=acked, cursor=acked, ack_wait=ack_wait)
            self._consumers[key] = state
            self._commits[key] = acked
        return SqliteConsumer(self, state)

    async def reset_consumer(self, name: str, family: str, offset: int = 0) -> None:
        state = self._consumers.get((name, family))
        if state is not None:
            state.pending.clear()
            state.acked = state.cursor = offset
        self._commits[(name, family)] = offset
        await self._queue.put(_AppendOp([], asyncio.get_running_loop().create_future()))

    def _commit(self, state: _ConsumerState) -> None:
        floor = state.floor()
        if floor != state.acked:
            state.acked = floor
            self._commits[(state.name, state.family)] = floor
            if self._queue.empty():
                # wake the writer so the offset is persisted soon even when nothing is appended
                self._queue.put_nowait(_AppendOp([], asyncio.get_running_loop().create_future()))

    async def live(self) -> AsyncIterator[Event]:
        async with self._fanout.subscribe() as queue:
            while True:
                event = await queue.get()
                if event is None:
                    return
                yield event



class SqliteConsumer:
    def __init__(self, log_: SqliteEventLog, state: _ConsumerState) -> None:
        self._log = log_
        self._state = state
        self.name = state.name
        self.family = state.family

    async def fetch(self, max_events: int = 100, timeout: float = 1.0) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        state = self._state
        while True:
            wakeup = self._log._appended
            async with state.lock:
                out = self._redeliveries(max_events)
                if len(out) < max_events:
                    rows = await self._log.read(state.family, after=state.cursor, limit=max_events - len(out))
                    now = time.monotonic()
                    for stored in rows:
                        state.pending[stored.offset] = (now + state.ack_wait, 1, stored.event)
                        state.cursor = stored.offset
                        out.append(Delivery(stored.offset, stored.event, 1))
            if out:
                return out
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            next_due = min((d for d, _, _ in state.pending.values()), default=None)
            if next_due is not None:
                remaining = min(remaining, max(0.0, next_due - time.monotonic()) + 0.001)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), remaining)

    def _redeliveries(self, max_events: int) -> list[Delivery]:
        now = time.monotonic()
        out: list[Delivery] = []
        state = self._state
        for offset in sorted(state.pending):
            deadline, attempt, event = state.pending[offset]
            if deadline <= now:
                state.pending[offset] = (now + state.ack_wait, attempt + 1, event)
                out.append(Delivery(offset, event, attempt + 1))
                if len(out) >= max_events:
                    break
        return out

    async def ack(self, delivery: Delivery) -> None:
        if self._state.pending.pop(delivery.offset, None) is not None:
            self._log._commit(self._state)

    async def nak(self, delivery: Delivery) -> None:
        item = self._state.pending.get(delivery.offset)
        if item is not None:
            self._state.pending[delivery.offset] = (0.0, item[1], item[2])
            self._log._appended.set()
            self._log._appended = asyncio.Event()

    async def close(self) -> None:
        return None
