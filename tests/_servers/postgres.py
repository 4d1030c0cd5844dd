"""PostgreSQL for tests: one throw-away database per test session, a clean schema per test.

Fixtures:
- `postgres_url` (session): URL of a fresh database `safecity_test_<random>`, dropped at the end.
- `db_url` (function, parametrized "sqlite" / "postgres"): URL of an *empty* database for this test
  (a file in tmp_path, or the session database with its `public` schema recreated).
- `db` (function): a `Database` on `db_url`, migrated to head, closed after the test.

The server is the machine's PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth); set
SAFECITY_TEST_PG_URL (any database on the server, e.g. postgresql://user:pw@host:5432/postgres)
to use another. An unreachable server fails the tests that need it; it never skips them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy.engine import URL, make_url

from safecity.store.engine import Database, create_database
from safecity.store.migrate import upgrade

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
CONNECT_TIMEOUT_S = 5


def _server_url() -> URL:
    return make_url(os.environ.get("SAFECITY_TEST_PG_URL") or DEFAULT_SERVER_URL)


def _asyncpg_dsn(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(statement: str) -> None:
    url = _server_url()
    try:
        conn = await asyncpg.connect(_asyncpg_dsn(url), timeout=CONNECT_TIMEOUT_S)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {url.render_as_string(hide_password=True)} ({exc!r}). "
            "Start it, or point SAFECITY_TEST_PG_URL at a server where this user may CREATE DATABASE.",
            pytrace=False,
        )
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database on the test server for this test session (SQLAlchemy asyncpg URL)."""
    name = f"safecity_test_{secrets.token_hex(6)}"
    _run_aside(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield (_server_url().set(drivername="postgresql+asyncpg", database=name).render_as_string(hide_password=False))
    finally:
        _run_aside(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _run_aside(work: Coroutine[Any, Any, None]) -> None:
    """Run on a loop of its own in a thread: the session fixture may be first requested from inside
    a test's running loop (`request.getfixturevalue` in an async fixture), where asyncio.run fails."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, work).result()


async def _reset_schema(url: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(make_url(url)), timeout=CONNECT_TIMEOUT_S)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()


@pytest_asyncio.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database for one test, on each backend in turn."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'safecity.db'}"
        return
    url: str = request.getfixturevalue("postgres_url")
    await _reset_schema(url)
    yield url


@pytest_asyncio.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """A migrated `Database` for one test; its connections are closed afterwards."""
    database = create_database(db_url)
    try:
        await upgrade(database)
        yield database
    finally:
        await database.close()
