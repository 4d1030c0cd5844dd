"""The durable event log in the middle of the platform; the URL picks the backend."""

from __future__ import annotations

from safecity.bus.base import (
    Appended,
    Consumer,
    Delivery,
    EventLog,
    EventLogError,
    EventLogUnavailable,
    StartAt,
    StoredEvent,
)


def open_event_log(url: str, **options: object) -> EventLog:
    """`sqlite:///path` → embedded log; `nats://host:port[,nats://…]` → JetStream."""
    if url.startswith("sqlite:///"):
        from safecity.bus.sqlite import SqliteEventLog

        window = options.get("duplicate_window_s")
        return SqliteEventLog.from_url(url, dedup_window_s=float(window) if isinstance(window, int | float) else 7200.0)
    if url.startswith(("nats://", "tls://")):
        from safecity.bus.nats import NatsEventLog

        return NatsEventLog.from_url(url, **options)  # type: ignore[arg-type]
    raise EventLogError(f"unsupported event log URL {url!r}")


__all__ = [
    "Appended",
    "Consumer",
    "Delivery",
    "EventLog",
    "EventLogError",
    "EventLogUnavailable",
    "StartAt",
    "StoredEvent",
    "open_event_log",
]
