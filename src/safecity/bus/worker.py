"""The consume loop every domain worker shares: batches, explicit acks, poison events isolated.

A failing batch is retried event by event, so one bad event cannot hold the rest. An event that
still fails stays unacked (redelivered after ack_wait: the store may only be down for a moment)
until its `max_attempts`-th delivery, then it is logged and skipped; it stays in the log, and
resetting the consumer replays it once the cause is fixed. A log that cannot be read is retried
with a back-off; the worker never dies of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from safecity.bus.base import Consumer, Delivery

log = logging.getLogger(__name__)

Handler = Callable[[Sequence[Delivery]], Awaitable[Any]]


async def consume(
    consumer: Consumer,
    handle: Handler,
    stop: asyncio.Event,
    *,
    max_attempts: int = 5,
    batch: int = 500,
    max_backoff_s: float = 10.0,
) -> None:
    backoff = 0.0
    while not stop.is_set():
        if backoff:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
        try:
            deliveries = await consumer.fetch(batch, timeout=0.5)
        except Exception:
            backoff = min(max_backoff_s, max(0.2, backoff * 2))
            log.exception("fetch failed consumer=%s retry_in=%.1fs", consumer.name, backoff)
            continue
        backoff = 0.0
        if not deliveries:
            continue
        try:
            await handle(deliveries)
            done = list(deliveries)
        except Exception:
            log.warning("batch failed, retrying one by one consumer=%s size=%d", consumer.name, len(deliveries))
            done = []
            for delivery in deliveries:
                try:
                    await handle([delivery])
                except Exception:
                    if delivery.attempt < max_attempts:
                        continue
                    log.exception(
                        "skipping event after %d attempts consumer=%s event=%s kind=%s offset=%d",
                        delivery.attempt, consumer.name, delivery.event.id, delivery.event.kind, delivery.offset,
                    )
                done.append(delivery)
        for delivery in done:
            try:
                await consumer.ack(delivery)
            except Exception:
                log.exception("ack failed consumer=%s offset=%d (it will be redelivered)", consumer.name,
                              delivery.offset)
