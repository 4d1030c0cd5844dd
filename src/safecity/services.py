"""The one typed container handed to the app factory, the receivers and the workers.

Built from Settings by `open_services`; everything with a connection is started and closed here, so
no module opens its own database or bus.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from safecity.alarms.service import AlarmService
from safecity.bus import EventLog, open_event_log
from safecity.config import Settings
from safecity.dispatch.service import DispatchService
from safecity.dispatch.tracking import POSITION_HISTORY_RETENTION
from safecity.dispatch.travel import RoadGraphFile
from safecity.security.audit import AuditLog
from safecity.security.passwords import PasswordHasher
from safecity.security.retention import Pruner, RetentionJob
from safecity.security.service import SecurityService
from safecity.store.engine import Database, create_database
from safecity.store.migrate import upgrade

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    settings: Settings
    db: Database
    events: EventLog
    audit: AuditLog
    security: SecurityService
    alarms: AlarmService
    dispatch: DispatchService
    retention: RetentionJob
    clock: Callable[[], datetime] = utcnow


@asynccontextmanager
async def open_services(
    settings: Settings,
    *,
    migrate: bool = True,
    clock: Callable[[], datetime] = utcnow,
    password_hasher: PasswordHasher | None = None,
) -> AsyncIterator[Services]:
    """Connect the store and the event log (migrating the schema first when asked)."""
    settings.ensure_data_dir()
    db = create_database(settings.effective_database_url)
    events = open_event_log(
        settings.effective_bus_url,
        replicas=settings.nats_stream_replicas,
        duplicate_window_s=settings.nats_duplicate_window_s,
        retention_s=settings.event_retention_days * 86400.0,
    )
    try:
        if migrate:
            await upgrade(db)
        await events.start()
        audit = AuditLog(db, clock)
        security = SecurityService(db, settings, clock=clock, audit=audit, hasher=password_hasher)
        log.info(
            "services ready database=%s bus=%s", db.dialect, events.backend,
        )
        alarms = AlarmService(db, events, audit, clock)
        dispatch = DispatchService(db, events, audit, clock, RoadGraphFile(settings.data_dir / "roads.graph.npz"),
                                   auto_assign_p1=settings.dispatch_auto_assign_p1)
        retention = RetentionJob(
            [
                Pruner("events", timedelta(days=settings.event_retention_days),
                       lambda cutoff: events.prune(cutoff.timestamp())),
                Pruner("alarm_history", timedelta(days=settings.alarm_retention_days), alarms.prune_history),
                Pruner("unit_positions", POSITION_HISTORY_RETENTION, dispatch.prune_positions),
                Pruner("audit", timedelta(days=settings.audit_retention_days), audit.prune),
            ],
            audit,
            clock,
        )
        yield Services(settings, db, events, audit, security, alarms, dispatch, retention, clock)
    finally:
        await events.close()
        await db.close()
