"""The database: one async engine, one metadata, portable column types.

Tables are SQLAlchemy Core tables declared by each domain package against
`metadata`; queries are Core statements, so the same code runs on SQLite and
PostgreSQL. The schema itself is made only by the Alembic migrations.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy import DateTime, MetaData, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.types import TypeDecorator

from netcalc.errors import UsageError

T = TypeVar("T")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    SQLite keeps no zone, so values read back are marked UTC here rather than
    compared naive against aware ones elsewhere.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC)

    def process_result_value(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def new_id() -> str:
    """A random, unguessable row id (96 bits) for ids shown to users."""
    return secrets.token_hex(12)


def async_url(url: str) -> str:
    """The URL with the async driver netcalc uses for its backend."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise UsageError(f"NETCALC_DATABASE_URL {url!r} is not a URL.") from exc
    backend = parsed.get_backend_name()
    if backend not in _ASYNC_DRIVERS:
        raise UsageError(
            f"NETCALC_DATABASE_URL uses {backend!r}; "
            "use an sqlite:/// or postgresql:// URL."
        )
    if "+" not in parsed.drivername:
        parsed = parsed.set(drivername=_ASYNC_DRIVERS[backend])
    return parsed.render_as_string(hide_password=False)


def create_engine(url: str) -> AsyncEngine:
    """An engine for `url`; SQLite files get WAL mode and a busy timeout."""
    full = async_url(url)
    if not full.startswith("sqlite"):
        return create_async_engine(full, pool_size=10, pool_pre_ping=True)
    _make_parent(full)
    engine = create_async_engine(full, connect_args={"timeout": 30})
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _make_parent(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


class Reads(Protocol):
    """Where read-only queries run: written as plain functions of a sync
    Connection, so one query serves every database."""

    async def run(self, read: Callable[..., T], *args: Any) -> T:
        """Run `read(connection, *args)` and return what it returns."""

    def dispose(self) -> None:
        """Close what the reads hold open."""


class EngineReads:
    """Reads through the async engine, for any database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def run(self, read: Callable[..., T], *args: Any) -> T:
        async with self._engine.connect() as connection:
            return await connection.run_sync(read, *args)

    def dispose(self) -> None:
        # The engine belongs to its creator, which disposes of it.
        return None


class SqliteReads:
    """Reads straight from an SQLite file, on the event loop's thread.

    An indexed read of a local file takes tens of microseconds, far less
    than handing it to aiosqlite's thread and back. In WAL mode a reader
    never waits for the writer, so the loop is not held up by writes; the
    short busy timeout only covers a rare checkpoint.
    """

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url).set(drivername="sqlite")
        self._engine = create_sync_engine(url, connect_args={"timeout": 1.0})
        event.listen(self._engine, "connect", _read_only)

    async def run(self, read: Callable[..., T], *args: Any) -> T:
        with self._engine.connect() as connection:
            return read(connection, *args)

    def dispose(self) -> None:
        self._engine.dispose()


def _read_only(connection: Any, _: Any) -> None:
    connection.execute("PRAGMA query_only=ON")


def reads_for(engine: AsyncEngine) -> Reads:
    """The fastest exact reads for this engine's database."""
    if engine.dialect.name == "sqlite":
        return SqliteReads(engine.url.render_as_string(hide_password=False))
    return EngineReads(engine)


def _sqlite_pragmas(connection: Any, _: Any) -> None:
    cursor = connection.cursor()
    # WAL lets readers run beside the one writer; NORMAL sync is durable
    # across process crashes, which is what kill -9 tests exercise.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
