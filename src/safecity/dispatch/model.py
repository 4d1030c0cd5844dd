"""Tables of dispatch: incidents and their timeline, units, assignments, the units' position history."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from safecity.store.base import Base, UtcDateTime


class IncidentRow(Base):
    """One incident from creation to closing; each lifecycle step keeps its time and its actor."""

    __tablename__ = "incidents"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    priority: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), index=True)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    address: Mapped[str] = mapped_column(String(300))
    district: Mapped[str | None] = mapped_column(String(100), nullable=True)
    source: Mapped[str] = mapped_column(String(16))  # alarm | sos | camera | sensor | phone | officer
    source_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)  # e.g. the alarm id
    narrative: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    created_by: Mapped[str] = mapped_column(String(64))
    dispatched_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    dispatched_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    en_route_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    en_route_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    on_scene_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    on_scene_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cleared_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    cleared_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)  # optimistic lock

    __table_args__ = (
        # a redelivered request (same alarm) must not open a second incident; NULL refs never collide
        UniqueConstraint("source", "source_ref", name="uq_incidents_source_ref"),
        Index("ix_incidents_open_queue", "status", "priority", "created_at"),
    )


class IncidentTimelineRow(Base):
    """Everything that happened to an incident, in order: who, when, which unit, what."""

    __tablename__ = "incident_timeline"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(String(36), ForeignKey("incidents.id"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    unit_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")


class UnitRow(Base):
    """A unit that can be sent: a rapid-response group, a patrol car, a fire engine, a drone."""

    __tablename__ = "units"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # e.g. "RRG-12"
    callsign: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    crew: Mapped[list[str]] = mapped_column(JSON, default=list)
    capabilities: Mapped[list[str]] = mapped_column(JSON, default=list)
    home_lat: Mapped[float] = mapped_column(Float)
    home_lon: Mapped[float] = mapped_column(Float)
    on_shift: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), index=True)
    current_incident: Mapped[str | None] = mapped_column(String(36), ForeignKey("incidents.id"), nullable=True)
    last_lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_position_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)  # optimistic lock: two dispatchers, one unit


class AssignmentRow(Base):
    """One unit's part in one incident, with its own milestones."""

    __tablename__ = "assignments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(String(36), ForeignKey("incidents.id"), index=True)
    unit_id: Mapped[str] = mapped_column(String(32), ForeignKey("units.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean)
    assigned_at: Mapped[datetime] = mapped_column(UtcDateTime)
    assigned_by: Mapped[str] = mapped_column(String(64))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    en_route_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    on_scene_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    cleared_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    eta_s: Mapped[float | None] = mapped_column(Float, nullable=True)  # the road ETA when assigned

    __table_args__ = (
        # the database itself refuses a second active assignment of one unit: two dispatchers
        # racing for the same crew cannot both win, whatever the application does
        Index("uq_assignments_active_unit", "unit_id", unique=True,
              sqlite_where=text("active"), postgresql_where=text("active")),
    )


class UnitPositionRow(Base):
    """A unit's position history (one row per fix), kept for track replay until retention drops it."""

    __tablename__ = "unit_positions"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the fix's event: redelivery-safe
    unit_id: Mapped[str] = mapped_column(String(32), ForeignKey("units.id"))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    speed_mps: Mapped[float | None] = mapped_column(Float, nullable=True)
    heading_deg: Mapped[float | None] = mapped_column(Float, nullable=True)
    accuracy_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    transport: Mapped[str] = mapped_column(String(16))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)  # retention deletes by this

    __table_args__ = (Index("ix_unit_positions_unit_track", "unit_id", "recorded_at"),)
