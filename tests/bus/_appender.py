"""Child process for the crash tests: append in a loop and report each event id once it is durable.

    python tests/bus/_appender.py URL FAMILY [--producers N] [--total N] [--seconds S] [--timeout S]

Every producer appends one event per call; an id is printed (and flushed) only after `append`
returned for it, so every printed line is a promise the parent can hold the log to after a SIGKILL.
An append that fails (the server is gone) is retried with the same event: its id, and so its
dedup key, stays the same, so a retry after an unknown outcome is not stored twice. Each failed attempt
prints `RETRY`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime

from safecity.bus import EventLog, EventLogError, open_event_log
from safecity.bus.nats import NatsEventLog
from safecity.events import Event


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("family")
    parser.add_argument("--producers", type=int, default=8)
    parser.add_argument("--total", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args()

    log: EventLog = (
        NatsEventLog.from_url(args.url, timeout_s=args.timeout)
        if args.url.startswith("nats://")
        else open_event_log(args.url)
    )
    await log.start()
    deadline = time.monotonic() + args.seconds
    per_producer = args.total // args.producers
    emit("READY")

    async def produce(producer: int) -> None:
        for i in range(per_producer):
            event = Event(
                kind=f"{args.family}.burst",
                source=f"appender-{producer}",
                occurred_at=datetime.now(UTC),
                payload={"producer": producer, "i": i},
            )
            while True:
                if time.monotonic() > deadline:
                    return
                try:
                    await log.append([event])
                    break
                except EventLogError:
                    emit("RETRY")
                    await asyncio.sleep(0.05)
            emit(event.id)

    await asyncio.gather(*(produce(p) for p in range(args.producers)))
    await log.close()
    emit("DONE")


if __name__ == "__main__":
    asyncio.run(main())
