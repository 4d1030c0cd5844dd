"""Storage: SQLAlchemy 2 (async) on SQLite or PostgreSQL, schema by Alembic migrations."""

from safecity.store.base import Base, UtcDateTime
from safecity.store.engine import Database, create_database

__all__ = ["Base", "Database", "UtcDateTime", "create_database"]
