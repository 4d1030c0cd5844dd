"""Crash tests with real SIGKILLs: what `append` acknowledged must be in the log afterwards.

(a) both backends: the appending process is killed mid-burst;
(b) NATS: the nats-server itself is killed mid-burst and restarted on the same store directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from safecity.bus import EventLog
from safecity.bus.nats import NatsEventLog
from safecity.bus.sqlite import SqliteEventLog
from tests._servers.nats import NatsServer

APPENDER = Path(__file__).with_name("_appender.py")


class Appender:
    """The child process and the ids it has promised (printed after `append` returned)."""

    def __init__(self, proc: asyncio.subprocess.Process, stderr_path: Path) -> None:
        self.proc = proc
        self.stderr_path = stderr_path
        self.acked: list[str] = []
        self.retries = 0
        self.done = False

    async def read_until(self, count: int, *, within: float = 30.0) -> None:
        """Collect acked ids until `count` have been promised; fail (never hang) after `within` s."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(within):
            while len(self.acked) < count and not self.done:
                line = await self.proc.stdout.readline()
                if not line:
                    raise AssertionError(f"appender exited early:\n{self.stderr_path.read_text()}")
                self._take(line)

    async def read_until_retry(self, *, within: float = 30.0) -> None:
        """Read until an append has failed: the outage reached appends in flight."""
        assert self.proc.stdout is not None
        seen = self.retries
        async with asyncio.timeout(within):
            while self.retries == seen:
                line = await self.proc.stdout.readline()
                if not line:
                    raise AssertionError(f"appender exited early:\n{self.stderr_path.read_text()}")
                self._take(line)

    def _take(self, line: bytes) -> None:
        if not line.endswith(b"\n"):
            return  # cut short by the kill: not a promise
        text = line.decode().strip()
        if text == "DONE":
            self.done = True
        elif text == "RETRY":
            self.retries += 1
        elif text != "READY":
            self.acked.append(text)

    async def kill(self) -> None:
        """SIGKILL, then keep every complete line it managed to write before dying."""
        assert self.proc.stdout is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        async with asyncio.timeout(10):
            rest = await self.proc.stdout.read()
            await self.proc.wait()
        for line in rest.splitlines(keepends=True):
            self._take(line)


@pytest.fixture
async def spawn_appender(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Appender]]]:
    children: list[Appender] = []

    async def spawn(url: str, family: str, *extra: str) -> Appender:
        stderr_path = tmp_path / f"appender-{len(children)}.stderr"
        with stderr_path.open("wb") as stderr:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(APPENDER),
                url,
                family,
                *extra,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        child = Appender(proc, stderr_path)
        children.append(child)
        return child

    yield spawn
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            await child.kill()


async def stored_ids(log: EventLog, family: str) -> list[str]:
    ids: list[str] = []
    after = 0
    while True:
        page = await log.read(family, after=after, limit=1000)
        if not page:
            return ids
        ids += [s.event.id for s in page]
        after = page[-1].offset


def new_family() -> str:
    return "crash" + uuid.uuid4().hex[:10]


@pytest.fixture(params=["sqlite", "nats"])
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "nats":
        server: NatsServer = request.getfixturevalue("nats_server")
        return server.url
    return f"sqlite:///{tmp_path / 'events.db'}"


def open_log(url: str) -> EventLog:
    return NatsEventLog.from_url(url) if url.startswith("nats://") else SqliteEventLog.from_url(url)


async def test_killed_appender_loses_no_acknowledged_event(
    log_url: str, spawn_appender: Callable[..., Awaitable[Appender]]
) -> None:
    family = new_family()
    child = await spawn_appender(log_url, family, "--producers", "8", "--total", "40000")
    await child.read_until(400)
    await child.kill()
    assert not child.done, "the burst ended before the kill; raise --total"

    log = open_log(log_url)
    await log.start()
    try:
        stored = await stored_ids(log, family)
        missing = set(child.acked) - set(stored)
        assert not missing, f"{len(missing)} of {len(child.acked)} acknowledged events lost"
        assert len(stored) == len(set(stored))
        # and the log still takes appends after the crash
        await log.ping()
    finally:
        await log.close()


async def test_killed_nats_server_loses_no_acknowledged_event(
    make_nats_server: Callable[[], NatsServer], spawn_appender: Callable[..., Awaitable[Appender]]
) -> None:
    server = make_nats_server()
    family = new_family()
    child = await spawn_appender(
        server.url, family, "--producers", "16", "--total", "200000", "--timeout", "1"
    )
    for _ in range(2):
        await child.read_until(len(child.acked) + 300)
        server.kill()  # mid-burst: publishes in flight, acks on the wire
        await child.read_until_retry()  # appends now fail and are retried with the same ids
        server.start()  # same port, same store directory
        await child.read_until(len(child.acked) + 300, within=60)  # reconnected, acking again
    await child.kill()
    assert not child.done, "the burst ended before the kill; raise --total"

    log = NatsEventLog.from_url(server.url)
    await log.start()
    try:
        stored = await stored_ids(log, family)
        missing = set(child.acked) - set(stored)
        assert not missing, f"{len(missing)} of {len(child.acked)} acknowledged events lost"
        assert len(stored) == len(set(stored)), "a retried append was stored twice"
    finally:
        await log.close()
