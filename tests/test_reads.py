"""The hot reads: SQLite read directly gives the engine's rows and Python
types, sees every commit at the next read, and fails loudly and quickly."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from netcalc.accounts.service import set_disabled
from netcalc.auth.store import find_client, revoke_token, token_is_live
from netcalc.db import EngineReads, Reads, SqliteReads, utcnow
from netcalc.settings import Settings
from netcalc.subnets.service import get_subnet, list_subnets, new_subnet, save_subnet
from tests.support import Console

T = TypeVar("T")


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """An SQLite file only: these tests are about reading SQLite directly."""
    return f"sqlite:///{tmp_path / 'netcalc.db'}"


@pytest.fixture
def reads(settings: Settings, console: Console) -> Iterator[SqliteReads]:
    """Direct reads of the migrated test database, closed afterwards."""
    direct = SqliteReads(settings.database_url)
    yield direct
    direct.dispose()


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
            await save_subnet(engine, owner, new_subnet(network | {"name": name}))
            for name in ("first", "second")
        ]

    return console.run(save_two)


def both(console: Console, read: Callable[[Reads], Awaitable[T]]) -> tuple[T, T]:
    """What `read` answers reading SQLite directly, then through the engine."""

    async def run(engine: AsyncEngine) -> tuple[T, T]:
        direct = SqliteReads(console.settings.database_url)
        try:
            return await read(direct), await read(EngineReads(engine))
        finally:
            direct.dispose()

    return console.run(run)


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


def test_subnets_read_back_as_saved(
    console: Console, owner: str, saved: list[dict[str, Any]]
) -> None:
    """Saved subnets list and get as they were saved, created_at in UTC."""
    assert both(console, lambda reads: list_subnets(reads, owner)) == (saved, saved)
    one = both(console, lambda reads: get_subnet(reads, owner, saved[1]["id"]))
    assert one == (saved[1], saved[1])
    assert saved[1]["created_at"].endswith("+00:00")


def test_a_commit_elsewhere_is_seen_by_the_next_read(
    console: Console,
    clients: dict[str, str],
    owner: str,
    saved: list[dict[str, Any]],
    reads: SqliteReads,
) -> None:
    """Credentials revoked through another connection are refused at the next
    read: no read leaves a transaction open on the kept connection."""
    client_id = clients["plain"]
    assert asyncio.run(find_client(reads, client_id)) is not None
    assert asyncio.run(token_is_live(reads, client_id, "jti"))
    # Several rows last: a result left half read would keep its snapshot.
    assert asyncio.run(list_subnets(reads, owner)) == saved

    console.revoke(client_id)

    assert not asyncio.run(token_is_live(reads, client_id, "jti"))
    record = asyncio.run(find_client(reads, client_id))
    assert record is not None and record.revoked


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


def test_a_failing_read_raises(
    console: Console, owner: str, reads: SqliteReads
) -> None:
    """A read of a table gone since the last read raises sqlite3's error."""
    assert asyncio.run(list_subnets(reads, owner)) == []

    async def drop_subnets(engine: AsyncEngine) -> None:
        async with engine.begin() as connection:
            await connection.execute(text("DROP TABLE subnets"))

    console.run(drop_subnets)
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        asyncio.run(list_subnets(reads, owner))


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
            asyncio.run(list_subnets(reads, owner))
        assert time.monotonic() - started < 5
        holder.execute("COMMIT")
    finally:
        holder.close()
    assert asyncio.run(list_subnets(reads, owner)) == []
