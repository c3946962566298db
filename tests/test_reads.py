"""The hot reads: SQLite and PostgreSQL read directly give the engine's rows
and Python types, see every commit at the next read, and fail loudly."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import orjson
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from netcalc.accounts.service import revoke_credentials, set_disabled
from netcalc.auth.store import find_client, revoke_token, token_is_live
from netcalc.db import (
    Arrivals,
    PostgresReads,
    Query,
    Reads,
    Row,
    SqliteReads,
    WalIndex,
    create_engine,
    reads_for,
    utcnow,
)
from netcalc.responses import JSONBody
from netcalc.settings import Settings
from netcalc.subnets import routes as subnet_routes
from netcalc.subnets.service import (
    get_subnet,
    json_array,
    list_subnets,
    new_subnet,
    save_subnet,
)
from tests.support import Console

T = TypeVar("T")

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
postgresql_only = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@pytest.fixture
def reads(settings: Settings, console: Console) -> Iterator[SqliteReads]:
    """Direct reads of the migrated SQLite database, closed afterwards."""
    direct = SqliteReads(settings.database_url, Arrivals())
    yield direct
    asyncio.run(direct.dispose())


@pytest.fixture
def owner(console: Console) -> str:
    """The id of an enabled account."""
    return console.account("owner@example.com")


@pytest.fixture
def clients(console: Console, owner: str) -> dict[str, str]:
    """Client ids of credentials in each state the reads tell apart."""
    plain = console.credentials(owner).client_id
    rotated = console.credentials(owner).client_id
    console.rotate(rotated, grace=3600)
    revoked = console.credentials(owner).client_id
    console.revoke(revoked)
    other = console.account("disabled@example.com")
    disabled = console.credentials(other).client_id
    console.run(lambda engine: set_disabled(engine, other, True))
    return {
        "plain": plain,
        "rotated": rotated,
        "revoked": revoked,
        "disabled": disabled,
        "unknown": "nci_unknown",
    }


@pytest.fixture
def saved(console: Console, owner: str) -> list[dict[str, Any]]:
    """Two subnets of the owner, as saving them answered."""

    async def save_two(engine: AsyncEngine) -> list[dict[str, Any]]:
        network = {"network_address": "10.0.0.0", "subnet_bits": 8}
        return [
            await save_subnet(
                engine, owner, new_subnet(network | {"name": name}), limit=1000
            )
            for name in ("first", "second")
        ]

    return console.run(save_two)


@pytest.fixture
def counted() -> Arrivals:
    """Arrivals as a server's protocol counts them."""
    arrivals = Arrivals()
    arrivals.counted = True
    return arrivals


def revoke_elsewhere(settings: Settings, client_id: str) -> None:
    """Revoke the credentials from another process, past netcalc."""
    path = settings.database_url.removeprefix("sqlite:///")
    revoke = (
        "import sqlite3, sys\n"
        "with sqlite3.connect(sys.argv[1]) as db:\n"
        "    db.execute(\"UPDATE credentials SET revoked_at = '2026-01-01 00:00:00'"
        ' WHERE client_id = ?", (sys.argv[2],))\n'
    )
    subprocess.run([sys.executable, "-c", revoke, path, client_id], check=True)


class EngineReads:
    """The reference: the same statements run through SQLAlchemy's engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def read(
        self,
        statement: Query,
        params: Mapping[str, Any],
        shape: Callable[[list[Row]], T],
    ) -> T:
        async with self._engine.connect() as connection:
            result = await connection.execute(statement, params)
            return shape([tuple(row) for row in result])

    async def dispose(self) -> None:
        return None


async def listed(reads: Reads, owner: str) -> list[dict[str, Any]]:
    """The owner's subnets, decoded from the JSON array they are listed as."""
    subnets: list[dict[str, Any]] = orjson.loads(
        orjson.dumps(await list_subnets(reads, owner, json_array))
    )
    return subnets


def both(console: Console, read: Callable[[Reads], Awaitable[T]]) -> tuple[T, T]:
    """What `read` answers reading the database directly, then through the
    engine."""

    async def run(engine: AsyncEngine) -> tuple[T, T]:
        direct = reads_for(engine, Arrivals())
        try:
            return await read(direct), await read(EngineReads(engine))
        finally:
            await direct.dispose()

    return console.run(run)


def test_each_database_is_read_directly(settings: Settings) -> None:
    """SQLite and PostgreSQL each get their reads past the engine."""
    direct = {"sqlite": SqliteReads, "postgresql": PostgresReads}
    backend = make_url(settings.database_url).get_backend_name()
    # Making the engine and the reads opens no connection.
    engine = create_engine(settings.database_url)
    assert isinstance(reads_for(engine, Arrivals()), direct[backend])


@pytest.mark.parametrize(
    ("state", "revoked", "disabled"),
    [
        ("plain", False, False),
        ("rotated", False, False),
        ("revoked", True, False),
        ("disabled", False, True),
    ],
)
def test_client_record_matches_the_engines(
    console: Console, clients: dict[str, str], state: str, revoked: bool, disabled: bool
) -> None:
    """The direct read gives the engine's record, its flags real bools."""
    direct, engine = both(console, lambda reads: find_client(reads, clients[state]))
    assert direct == engine
    assert direct is not None
    assert direct.revoked is revoked
    assert direct.account_disabled is disabled


def test_unknown_client_is_none(console: Console, clients: dict[str, str]) -> None:
    """A client id nobody holds reads as no record, and as not live."""
    unknown = clients["unknown"]
    assert both(console, lambda reads: find_client(reads, unknown)) == (None, None)
    live = both(console, lambda reads: token_is_live(reads, unknown, "jti"))
    assert live == (False, False)


def test_times_read_back_aware_in_utc(
    console: Console, clients: dict[str, str]
) -> None:
    """A stored time reads back as the same instant, aware, in UTC."""
    rotated = console.rotate(clients["plain"], grace=3600)
    direct, engine = both(console, lambda reads: find_client(reads, clients["plain"]))
    assert direct is not None and engine is not None
    expires = direct.previous_secret_expires_at
    assert expires is not None
    assert expires == rotated.previous_secret_expires_at
    assert expires.tzinfo is UTC
    assert engine.previous_secret_expires_at == expires
    assert engine.previous_secret_expires_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("state", "live"),
    [("plain", True), ("rotated", True), ("revoked", False), ("disabled", False)],
)
def test_liveness_matches_the_engines(
    console: Console, clients: dict[str, str], state: str, live: bool
) -> None:
    """The direct read answers liveness as the engine does."""
    answers = both(console, lambda reads: token_is_live(reads, clients[state], "j"))
    assert answers == (live, live)


def test_revoked_token_is_not_live(console: Console, clients: dict[str, str]) -> None:
    """A token revoked by its jti is refused, its sibling is not."""
    client_id = clients["plain"]
    until = utcnow() + timedelta(hours=1)
    console.run(lambda engine: revoke_token(engine, "gone", client_id, until))
    gone = both(console, lambda reads: token_is_live(reads, client_id, "gone"))
    kept = both(console, lambda reads: token_is_live(reads, client_id, "kept"))
    assert gone == (False, False)
    assert kept == (True, True)


def test_one_token_revoked_twice_at_once(
    console: Console, clients: dict[str, str]
) -> None:
    """Two revocations of one token at once: one records it, the other
    finds it recorded, and neither fails."""
    client_id = clients["plain"]
    until = utcnow() + timedelta(hours=1)

    async def twice(engine: AsyncEngine) -> list[bool]:
        return list(
            await asyncio.gather(
                revoke_token(engine, "twice", client_id, until),
                revoke_token(engine, "twice", client_id, until),
            )
        )

    assert sorted(console.run(twice)) == [False, True]
    gone = both(console, lambda reads: token_is_live(reads, client_id, "twice"))
    assert gone == (False, False)


def test_subnets_read_back_as_saved(
    console: Console, owner: str, saved: list[dict[str, Any]]
) -> None:
    """Saved subnets list and get as they were saved, created_at in UTC."""
    assert both(console, lambda reads: listed(reads, owner)) == (saved, saved)
    one = both(console, lambda reads: get_subnet(reads, owner, saved[1]["id"]))
    assert one == (saved[1], saved[1])
    assert saved[1]["created_at"].endswith("+00:00")


@pytest.mark.parametrize("counted_arrivals", [False, True], ids=["alone", "served"])
def test_a_commit_elsewhere_is_seen_by_the_next_read(
    console: Console,
    clients: dict[str, str],
    owner: str,
    saved: list[dict[str, Any]],
    counted_arrivals: bool,
) -> None:
    """Credentials revoked through another connection are refused at the next
    read: no read leaves a transaction open on a kept connection. Served, with
    no request arriving in between, the engine's own write is still seen."""
    client_id = clients["plain"]
    arrivals = Arrivals()
    arrivals.counted = counted_arrivals

    async def run(engine: AsyncEngine) -> None:
        direct = reads_for(engine, arrivals)
        try:
            assert await find_client(direct, client_id) is not None
            assert await token_is_live(direct, client_id, "jti")
            # Several rows last: a result left half read would keep its snapshot.
            assert await listed(direct, owner) == saved

            await revoke_credentials(engine, client_id)

            assert not await token_is_live(direct, client_id, "jti")
            record = await find_client(direct, client_id)
            assert record is not None and record.revoked
        finally:
            await direct.dispose()

    console.run(run)


@sqlite_only
def test_an_unchanged_file_answers_from_memory(
    clients: dict[str, str], reads: SqliteReads
) -> None:
    """Asked again with nothing committed since, the reads ask SQLite
    nothing: the header of the WAL index has not moved, and the answer is
    what the query gave before."""
    first = asyncio.run(find_client(reads, clients["plain"]))
    assert isinstance(reads._index, WalIndex)
    statements: list[str] = []
    reads._connect().set_trace_callback(statements.append)
    assert asyncio.run(find_client(reads, clients["plain"])) == first
    assert statements == []


@sqlite_only
def test_a_commit_by_another_process_is_seen_by_the_next_read(
    settings: Settings, clients: dict[str, str], reads: SqliteReads
) -> None:
    """Credentials revoked by another program are refused at the next read,
    though the same read was answered from memory just before."""
    client_id = clients["plain"]
    for _ in range(2):
        record = asyncio.run(find_client(reads, client_id))
        assert record is not None and not record.revoked
    revoke_elsewhere(settings, client_id)
    record = asyncio.run(find_client(reads, client_id))
    assert record is not None and record.revoked


@sqlite_only
def test_answers_kept_in_memory_stay_bounded(
    clients: dict[str, str], reads: SqliteReads
) -> None:
    """Ids a caller makes up cannot grow the kept answers without bound."""

    async def ask_many() -> None:
        for n in range(5000):
            assert await find_client(reads, f"nci_{n:032x}") is None

    asyncio.run(ask_many())
    assert len(reads._results) <= 4096


@sqlite_only
def test_reads_follow_the_loop_to_another_thread(
    clients: dict[str, str], reads: SqliteReads
) -> None:
    """The connection opened on one thread serves a loop on another, as a test
    client may run the app's loop."""
    first = asyncio.run(find_client(reads, clients["plain"]))
    answers: list[Any] = []

    def read_on_a_thread() -> None:
        answers.append(asyncio.run(find_client(reads, clients["plain"])))

    thread = threading.Thread(target=read_on_a_thread)
    thread.start()
    thread.join(timeout=10)
    assert answers == [first]


def test_a_failing_read_raises(console: Console, owner: str) -> None:
    """A read of a table gone since the last read raises the driver's error."""

    async def run(engine: AsyncEngine) -> None:
        direct = reads_for(engine, Arrivals())
        try:
            assert await listed(direct, owner) == []
            async with engine.begin() as connection:
                await connection.execute(text("DROP TABLE subnets"))
            missing = (sqlite3.OperationalError, asyncpg.UndefinedTableError)
            with pytest.raises(missing, match="subnets"):
                await listed(direct, owner)
        finally:
            await direct.dispose()

    console.run(run)


@sqlite_only
def test_a_locked_database_fails_fast_then_recovers(
    settings: Settings, owner: str, reads: SqliteReads
) -> None:
    """A database held exclusively fails the read within about a second, and
    the reads work again once it is released."""
    path = settings.database_url.removeprefix("sqlite:///")
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("DELETE FROM subnets WHERE 0")
        started = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            asyncio.run(listed(reads, owner))
        assert time.monotonic() - started < 5
        holder.execute("COMMIT")
    finally:
        holder.close()
    assert asyncio.run(listed(reads, owner)) == []


@postgresql_only
def test_a_dropped_connection_is_replaced(
    console: Console, clients: dict[str, str]
) -> None:
    """When the server ends the pool's connection, the next read still
    answers, on a new connection."""
    client_id = clients["plain"]
    backend_pid = select(func.pg_backend_pid())

    async def run(engine: AsyncEngine) -> None:
        direct = PostgresReads(console.settings.database_url)
        try:
            before = await find_client(direct, client_id)
            [(pid,)] = await direct.read(backend_pid, {}, list)
            async with engine.connect() as connection:
                ended = select(func.pg_terminate_backend(pid))
                assert (await connection.execute(ended)).scalar_one() is True

            assert await find_client(direct, client_id) == before
            assert await direct.read(backend_pid, {}, list) != [(pid,)]
        finally:
            await direct.dispose()

    console.run(run)


@sqlite_only
def test_with_arrivals_counted_the_file_is_checked_once_per_arrival(
    settings: Settings, clients: dict[str, str], counted: Arrivals
) -> None:
    """Reads with no arrival between them answer from memory without
    looking at the file; the first read after an arrival looks at the WAL
    index, and reads the data version only once a commit moved it."""
    reads = SqliteReads(settings.database_url, counted)
    statements: list[str] = []
    looks: list[bytes] = []

    async def read_after_arrivals() -> None:
        await find_client(reads, clients["plain"])
        reads._connect().set_trace_callback(statements.append)
        assert isinstance(reads._index, WalIndex)
        reads._index = CountedIndex(reads._index, looks)  # type: ignore[assignment]
        await find_client(reads, clients["plain"])
        await token_is_live(reads, clients["plain"], "jti")
        assert looks == []
        counted.note()
        await find_client(reads, clients["plain"])
        assert len(looks) == 1
        assert "PRAGMA data_version" not in statements
        revoke_elsewhere(settings, clients["plain"])
        counted.note()
        await find_client(reads, clients["plain"])
        assert len(looks) == 2

    try:
        asyncio.run(read_after_arrivals())
    finally:
        asyncio.run(reads.dispose())
    # The liveness statement was never asked before, so it ran once; the
    # commit made the client read again.
    assert statements.count("PRAGMA data_version") == 1
    assert len(statements) == 3


class CountedIndex:
    """A WAL index that notes each look at its header."""

    def __init__(self, index: WalIndex, looks: list[bytes]) -> None:
        self._index = index
        self._looks = looks

    def header(self) -> bytes:
        header = self._index.header()
        self._looks.append(header)
        return header


def test_a_linked_database_reads_the_index_sqlite_uses(
    tmp_path: Path, counted: Arrivals
) -> None:
    """Reached through a symbolic link, the database's WAL index lies
    beside the file SQLite follows the link to. A `-shm` file left beside
    the link, which no commit moves, is not the one looked at, and a commit
    elsewhere is seen."""
    (tmp_path / "real").mkdir()
    real = tmp_path / "real" / "marks.db"
    marks_table(real, "WAL")
    link = tmp_path / "marks.db"
    link.symlink_to(real)
    (tmp_path / "marks.db-shm").write_bytes(bytes(32768))
    reads = SqliteReads(f"sqlite:///{link}", counted)
    try:
        assert marks_around_a_commit(reads, real, counted) == (0, 1)
        assert isinstance(reads._index, WalIndex)
    finally:
        asyncio.run(reads.dispose())


INDEX_IN_USE = (
    "import fcntl, os, struct, sys\n"
    "descriptor = os.open(sys.argv[1] + '-shm', os.O_RDWR)\n"
    "# The byte SQLite locks while it uses the index: past the header, the\n"
    "# checkpoint information and the eight lock bytes (walformat.html).\n"
    "asked = struct.pack('hhqqi4x', fcntl.F_WRLCK, os.SEEK_SET, 128, 1, 0)\n"
    "answer = fcntl.fcntl(descriptor, fcntl.F_GETLK, asked)\n"
    "print(struct.unpack('hhqqi4x', answer)[0] != fcntl.F_UNLCK)\n"
)


def index_in_use(database: str) -> bool:
    """Whether another process finds the database's WAL index in use."""
    found = subprocess.run(
        [sys.executable, "-c", INDEX_IN_USE, database],
        check=True,
        capture_output=True,
        text=True,
    )
    return found.stdout.strip() == "True"


@sqlite_only
def test_the_mapped_wal_index_stays_in_use(
    settings: Settings, clients: dict[str, str], counted: Arrivals
) -> None:
    """SQLite marks a WAL index in use with a POSIX lock, which a process
    loses once it closes any descriptor of the file. Mapping the index, and
    disposing of the reads while another connection of this process is
    open, leave the mark; without it, another process opening the database
    would empty the index under that connection."""
    path = settings.database_url.removeprefix("sqlite:///")
    reads = SqliteReads(settings.database_url, counted)
    other = sqlite3.connect(path)
    try:
        other.execute("PRAGMA journal_mode").fetchone()
        asyncio.run(find_client(reads, clients["plain"]))
        assert isinstance(reads._index, WalIndex)
        assert index_in_use(path)
        asyncio.run(reads.dispose())
        assert index_in_use(path)
    finally:
        other.close()


MARKS = select(func.count()).select_from(text("marks"))


def marks_table(path: Path, journal_mode: str) -> None:
    """A database at `path`, in that journal mode, with an empty `marks`."""
    with sqlite3.connect(path) as database:
        database.execute(f"PRAGMA journal_mode={journal_mode}")
        database.execute("CREATE TABLE marks (mark INTEGER)")


def first_value(rows: list[Row]) -> Any:
    """The first column of the first row; one function, so that a second
    read with it may be answered from memory."""
    return rows[0][0]


def marks_around_a_commit(
    reads: SqliteReads, path: Path, counted: Arrivals
) -> tuple[int, int]:
    """The marks counted before and after another connection adds one, with
    an arrival between: the second count comes from memory unless the
    check after the arrival found the commit."""

    async def count_twice() -> tuple[int, int]:
        before = await reads.read(MARKS, {}, first_value)
        with sqlite3.connect(path) as database:
            database.execute("INSERT INTO marks VALUES (1)")
        counted.note()
        return before, await reads.read(MARKS, {}, first_value)

    return asyncio.run(count_twice())


def test_a_database_out_of_wal_mode_checks_its_data_version(
    tmp_path: Path, counted: Arrivals
) -> None:
    """A database in rollback-journal mode has no WAL index to look at: each
    arrival reads the data version, so a commit elsewhere is still seen. A
    `-shm` file left beside it, which no commit would move, is not read."""
    path = tmp_path / "journal.db"
    marks_table(path, "DELETE")
    (tmp_path / "journal.db-shm").write_bytes(bytes(32768))
    reads = SqliteReads(f"sqlite:///{path}", counted)
    try:
        assert marks_around_a_commit(reads, path, counted) == (0, 1)
        assert reads._index is None
    finally:
        asyncio.run(reads.dispose())


@sqlite_only
def test_a_commit_elsewhere_is_seen_from_the_next_arrival(
    settings: Settings, clients: dict[str, str], counted: Arrivals
) -> None:
    """A revocation by another process is seen by the first read after the
    next request bytes arrive: any request sent after the revocation."""
    reads = SqliteReads(settings.database_url, counted)
    client_id = clients["plain"]

    async def revoked_before_and_after_an_arrival() -> tuple[bool, bool]:
        await find_client(reads, client_id)
        revoke_elsewhere(settings, client_id)
        # No bytes arrived since the last check: nothing sent after the
        # revocation can be waiting for this answer.
        before = await find_client(reads, client_id)
        counted.note()
        after = await find_client(reads, client_id)
        assert before is not None and after is not None
        return before.revoked, after.revoked

    try:
        assert asyncio.run(revoked_before_and_after_an_arrival()) == (False, True)
    finally:
        asyncio.run(reads.dispose())


@sqlite_only
def test_a_kept_answer_is_shaped_once(
    clients: dict[str, str], reads: SqliteReads
) -> None:
    """The shaped answer is what is kept: asked again, the rows are neither
    fetched nor shaped again, and the caller gets the same answer."""
    shaped: list[list[Row]] = []

    def shape(rows: list[Row]) -> int:
        shaped.append(rows)
        return len(rows)

    params = {"client_id": clients["plain"]}
    statement = select(text("1")).where(text("1 = 1"))
    answers = [asyncio.run(reads.read(statement, params, shape)) for _ in range(3)]
    assert answers == [1, 1, 1]
    assert len(shaped) == 1


@sqlite_only
def test_a_subnet_listing_answer_is_built_once_per_change(
    console: Console, owner: str, saved: list[dict[str, Any]], reads: SqliteReads
) -> None:
    """The listing route's whole answer is kept with the rows: the same
    answer object until a commit, then a new one that shows it."""

    def answer() -> JSONBody:
        return asyncio.run(list_subnets(reads, owner, subnet_routes._listing))

    first = answer()
    assert answer() is first
    assert [s["id"] for s in orjson.loads(first.body)["subnets"]] == [
        subnet["id"] for subnet in saved
    ]

    async def save_third(engine: AsyncEngine) -> dict[str, Any]:
        network = {"network_address": "10.1.0.0", "subnet_bits": 16, "name": "third"}
        return await save_subnet(engine, owner, new_subnet(network), limit=1000)

    third = console.run(save_third)
    changed = answer()
    assert changed is not first
    assert orjson.loads(changed.body)["subnets"][-1]["id"] == third["id"]


class LockedOnce:
    """A connection whose next data version check fails as a locked file's."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection
        self.locked = True

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "PRAGMA data_version" and self.locked:
            self.locked = False
            raise sqlite3.OperationalError("database is locked")
        return self._connection.execute(sql, *args)


@sqlite_only
def test_a_failed_check_is_made_again_by_the_next_read(
    settings: Settings, clients: dict[str, str], counted: Arrivals
) -> None:
    """When the check after an arrival fails, the next read checks again
    rather than answer from memory what the failed check could not confirm."""
    reads = SqliteReads(settings.database_url, counted)
    client_id = clients["plain"]
    connection = reads._connect()

    async def revoked_after_a_failed_check() -> bool:
        await find_client(reads, client_id)
        revoke_elsewhere(settings, client_id)
        counted.note()
        reads._connection = LockedOnce(connection)  # type: ignore[assignment]
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await find_client(reads, client_id)
        record = await find_client(reads, client_id)
        assert record is not None
        return record.revoked

    try:
        assert asyncio.run(revoked_after_a_failed_check())
    finally:
        reads._connection = connection
        asyncio.run(reads.dispose())
