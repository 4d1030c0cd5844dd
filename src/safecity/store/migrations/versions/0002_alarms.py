"""Alarm receiving centre: accounts, alarm episodes, signal history, operator actions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from safecity.store.base import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alarm_accounts",
        sa.Column("number", sa.String(16), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("address", sa.String(300), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("key_hex", sa.String(64), nullable=True),
        sa.Column("link_test_interval_s", sa.Integer(), nullable=False),
        sa.Column("clock_offset_s", sa.Integer(), nullable=False),
        sa.Column("last_seen_at", UtcDateTime(), nullable=True),
        sa.Column("link_failed_at", UtcDateTime(), nullable=True),
        sa.Column("contract_status", sa.String(32), nullable=False),
        sa.Column("zones", sa.JSON(), nullable=False),
        sa.Column("contacts", sa.JSON(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_alarm_accounts")),
    )
    op.create_table(
        "alarms",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("account", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("zone", sa.String(16), nullable=True),
        sa.Column("opened_at", UtcDateTime(), nullable=False),
        sa.Column("last_signal_at", UtcDateTime(), nullable=False),
        sa.Column("signal_count", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_at", UtcDateTime(), nullable=True),
        sa.Column("closed_at", UtcDateTime(), nullable=True),
        sa.Column("resolution", sa.String(32), nullable=True),
        sa.Column("incident_requested", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["account"], ["alarm_accounts.number"], name=op.f("fk_alarms_account_alarm_accounts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarms")),
    )
    op.create_index(op.f("ix_alarms_account"), "alarms", ["account"])
    op.create_index(op.f("ix_alarms_status"), "alarms", ["status"])
    op.create_index("ix_alarms_open_queue", "alarms", ["status", "priority", "opened_at"])
    op.create_table(
        "alarm_signals",
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("account", sa.String(16), nullable=False),
        sa.Column("alarm_id", sa.String(36), nullable=True),
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("zone", sa.String(16), nullable=True),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("is_restore", sa.Boolean(), nullable=False),
        sa.Column("description", sa.String(200), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["alarm_id"], ["alarms.id"], name=op.f("fk_alarm_signals_alarm_id_alarms")),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_alarm_signals")),
    )
    op.create_index(op.f("ix_alarm_signals_account"), "alarm_signals", ["account"])
    op.create_index(op.f("ix_alarm_signals_alarm_id"), "alarm_signals", ["alarm_id"])
    op.create_index(op.f("ix_alarm_signals_received_at"), "alarm_signals", ["received_at"])
    op.create_table(
        "alarm_actions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("alarm_id", sa.String(36), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["alarm_id"], ["alarms.id"], name=op.f("fk_alarm_actions_alarm_id_alarms")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarm_actions")),
    )
    op.create_index(op.f("ix_alarm_actions_alarm_id"), "alarm_actions", ["alarm_id"])


def downgrade() -> None:
    op.drop_table("alarm_actions")
    op.drop_table("alarm_signals")
    op.drop_table("alarms")
    op.drop_table("alarm_accounts")
