"""At-most-once fan-out of live events to any number of in-process subscribers.

A slow subscriber loses events (its queue is bounded) rather than slowing the log: live views
re-read state over REST when they see a gap.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class Fanout(Generic[T]):
    def __init__(self, queue_size: int = 10_000) -> None:
        self._queue_size = queue_size
        self._subscribers: set[asyncio.Queue[T | None]] = set()
        self.dropped = 0

    def publish(self, item: T) -> None:
        for queue in self._subscribers:
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                self.dropped += 1

    def close(self) -> None:
        for queue in self._subscribers:
            while True:
                try:
                    queue.put_nowait(None)
                    break
                except asyncio.QueueFull:
                    queue.get_nowait()

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[T | None]]:
        queue: asyncio.Queue[T | None] = asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)
