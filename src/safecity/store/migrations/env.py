"""Alembic environment: runs on the connection handed in by safecity.store.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

import safecity.store.models  # noqa: F401  (registers every table on Base.metadata)
from safecity.store.base import Base

target_metadata = Base.metadata
config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:  # plain `alembic` CLI use (autogenerate while developing)
        url = config.get_main_option("sqlalchemy.url") or "sqlite://"
        url = url.replace("+aiosqlite", "").replace("+asyncpg", "+psycopg")
        with create_engine(url).connect() as conn:
            context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
        return
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


run()
