"""Security: users, refresh tokens, the hash-chained audit log and its append-only guards.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

The audit log is append-only at the database level, not only in the application: UPDATE is
refused outright, DELETE only for records at or below `audit_prune_allowance.upto`, which the
retention job raises in the same transaction in which it deletes. The head and the allowance
may only move forward. (Someone holding the DBA role can still drop the triggers; the hash chain
is what makes that visible.)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

GENESIS_HASH = "0" * 64
_FORWARD_ONLY = "only moves forward"

# table -> column that may only grow (the head's seq, the prune allowance)
_FORWARD_TABLES = {"audit_head": "seq", "audit_prune_allowance": "upto"}

_SQLITE_TRIGGERS = [
    """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: records cannot be changed'); END""",
    """CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    WHEN OLD.seq > COALESCE((SELECT upto FROM audit_prune_allowance WHERE id = 1), 0)
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: only pruning may delete'); END""",
]
for _table, _column in _FORWARD_TABLES.items():
    _SQLITE_TRIGGERS += [
        f"""CREATE TRIGGER {_table}_forward_only BEFORE UPDATE ON {_table}
        WHEN NEW.{_column} < OLD.{_column} OR NEW.id <> OLD.id
        BEGIN SELECT RAISE(ABORT, '{_table} {_FORWARD_ONLY}'); END""",
        f"""CREATE TRIGGER {_table}_no_delete BEFORE DELETE ON {_table}
        BEGIN SELECT RAISE(ABORT, '{_table} {_FORWARD_ONLY}'); END""",
    ]

_PG_STATEMENTS = [
    """CREATE FUNCTION audit_log_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            IF OLD.seq <= COALESCE((SELECT upto FROM audit_prune_allowance WHERE id = 1), 0) THEN
                RETURN OLD;
            END IF;
        END IF;
        RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
            USING ERRCODE = 'integrity_constraint_violation';
    END
    $$""",
    """CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_guard()""",
    """CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_guard()""",
]
for _table, _column in _FORWARD_TABLES.items():
    _PG_STATEMENTS += [
        f"""CREATE FUNCTION {_table}_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'UPDATE' THEN
                IF NEW.{_column} >= OLD.{_column} AND NEW.id = OLD.id THEN
                    RETURN NEW;
                END IF;
            END IF;
            RAISE EXCEPTION '{_table} {_FORWARD_ONLY}' USING ERRCODE = 'integrity_constraint_violation';
        END
        $$""",
        f"""CREATE TRIGGER {_table}_forward_only BEFORE UPDATE OR DELETE ON {_table}
        FOR EACH ROW EXECUTE FUNCTION {_table}_guard()""",
        f"""CREATE TRIGGER {_table}_no_truncate BEFORE TRUNCATE ON {_table}
        FOR EACH STATEMENT EXECUTE FUNCTION {_table}_guard()""",
    ]
_PG_FUNCTIONS = ["audit_log_guard", *(f"{t}_guard" for t in _FORWARD_TABLES)]


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("unit_id", sa.String(64), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", _utc(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("password_changed_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("issued_at", _utc(), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.Column("revoked_at", _utc(), nullable=True),
        sa.Column("replaced_by", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_refresh_tokens_user_id_users", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_refresh_tokens"),
    )
    op.create_index("ix_refresh_tokens_user_id", "refresh_tokens", ["user_id"])
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("actor_role", sa.String(32), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("resource", sa.String(255), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("client", sa.String(64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_actor", "audit_log", ["actor"])
    op.create_index("ix_audit_log_action", "audit_log", ["action"])
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_head"),
    )
    allowance = op.create_table(
        "audit_prune_allowance",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("upto", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_prune_allowance"),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": GENESIS_HASH}])
    op.bulk_insert(allowance, [{"id": 1, "upto": 0}])

    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        statements = _SQLITE_TRIGGERS
    elif dialect == "postgresql":
        statements = _PG_STATEMENTS
    else:
        raise NotImplementedError(f"append-only audit log not implemented for {dialect}")
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    # Triggers go with their tables; PostgreSQL's trigger functions must be dropped by name.
    op.drop_table("audit_prune_allowance")
    op.drop_table("audit_head")
    op.drop_index("ix_audit_log_action", table_name="audit_log")
    op.drop_index("ix_audit_log_actor", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_refresh_tokens_user_id", table_name="refresh_tokens")
    op.drop_table("refresh_tokens")
    op.drop_table("users")
    if op.get_bind().dialect.name == "postgresql":
        for function in _PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
