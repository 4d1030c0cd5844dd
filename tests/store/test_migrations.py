"""The migration chain runs forward, all the way back, and forward again, on both backends."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncConnection

import safecity.store.models  # noqa: F401  (registers every table)
from safecity.store.base import Base
from safecity.store.engine import create_database
from safecity.store.migrate import current_heads, downgrade, upgrade

SECURITY_TABLES = {"users", "refresh_tokens", "audit_log", "audit_head", "audit_prune_allowance"}


async def _tables(conn: AsyncConnection) -> set[str]:
    return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))


async def _version(conn: AsyncConnection) -> str | None:
    if "alembic_version" not in await _tables(conn):
        return None
    return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one_or_none()


async def test_upgrade_downgrade_upgrade_round_trip(db_url: str) -> None:
    db = create_database(db_url)
    try:
        await upgrade(db)
        async with db.engine.connect() as conn:
            assert await _tables(conn) >= SECURITY_TABLES
            assert (await _version(conn),) == current_heads()

        await downgrade(db, "base")
        async with db.engine.connect() as conn:
            assert not (SECURITY_TABLES & await _tables(conn))
            assert await _version(conn) is None

        await upgrade(db)
        async with db.engine.connect() as conn:
            assert await _tables(conn) >= SECURITY_TABLES
            assert (await _version(conn),) == current_heads()
    finally:
        await db.close()


async def test_upgrade_is_idempotent(db_url: str) -> None:
    db = create_database(db_url)
    try:
        await upgrade(db)
        await upgrade(db)
        async with db.engine.connect() as conn:
            assert (await _version(conn),) == current_heads()
    finally:
        await db.close()


async def test_security_tables_match_their_models(db_url: str) -> None:
    db = create_database(db_url)
    try:
        await upgrade(db)

        def diff(sync: Connection) -> list[Any]:
            context = MigrationContext.configure(sync, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)

        async with db.engine.connect() as conn:
            differences = await conn.run_sync(diff)
    finally:
        await db.close()
    ours = [d for d in differences if SECURITY_TABLES & set(_tables_named(d))]
    assert ours == []


def _tables_named(difference: Any) -> list[str]:
    """Table names mentioned in one alembic diff entry (a tuple, or a list of tuples for columns)."""
    entries = difference if isinstance(difference, list) else [difference]
    names = []
    for entry in entries:
        for item in entry:
            name = getattr(item, "name", None) if not isinstance(item, str) else item
            table = getattr(item, "table", None)
            names += [n for n in (name, getattr(table, "name", None)) if isinstance(n, str)]
    return names
