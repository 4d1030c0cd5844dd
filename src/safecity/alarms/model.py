"""Tables of the alarm receiving centre: accounts (protected objects), alarms, their history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from safecity.store.base import Base, UtcDateTime


class AlarmAccountRow(Base):
    """A protected object and its panel: apartment, facility, corridor panic button, fire panel."""

    __tablename__ = "alarm_accounts"

    number: Mapped[str] = mapped_column(String(16), primary_key=True)  # DC-09 account, hex
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(300))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    key_hex: Mapped[str | None] = mapped_column(String(64), nullable=True)
    link_test_interval_s: Mapped[int] = mapped_column(Integer, default=0)  # 0 = not supervised
    clock_offset_s: Mapped[int] = mapped_column(Integer, default=0)  # panels that stamp local time
    last_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    link_failed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    contract_status: Mapped[str] = mapped_column(String(32), default="active")
    zones: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    contacts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AlarmRow(Base):
    """An alarm episode in the operator queue."""

    __tablename__ = "alarms"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account: Mapped[str] = mapped_column(String(16), ForeignKey("alarm_accounts.number"), index=True)
    priority: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), index=True)
    category: Mapped[str] = mapped_column(String(32))
    code: Mapped[str] = mapped_column(String(16))
    zone: Mapped[str | None] = mapped_column(String(16), nullable=True)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_signal_at: Mapped[datetime] = mapped_column(UtcDateTime)
    signal_count: Mapped[int] = mapped_column(Integer, default=1)
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    resolution: Mapped[str | None] = mapped_column(String(32), nullable=True)
    incident_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)  # optimistic lock: no two operators

    __table_args__ = (Index("ix_alarms_open_queue", "status", "priority", "opened_at"),)


class AlarmSignalRow(Base):
    """Every decoded signal of an account (the account history), linked to its alarm if any."""

    __tablename__ = "alarm_signals"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account: Mapped[str] = mapped_column(String(16), index=True)
    alarm_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("alarms.id"), nullable=True, index=True)
    code: Mapped[str] = mapped_column(String(16))
    zone: Mapped[str | None] = mapped_column(String(16), nullable=True)
    category: Mapped[str] = mapped_column(String(32))
    priority: Mapped[int] = mapped_column(Integer)
    is_restore: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class AlarmActionRow(Base):
    """The operator's action log on one alarm."""

    __tablename__ = "alarm_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alarm_id: Mapped[str] = mapped_column(String(36), ForeignKey("alarms.id"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")
