"""Revoked credentials and tokens, held in memory and kept in step.

On PostgreSQL an instance loads every revoked client id, revoked token id
and disabled account at start, and applies each change as its LISTEN/NOTIFY
announcement arrives. The announcement is sent inside the transaction that
makes the change, so no listener hears of a change that did not commit,
and none is lost while the change commits.

An announcement still travels: it may reach this instance after a client
has already been told that the revoke is done. So each change also takes
the next revocation epoch, in its own transaction, and each announcement
carries it. Before a token is judged from memory, this instance reads the
newest epoch, once for all the requests of one turn of its event loop,
started after they arrived: a revocation that committed before them has
an epoch no newer. When the memory has heard that epoch, it is complete
for them; otherwise, as while announcements are not arriving at all, the
token is judged by a read of the database. Everything is also reloaded on
a timer, in case the listening connection was lost and found again.

SQLite has no announcements; there the bearer guard reads the database on
every call instead, which is exact and cheap enough on one machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from netcalc.accounts.tables import accounts, credentials
from netcalc.auth.announcements import CHANNEL, heard
from netcalc.auth.store import token_is_live
from netcalc.auth.tables import revocation_epoch, revoked_tokens
from netcalc.db import Reads, Row, utcnow
from netcalc.fresh_reads import FreshRead
from netcalc.outages import log_background_failure

_EPOCH = select(revocation_epoch.c.epoch)


def _epoch_of(rows: list[Row]) -> int:
    return int(rows[0][0]) if rows else 0


class RevocationList:
    """What this instance knows to be revoked or disabled."""

    def __init__(self) -> None:
        self.clients: set[str] = set()
        self.tokens: set[str] = set()
        self.accounts: set[str] = set()
        self.epoch = 0
        """The newest revocation epoch applied here with every one before it."""
        self._heard_while_loading: list[tuple[int | None, str]] | None = None

    def announced(self, payload: str) -> None:
        """Apply one announcement as it arrived: an epoch and a change."""
        epoch, message = heard(payload)
        if self._heard_while_loading is not None:
            self._heard_while_loading.append((epoch, message))
        self._apply_newer(epoch, message)

    def apply(self, message: str) -> None:
        """Apply a change this instance made, such as 'client:<id>' or
        'token:<jti>', before its announcement comes back."""
        if self._heard_while_loading is not None:
            self._heard_while_loading.append((None, message))
        self._apply(message)

    def _apply_newer(self, epoch: int | None, message: str) -> None:
        # Without an epoch, the change is this instance's own and committed.
        if epoch is None or epoch > self.epoch:
            self._apply(message)
        # Epochs commit one after another, so a gap means announcements were
        # missed, as while the feed reconnected: the memory stays behind, and
        # tokens are checked in the database, until a reload fills it.
        if epoch == self.epoch + 1:
            self.epoch = epoch

    def _apply(self, message: str) -> None:
        kind, _, value = message.partition(":")
        if kind == "enabled":
            self.accounts.discard(value)
            return
        target = {
            "client": self.clients,
            "token": self.tokens,
            "account": self.accounts,
        }.get(kind)
        if target is not None and value:
            target.add(value)

    def refuses(self, client_id: str, account_id: str, jti: str) -> bool:
        """True when the token, its credentials or its account is switched off."""
        return (
            jti in self.tokens
            or client_id in self.clients
            or account_id in self.accounts
        )

    async def resync(self, engine: AsyncEngine) -> None:
        """Reload everything from the database, the source of truth.

        An announcement heard while the snapshot loads may be newer than
        the snapshot, so it is applied again on top of it.
        """
        self._heard_while_loading = []
        try:
            await self._load(engine)
            meanwhile = self._heard_while_loading
        finally:
            self._heard_while_loading = None
        for epoch, message in meanwhile:
            self._apply_newer(epoch, message)

    async def _load(self, engine: AsyncEngine) -> None:
        if engine.dialect.name == "postgresql":
            # One snapshot for the lists and the epoch, so that the epoch
            # says exactly which changes the lists hold.
            engine = engine.execution_options(isolation_level="REPEATABLE READ")
        async with engine.connect() as connection:
            epoch = await connection.scalar(_EPOCH)
            clients = await connection.scalars(
                select(credentials.c.client_id).where(
                    credentials.c.revoked_at.is_not(None)
                )
            )
            tokens = await connection.scalars(
                select(revoked_tokens.c.jti).where(
                    revoked_tokens.c.expires_at > utcnow()
                )
            )
            disabled = await connection.scalars(
                select(accounts.c.id).where(accounts.c.disabled.is_(True))
            )
            self.clients, self.tokens = set(clients), set(tokens)
            self.accounts = set(disabled)
            self.epoch = epoch or 0


class RevocationFeed(Protocol):
    """A channel that carries announcements between instances."""

    async def listen(self, deliver: Callable[[str], None]) -> None:
        """Start delivering announcements; return once listening."""

    def healthy(self) -> bool:
        """True while announcements are being received."""

    async def close(self) -> None:
        """Stop listening and release connections."""


class PostgresFeed:
    """LISTEN/NOTIFY on a connection of its own (asyncpg)."""

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._connection: Any = None

    async def listen(self, deliver: Callable[[str], None]) -> None:
        import asyncpg

        self._connection = await asyncpg.connect(self._dsn)

        def on_notify(_: Any, __: int, ___: str, payload: str) -> None:
            deliver(payload)

        await self._connection.add_listener(CHANNEL, on_notify)

    def healthy(self) -> bool:
        return self._connection is not None and not self._connection.is_closed()

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()


def feed_for(database_url: str) -> RevocationFeed | None:
    """The feed of announcements: PostgreSQL's, else none."""
    if make_url(database_url).get_backend_name() in ("postgresql", "postgres"):
        return PostgresFeed(database_url)
    return None


class Revocations:
    """The revocation state one instance checks tokens against."""

    def __init__(
        self,
        engine: AsyncEngine,
        reads: Reads,
        feed: RevocationFeed | None,
        resync_seconds: float,
    ) -> None:
        self._engine = engine
        self._reads = reads
        self._feed = feed
        self._resync_seconds = resync_seconds
        # Read once for the requests of a turn, sent after they arrived: a
        # revocation committed before them has an epoch no newer.
        self._epochs = FreshRead(partial(reads.read, _EPOCH, {}, _epoch_of))
        self.known = RevocationList()
        self._task: asyncio.Task[None] | None = None

    @property
    def in_memory(self) -> bool:
        """True while announcements arrive, so memory may answer."""
        return self._feed is not None and self._feed.healthy()

    async def _connect(self, feed: RevocationFeed) -> None:
        try:
            # Listen before loading, so nothing announced in between is missed.
            await feed.listen(self.known.announced)
            await self.known.resync(self._engine)
        except Exception as exc:
            # Meanwhile every token is checked in the database.
            log_background_failure("listening for revocations", exc)

    async def start(self) -> None:
        """Listen for announcements and keep resynchronising on a timer."""
        if self._feed is None:
            return
        await self._connect(self._feed)
        self._task = asyncio.create_task(self._keep_in_step(self._feed))

    async def _keep_in_step(self, feed: RevocationFeed) -> None:
        while True:
            await asyncio.sleep(self._resync_seconds)
            try:
                if self.in_memory:
                    await self.known.resync(self._engine)
                else:
                    await feed.close()
                    await self._connect(feed)
            except Exception as exc:
                log_background_failure("reloading the revocations", exc)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._feed is not None:
            await self._feed.close()

    def announce(self, message: str) -> None:
        """Apply a change this instance made at once; the others hear of it
        by the announcement its transaction sent."""
        self.known.apply(message)

    def is_live(self, client_id: str, account_id: str, jti: str) -> Awaitable[bool]:
        """False when the token, its credentials or its account is switched off.

        Not a coroutine: every account call asks, and where no announcements
        arrive, the caller awaits the database's read itself.
        """
        if self.in_memory:
            return self._is_live_in_memory(client_id, account_id, jti)
        return token_is_live(self._reads, client_id, jti)

    async def _is_live_in_memory(
        self, client_id: str, account_id: str, jti: str
    ) -> bool:
        if await self._epochs.answer() <= self.known.epoch:
            return not self.known.refuses(client_id, account_id, jti)
        return await token_is_live(self._reads, client_id, jti)
