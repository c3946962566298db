"""Revoked credentials and tokens, held in memory and kept in step.

An instance loads every revoked client id, revoked token id and disabled
account at start, applies each change another process announces as soon as
it arrives, and reloads everything on a short timer in case a message was
lost. Announcements travel by Redis pub/sub when Redis is configured, and
otherwise by PostgreSQL LISTEN/NOTIFY, sent inside the transaction that
makes the change so that no listener hears of a change that did not commit.

SQLite has neither; there the bearer guard reads the database on every call
instead, which is exact and cheap enough on one machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from netcalc.accounts.tables import accounts, credentials
from netcalc.auth.announcements import CHANNEL
from netcalc.auth.store import token_is_live
from netcalc.auth.tables import revoked_tokens
from netcalc.db import Reads, utcnow
from netcalc.settings import Settings

logger = logging.getLogger("netcalc.auth")


class RevocationList:
    """What this instance knows to be revoked or disabled."""

    def __init__(self) -> None:
        self.clients: set[str] = set()
        self.tokens: set[str] = set()
        self.accounts: set[str] = set()
        self._heard_while_loading: list[str] | None = None

    def apply(self, message: str) -> None:
        """Record one announcement such as 'client:<id>' or 'token:<jti>'."""
        if self._heard_while_loading is not None:
            self._heard_while_loading.append(message)
        self._apply(message)

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
            heard = self._heard_while_loading
        finally:
            self._heard_while_loading = None
        for message in heard:
            self._apply(message)

    async def _load(self, engine: AsyncEngine) -> None:
        async with engine.connect() as connection:
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


class RevocationFeed(Protocol):
    """A channel that carries announcements between instances."""

    async def listen(self, deliver: Callable[[str], None]) -> None:
        """Start delivering announcements; return once listening."""

    async def publish(self, message: str) -> None:
        """Announce a change to every listener."""

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

    async def publish(self, message: str) -> None:
        # Changes already announce themselves inside their transaction.
        return None

    def healthy(self) -> bool:
        return self._connection is not None and not self._connection.is_closed()

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()


class RedisFeed:
    """Redis pub/sub; shared with the rate-limit counters' server."""

    def __init__(self, redis_url: str) -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(redis_url)
        self._task: asyncio.Task[None] | None = None

    async def listen(self, deliver: Callable[[str], None]) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(CHANNEL)
        self._task = asyncio.create_task(self._read(pubsub, deliver))

    async def _read(self, pubsub: Any, deliver: Callable[[str], None]) -> None:
        async for message in pubsub.listen():
            data = message.get("data")
            if isinstance(data, bytes):
                deliver(data.decode())

    async def publish(self, message: str) -> None:
        await self._redis.publish(CHANNEL, message)

    def healthy(self) -> bool:
        return self._task is not None and not self._task.done()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._redis.aclose()


async def publish(settings: Settings, message: str) -> None:
    """Announce a change made outside any server, as the CLI does."""
    if settings.redis_url:
        feed = RedisFeed(settings.redis_url)
        try:
            await feed.publish(message)
        finally:
            await feed.close()


def feed_for(database_url: str, redis_url: str | None) -> RevocationFeed | None:
    """The feed this deployment announces on: Redis, else PostgreSQL, else none."""
    if redis_url:
        return RedisFeed(redis_url)
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
        self.known = RevocationList()
        self._task: asyncio.Task[None] | None = None

    @property
    def in_memory(self) -> bool:
        """True while announcements arrive, so memory is as good as the database."""
        return self._feed is not None and self._feed.healthy()

    async def _connect(self, feed: RevocationFeed) -> None:
        try:
            # Listen before loading, so nothing announced in between is missed.
            await feed.listen(self.known.apply)
            await self.known.resync(self._engine)
        except Exception:
            logger.exception("revocation feed unavailable; reading the database")

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
            except Exception:
                logger.exception("revocation resync failed; retrying later")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._feed is not None:
            await self._feed.close()

    async def announce(self, message: str) -> None:
        """Apply a change here at once and tell the other instances."""
        self.known.apply(message)
        if self._feed is not None:
            await self._feed.publish(message)

    async def is_live(self, client_id: str, account_id: str, jti: str) -> bool:
        """False when the token, its credentials or its account is switched off."""
        if self.in_memory:
            return not self.known.refuses(client_id, account_id, jti)
        return await token_is_live(self._reads, client_id, jti)
