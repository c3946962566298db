"""The database: one async engine, one metadata, portable column types.

Tables are SQLAlchemy Core tables declared by each domain package against
`metadata`; queries are Core statements, so the same code runs on SQLite and
PostgreSQL. The schema itself is made only by the Alembic migrations.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import mmap
import operator
import os
import secrets
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import asyncpg
from sqlalchemy import BindParameter, DateTime, MetaData, Select, event
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util import asbool

from netcalc.errors import UsageError
from netcalc.pg_connections import ReadConnections

Query = Select[*tuple[Any, ...]]
"""A Core select built once, with `bindparam` names for its parameters."""

Row = tuple[Any, ...]
"""One result row, each column already of its Python type."""

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
        # Not quoted: the URL may hold the database password.
        raise UsageError(
            "NETCALC_DATABASE_URL is not a URL, such as sqlite:///./data/netcalc.db "
            "or postgresql://user:password@host:5432/netcalc."
        ) from exc
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
    # Errors leave out the statements' values, which may be secret hashes:
    # a failed statement's error is logged with its traceback.
    if not full.startswith("sqlite"):
        return create_async_engine(
            full, pool_size=10, pool_pre_ping=True, hide_parameters=True
        )
    _make_private_file(full)
    engine = create_async_engine(
        full, connect_args={"timeout": 30}, hide_parameters=True
    )
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def sqlite_file(url: str) -> Path | None:
    """The file an SQLite URL names, links followed; None for other databases,
    memory, and `uri=true` URLs, which name no file path."""
    parsed = make_url(async_url(url))
    database = parsed.database
    if not parsed.drivername.startswith("sqlite"):
        return None
    if not database or database == ":memory:" or asbool(parsed.query.get("uri")):
        return None
    # SQLite follows a symbolic link to the file it opens.
    return Path(database).resolve()


def _make_private_file(url: str) -> None:
    # The file holds password and secret hashes and the sealed signing keys,
    # so a new one is its owner's alone; SQLite gives its -wal and -shm
    # files the database file's mode.
    path = sqlite_file(url)
    if path is None:
        return
    # O_EXCL does not follow links, and SQLite would make the file a link
    # names with its default mode: hence the resolved path.
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


class Reads(Protocol):
    """Where the hot read-only queries run: Core statements, so one query
    serves every database."""

    async def read(
        self,
        statement: Query,
        params: Mapping[str, Any],
        shape: Callable[[list[Row]], T],
    ) -> T:
        """`shape` of the rows `statement` selects with these parameters.

        The shaped answer may be kept and handed to later callers, so
        neither `shape` nor any caller may change it.
        """

    async def dispose(self) -> None:
        """Close what the reads hold open."""


class Arrivals:
    """Counts the moments after which a read may find the database changed.

    A request must see every commit made before it was sent, such as a
    revocation, and its bytes reach this process only after that commit. So
    a check for changes made after the bytes arrived is as good as one made
    at the read. The HTTP protocol notes each arrival of request bytes, and
    the engine notes each end of this process's own transactions; SqliteReads
    checks the file again only once something was noted since its last
    check. Until the protocol counts arrivals (`counted`), as for an app
    served without it, every read checks.
    """

    ASGI_STATE = "netcalc.arrivals"
    """Where the app's lifespan state hands the count to the protocol."""

    def __init__(self) -> None:
        self.count = 0
        self.counted = False

    def note(self) -> None:
        """Something a later read must reflect may have happened."""
        self.count += 1


class SqliteReads:
    """Reads straight from an SQLite file, on the event loop's thread.

    An indexed read of a local file takes a few microseconds, far less
    than handing it to aiosqlite's thread and back. In WAL mode a reader
    never waits for the writer, so the loop is not held up by writes; the
    short busy timeout only covers a rare checkpoint. One sqlite3
    connection stays open and each statement is compiled once, because
    SQLAlchemy's execution of a statement cost several times the query.

    Results are kept while the file is unchanged. SQLite moves `PRAGMA
    data_version` whenever another connection, in this process or any
    other, commits; this connection never writes. Reading it takes two
    file-lock system calls, more than the rest of a kept read, so the file
    is looked at again only after `Arrivals` noted something, and the
    version is read only when the header of the WAL index (`WalIndex`)
    moved since the last look. A kept answer is the one the query would
    give again, so a commit is still seen by the next request.
    """

    def __init__(self, database_url: str, arrivals: Arrivals) -> None:
        self._url = database_url
        self._arrivals = arrivals
        self._connection: sqlite3.Connection | None = None
        self._index: WalIndex | None = None
        self._index_seen: bytes | None = None
        self._version: tuple[int] | None = None
        self._checked_at: int | None = None
        self._results: dict[tuple[Any, ...], Any] = {}

    async def read(
        self,
        statement: Query,
        params: Mapping[str, Any],
        shape: Callable[[list[Row]], T],
    ) -> T:
        arrivals = self._arrivals
        if not arrivals.counted or self._checked_at != arrivals.count:
            self._forget_if_changed(arrivals.count)
        # Keyed by the parameters as given: a kept answer is found without
        # compiling the statement or opening anything.
        key = (statement, shape, *params.items())
        found: T = self._results.get(key, _NOT_KEPT)
        if found is _NOT_KEPT:
            query = _compiled(_SQLITE, statement)
            rows = self._connect().execute(query.sql, query.arguments(params))
            found = shape([query.typed(row) for row in rows.fetchall()])
            if len(self._results) >= _KEPT_RESULTS:
                self._results.clear()
            self._results[key] = found
        return found

    def _forget_if_changed(self, count: int) -> None:
        connection = self._connect()
        # Looked at before the version is read: a commit made in between
        # moves the header past what is remembered here.
        seen = self._index.header() if self._index is not None else None
        if seen is None or seen != self._index_seen:
            version = connection.execute("PRAGMA data_version").fetchone()
            if version != self._version:
                self._results.clear()
                self._version = version
            self._index_seen = seen
        # Only a check that succeeded counts: after a failed one, as when
        # the file was locked, the next read checks again.
        self._checked_at = count

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = _read_only_connection(self._url)
            self._index = _wal_index_of(self._connection)
        return self._connection

    async def dispose(self) -> None:
        self._results.clear()
        self._version = None
        self._checked_at = None
        self._index = None
        self._index_seen = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class WalIndex:
    """The header of a WAL database's index, where SQLite shares it.

    In WAL mode every connection to a database shares an index kept in the
    `-shm` file beside it, and each commit rewrites the index's header,
    its change counter at least (https://www.sqlite.org/walformat.html,
    "The WAL-Index Header"). SQLite writes the header as two copies, one
    after the other, and its own readers read them without a lock. So
    while these bytes stay as they were, nothing was committed: seeing
    that costs a memory read, where PRAGMA data_version takes two file
    locks that every worker's reads wait on in the kernel.

    SQLite's locks on the file are POSIX record locks, which a process
    loses on all of its descriptors of a file once it closes any one of
    them. Another process would then take the index for abandoned and
    empty it under this one's connections. So an index, once mapped, and
    its descriptors stay open as long as the process: one per file.
    """

    HEADER_BYTES = 96
    """Both copies of the 48-byte header, at the start of the file."""

    _opened: ClassVar[dict[tuple[int, int], WalIndex | None]] = {}
    """Each index this process opened, by device and inode; None where it
    could not be mapped."""

    def __init__(self, mapped: mmap.mmap) -> None:
        self._mapped = mapped

    @classmethod
    def of(cls, database: str) -> WalIndex | None:
        """The index of the database file `database`, if it can be mapped.

        Ask only while a connection of this process has the database open
        in WAL mode: SQLite empties or replaces the file only when no
        process has it open.
        """
        path = database + "-shm"
        try:
            status = os.stat(path)
        except OSError:
            return None
        key = (status.st_dev, status.st_ino)
        if key not in cls._opened:
            cls._opened[key] = cls._map(path)
        return cls._opened[key]

    @classmethod
    def _map(cls, path: str) -> WalIndex | None:
        try:
            descriptor = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        # The descriptor is never closed, whether the mapping succeeds or not.
        try:
            return cls(mmap.mmap(descriptor, cls.HEADER_BYTES, prot=mmap.PROT_READ))
        except (OSError, ValueError):
            return None

    def header(self) -> bytes:
        """The header as it is now; torn by a commit underway, it differs
        from both the old and the new one."""
        return self._mapped[: self.HEADER_BYTES]


_NOT_KEPT = object()

_KEPT_RESULTS = 4096
"""How many answers SqliteReads keeps; all are dropped when it is reached,
since the keys include ids that callers choose."""


_SQLITE = SQLiteDialect_pysqlite()
"""The dialect SqliteReads compiles for: `?` parameters, bound in order."""


def _read_only_connection(database_url: str) -> sqlite3.Connection:
    url = make_url(database_url).set(drivername="sqlite")
    # The file as SQLAlchemy finds it: a relative path is made absolute.
    (database,), options = _SQLITE.create_connect_args(url)
    connection = sqlite3.connect(
        database,
        uri=options.get("uri", False),
        timeout=1.0,
        # Autocommit: no transaction outlives a read, so each read sees every
        # commit made before it, by this process or another.
        isolation_level=None,
        # Only the loop's thread reads, but a test client may run the loop
        # on a new thread after the connection was opened.
        check_same_thread=False,
    )
    connection.execute("PRAGMA query_only=ON")
    return connection


def _wal_index_of(connection: sqlite3.Connection) -> WalIndex | None:
    """The WAL index the connection keeps open, if its database has one.

    Asking for the journal mode opens the index, which then stays open with
    the connection. Out of WAL mode there is no index to read, and a `-shm`
    file left behind would never move. The index lies beside the file as
    SQLite names it, symbolic links followed: a `-shm` file beside a link
    is not SQLite's.
    """
    (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
    if mode != "wal":
        return None
    database = next(
        file
        for _, name, file in connection.execute("PRAGMA database_list")
        if name == "main"
    )
    return WalIndex.of(database) if database else None


class PostgresReads:
    """Reads on an asyncpg pool of their own, past SQLAlchemy's execution.

    Checking a connection out of the engine, the greenlet bridge to asyncpg
    and SQLAlchemy's result objects cost several times an indexed read on
    PostgreSQL. Here each statement is compiled once, asyncpg prepares it
    once per connection, and each read runs outside any transaction, so it
    sees every commit made before it. The connections open as reads need
    them, on the loop that serves the reads, and one the server has dropped
    is replaced.
    """

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._connections = self._new_connections()

    async def read(
        self,
        statement: Query,
        params: Mapping[str, Any],
        shape: Callable[[list[Row]], T],
    ) -> T:
        query = _compiled(_POSTGRES, statement)
        arguments = query.arguments(params)
        try:
            found = await self._connections.fetch(query.sql, arguments)
        except _DROPPED:
            # A read is safe to repeat. Once the server has dropped its
            # connections, asyncpg notices each closed socket a moment later
            # and the reads open fresh ones.
            await asyncio.sleep(_RETRY_PAUSE_SECONDS)
            found = await self._connections.fetch(query.sql, arguments)
        return shape([query.typed(row) for row in found])

    async def dispose(self) -> None:
        # Connections belong to the loop that opened them; a later loop
        # opens its own.
        connections, self._connections = self._connections, self._new_connections()
        await connections.close()

    def _new_connections(self) -> ReadConnections:
        return ReadConnections(self._dsn, POSTGRES_READ_CONNECTIONS)


_DROPPED = (asyncpg.PostgresConnectionError, asyncpg.InternalClientError)
"""What asyncpg raises for a read on a connection the server has dropped."""

_RETRY_PAUSE_SECONDS = 0.05

POSTGRES_READ_CONNECTIONS = 8
"""The most connections PostgresReads holds. A read takes a fraction of a
millisecond, but under load its answer waits for the busy event loop, so a
connection stays taken for a turn of the loop; with 5, token requests
queued for one often enough to cost a tenth of their time."""

_POSTGRES = PGDialect_asyncpg()  # type: ignore[no-untyped-call]
"""The dialect PostgresReads compiles for: `$1` parameters, bound in order."""


@dataclass(frozen=True)
class _Query:
    """A statement compiled for one driver, with the result processing of
    each column that SQLAlchemy itself would apply."""

    sql: str
    arguments: Callable[[Mapping[str, Any]], tuple[Any, ...]]
    """The values of `params` in the order the driver binds them."""
    conversions: tuple[tuple[int, Callable[[Any], Any]], ...]
    """The index and processor of each column that needs converting."""

    def typed(self, row: Sequence[Any]) -> Row:
        """The row with each column converted to its Python type."""
        values = list(row)
        for index, process in self.conversions:
            values[index] = process(values[index])
        return tuple(values)


@functools.lru_cache(maxsize=64)
def _compiled(dialect: Dialect, statement: Query) -> _Query:
    """The statement compiled for the dialect's driver; hot statements are
    built once, so the object itself is the cache key."""
    compiled = dialect.statement_compiler(dialect, statement)
    for bind, name in compiled.bind_names.items():
        if not _binds_as_given(bind, dialect):
            raise TypeError(
                f"The direct reads cannot bind {name!r}: give each parameter "
                f"as a bindparam() of a type that {dialect.driver} takes as it is."
            )
    processors = (
        column.type.dialect_impl(dialect).result_processor(dialect, None)
        for column in statement.selected_columns
    )
    conversions = tuple(
        (index, process)
        for index, process in enumerate(processors)
        if process is not None
    )
    names = tuple(compiled.positiontup or ())
    return _Query(compiled.string, _picker(names), conversions)


def _picker(names: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    # itemgetter takes several values in C, a third of the time of a
    # generator; given one name it returns the bare value instead.
    if len(names) == 1:
        (name,) = names
        return lambda params: (params[name],)
    if not names:
        return lambda params: ()
    return operator.itemgetter(*names)


def _binds_as_given(bind: BindParameter[Any], dialect: Dialect) -> bool:
    # The driver binds the caller's values as they are, so a value that
    # SQLAlchemy would convert first (a datetime, say) must not reach it.
    type_ = bind.type.dialect_impl(dialect)
    return bind.required and type_.bind_processor(dialect) is None


def reads_for(engine: AsyncEngine, arrivals: Arrivals) -> Reads:
    """The fastest exact reads for this engine's database.

    `create_engine` accepts only SQLite and PostgreSQL URLs.
    """
    url = engine.url.render_as_string(hide_password=False)
    if engine.dialect.name == "sqlite":
        # A connection goes back to the pool once its transaction has ended:
        # from then on a read must see what this process wrote.
        event.listen(engine.sync_engine, "checkin", lambda *_: arrivals.note())
        return SqliteReads(url, arrivals)
    return PostgresReads(url)


def _sqlite_pragmas(connection: Any, _: Any) -> None:
    cursor = connection.cursor()
    # WAL lets readers run beside the one writer; NORMAL sync is durable
    # across process crashes, which is what kill -9 tests exercise.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
