"""The event log contract every backend keeps.

`append` returns only when the events are durable (SQLite: committed with synchronous=FULL;
JetStream: the stream acknowledged the publish, with `sync_interval: always` on the server).
Consumers are named and durable: they read one event family in log order from an offset, ack each
delivery explicitly, and get unacked deliveries again after `ack_wait` or a restart (at-least-once).
Offsets are positive integers, increasing within a family; their absolute values are backend-specific.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from safecity.events import Event


class EventLogError(RuntimeError):
    """The log could not do what was asked (backend down, bad request)."""


class EventLogUnavailable(EventLogError):
    """The backend cannot be reached; nothing was stored."""


@dataclass(frozen=True, slots=True)
class Appended:
    """Where an appended event landed; `duplicate` when its dedup key was already in the log."""

    event_id: str
    offset: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class StoredEvent:
    offset: int
    event: Event


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event handed to a consumer; `attempt` counts deliveries of this offset to the group."""

    offset: int
    event: Event
    attempt: int


class StartAt(StrEnum):
    BEGINNING = "beginning"
    NEW = "new"


@runtime_checkable
class Consumer(Protocol):
    name: str
    family: str

    async def fetch(self, max_events: int = 100, timeout: float = 1.0) -> list[Delivery]:
        """Wait up to `timeout` seconds for events; return what arrived (possibly nothing)."""
        ...

    async def ack(self, delivery: Delivery) -> None:
        """Mark a delivery processed; it will not be delivered to this consumer again."""
        ...

    async def nak(self, delivery: Delivery) -> None:
        """Hand a delivery back for immediate redelivery."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class EventLog(Protocol):
    backend: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise EventLogUnavailable if the backend cannot serve appends now."""
        ...

    async def append(self, events: Sequence[Event]) -> list[Appended]:
        """Store the events durably, in order; a known dedup key is a no-op (`duplicate=True`)."""
        ...

    async def read(self, family: str, after: int = 0, limit: int = 1000) -> list[StoredEvent]:
        """Events of `family` with offset > `after`, oldest first (replay)."""
        ...

    async def recent(self, kind: str | None = None, limit: int = 100) -> list[StoredEvent]:
        """The last `limit` events (of `kind` if given), oldest first, newest last."""
        ...

    async def consumer(
        self,
        name: str,
        family: str,
        *,
        start: StartAt | int = StartAt.BEGINNING,
        ack_wait: float = 30.0,
    ) -> Consumer:
        """A durable named consumer; an existing one resumes where it left off (`start` is ignored)."""
        ...

    async def reset_consumer(self, name: str, family: str, offset: int = 0) -> None:
        """Move a consumer back (or forward) so it re-reads events after `offset`: replay."""
        ...

    async def prune(self, received_before: float) -> int:
        """Retention: delete events received before this epoch second; returns how many went."""
        ...

    def live(self) -> AsyncIterator[Event]:
        """Every event appended from now on, at most once, for live views (not for processing)."""
        ...
