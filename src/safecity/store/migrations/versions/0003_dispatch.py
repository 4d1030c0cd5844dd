"""Dispatch: incidents and their timeline, units, assignments, unit position history.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from safecity.store.base import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("address", sa.String(300), nullable=False),
        sa.Column("district", sa.String(100), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("source_ref", sa.String(64), nullable=True),
        sa.Column("narrative", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("dispatched_at", UtcDateTime(), nullable=True),
        sa.Column("dispatched_by", sa.String(64), nullable=True),
        sa.Column("en_route_at", UtcDateTime(), nullable=True),
        sa.Column("en_route_by", sa.String(64), nullable=True),
        sa.Column("on_scene_at", UtcDateTime(), nullable=True),
        sa.Column("on_scene_by", sa.String(64), nullable=True),
        sa.Column("cleared_at", UtcDateTime(), nullable=True),
        sa.Column("cleared_by", sa.String(64), nullable=True),
        sa.Column("closed_at", UtcDateTime(), nullable=True),
        sa.Column("closed_by", sa.String(64), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
        sa.UniqueConstraint("source", "source_ref", name="uq_incidents_source_ref"),
    )
    op.create_index(op.f("ix_incidents_status"), "incidents", ["status"])
    op.create_index(op.f("ix_incidents_created_at"), "incidents", ["created_at"])
    op.create_index("ix_incidents_open_queue", "incidents", ["status", "priority", "created_at"])
    op.create_table(
        "incident_timeline",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.String(36), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("unit_id", sa.String(32), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"],
                                name=op.f("fk_incident_timeline_incident_id_incidents")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_timeline")),
    )
    op.create_index(op.f("ix_incident_timeline_incident_id"), "incident_timeline", ["incident_id"])
    op.create_table(
        "units",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("callsign", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("crew", sa.JSON(), nullable=False),
        sa.Column("capabilities", sa.JSON(), nullable=False),
        sa.Column("home_lat", sa.Float(), nullable=False),
        sa.Column("home_lon", sa.Float(), nullable=False),
        sa.Column("on_shift", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("current_incident", sa.String(36), nullable=True),
        sa.Column("last_lat", sa.Float(), nullable=True),
        sa.Column("last_lon", sa.Float(), nullable=True),
        sa.Column("last_position_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["current_incident"], ["incidents.id"],
                                name=op.f("fk_units_current_incident_incidents")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_units")),
    )
    op.create_index(op.f("ix_units_status"), "units", ["status"])
    op.create_table(
        "assignments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.String(36), nullable=False),
        sa.Column("unit_id", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("assigned_at", UtcDateTime(), nullable=False),
        sa.Column("assigned_by", sa.String(64), nullable=False),
        sa.Column("acknowledged_at", UtcDateTime(), nullable=True),
        sa.Column("en_route_at", UtcDateTime(), nullable=True),
        sa.Column("on_scene_at", UtcDateTime(), nullable=True),
        sa.Column("cleared_at", UtcDateTime(), nullable=True),
        sa.Column("eta_s", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], name=op.f("fk_assignments_incident_id_incidents")),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name=op.f("fk_assignments_unit_id_units")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignments")),
    )
    op.create_index(op.f("ix_assignments_incident_id"), "assignments", ["incident_id"])
    op.create_index(op.f("ix_assignments_unit_id"), "assignments", ["unit_id"])
    # one active assignment per unit, enforced by the database (partial unique index, both backends)
    op.create_index("uq_assignments_active_unit", "assignments", ["unit_id"], unique=True,
                    sqlite_where=sa.text("active"), postgresql_where=sa.text("active"))
    op.create_table(
        "unit_positions",
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("unit_id", sa.String(32), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("speed_mps", sa.Float(), nullable=True),
        sa.Column("heading_deg", sa.Float(), nullable=True),
        sa.Column("accuracy_m", sa.Float(), nullable=True),
        sa.Column("transport", sa.String(16), nullable=False),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name=op.f("fk_unit_positions_unit_id_units")),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_unit_positions")),
    )
    op.create_index(op.f("ix_unit_positions_received_at"), "unit_positions", ["received_at"])
    op.create_index("ix_unit_positions_unit_track", "unit_positions", ["unit_id", "recorded_at"])


def downgrade() -> None:
    op.drop_table("unit_positions")
    op.drop_table("assignments")
    op.drop_table("units")
    op.drop_table("incident_timeline")
    op.drop_table("incidents")
