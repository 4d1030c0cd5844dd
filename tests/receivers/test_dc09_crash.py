"""Crash test of the DC-09 receiver: `safecity serve --role receivers` is SIGKILLed mid-burst.

The simulated panels keep reporting, re-send what was in flight when the connection died, and the
restarted receiver (same data dir, same port) takes the re-sends. Afterwards every frame that got an
ACK must be in the event log, and no (account, sequence, content) may be there twice: a frame that
was committed but not ACKed before the kill comes back as a re-send and must be recognised.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections import Counter
from pathlib import Path

from safecity.alarms.events import LinkTestReceived, SignalReceived
from safecity.bus.sqlite import SqliteEventLog
from safecity.config import Settings
from safecity.events import Event
from safecity.services import open_services
from safecity.simulate.panels import PanelSimulator, demo_accounts, provision

ACCOUNTS = demo_accounts(24, seed=11)
BURST = 500
ACKS_BEFORE_KILL = 100


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ReceiverProcess:
    """`safecity serve --role receivers` on a data dir and port; its stderr kept for failure messages."""

    def __init__(self, data_dir: Path, port: int, log_dir: Path) -> None:
        self.env = {
            **os.environ,
            "SAFECITY_DATA_DIR": str(data_dir),
            "SAFECITY_DC09_PORT": str(port),
            "SAFECITY_HTTP_PORT": str(free_port()),
            "SAFECITY_LOG_LEVEL": "WARNING",
        }
        self.port = port
        self.log_dir = log_dir
        self.procs: list[asyncio.subprocess.Process] = []

    def stderr(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.log_dir.glob("receiver-*.stderr")))

    async def start(self, *, within: float = 30.0) -> None:
        """Start it and wait until the port accepts connections."""
        path = self.log_dir / f"receiver-{len(self.procs)}.stderr"
        with path.open("wb") as stderr:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "safecity", "serve", "--role", "receivers",
                env=self.env, stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
            )
        self.procs.append(proc)
        async with asyncio.timeout(within):
            while True:
                assert proc.returncode is None, f"receiver exited:\n{self.stderr()}"
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
                writer.close()
                await writer.wait_closed()
                return

    async def kill(self) -> None:
        proc = self.procs[-1]
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
        async with asyncio.timeout(10):
            await proc.wait()

    async def stop(self) -> None:
        proc = self.procs[-1]
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            assert await proc.wait() == 0, self.stderr()

    async def kill_all(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()


async def logged_alarm_events(path: Path) -> list[Event]:
    log = SqliteEventLog(path)
    await log.start()
    try:
        out: list[Event] = []
        after = 0
        while page := await log.read("alarm", after=after):
            out += [stored.event for stored in page]
            after = page[-1].offset
        return out
    finally:
        await log.close()


def content_of(event: Event) -> tuple[object, ...]:
    """(account, sequence, content) as the log holds it: what a double recording would repeat."""
    payload = event.typed()
    if isinstance(payload, LinkTestReceived):
        return (payload.account, payload.sequence, "NULL")
    assert isinstance(payload, SignalReceived)
    return (payload.account, payload.sequence, payload.protocol, payload.code, payload.zone, payload.partition)


async def wait_for_acks(sim: PanelSimulator, count: int, receiver: ReceiverProcess, within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        while sim.stats.acked < count:
            assert receiver.procs[-1].returncode is None, f"receiver exited:\n{receiver.stderr()}"
            await asyncio.sleep(0.01)


async def test_killed_receiver_loses_no_acked_alarm_and_records_none_twice(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with open_services(Settings(data_dir=data_dir)) as services:
        assert await provision(services, ACCOUNTS) == len(ACCOUNTS)
    receiver = ReceiverProcess(data_dir, free_port(), tmp_path)
    sim = PanelSimulator("127.0.0.1", receiver.port, ACCOUNTS, rate_per_s=0, link_test_interval_s=1.0,
                         connections=12, ack_timeout_s=1.0, max_retries=50, seed=5)
    try:
        await receiver.start()
        sim.burst(BURST)
        await sim.start()
        await wait_for_acks(sim, ACKS_BEFORE_KILL, receiver)
        await receiver.kill()  # mid-burst: frames in the socket buffers, appends and ACKs in flight
        acked_at_kill, sent_at_kill = sim.stats.acked, sim.stats.sent
        assert sim.outstanding > 0, "the burst ended before the kill; raise BURST"
        await receiver.start()
        sim.stop_generating()  # no more link tests; the rest of the burst and the re-sends go out
        assert await sim.drain(30), f"still {sim.outstanding} outstanding: {sim.stats.summary()}"
        await sim.close()
        await receiver.stop()
    finally:
        await sim.close()
        await receiver.kill_all()

    assert sent_at_kill > acked_at_kill, "nothing was in flight at the kill"
    assert sim.stats.retries > 0 and sim.stats.reconnects > 0, sim.stats.summary()
    assert sim.unacked == [], [r for r in sim.unacked][:5]
    events = [e for e in await logged_alarm_events(data_dir / "events.db") if e.source.startswith("dc09/")]
    stored_keys = {event.dedup_key for event in events}
    missing = [r for r in sim.acked
               if r.dedup_key not in stored_keys and f"dc09:{r.dedup_key}:0" not in stored_keys]
    assert not missing, f"{len(missing)} of {len(sim.acked)} ACKed frames are not in the log: {missing[:3]}"
    twice = [item for item, count in Counter(content_of(event) for event in events).items() if count > 1]
    assert not twice, f"recorded twice: {twice[:5]}"
    assert len(events) == len(sim.acked)  # each simulated message reports exactly one event
