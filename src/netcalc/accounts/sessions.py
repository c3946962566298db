"""Server-side sessions of the web console, and its sign-in and sign-up limits.

The cookie carries a random session token with an HMAC of it, so a forged
or altered cookie is refused without a database read. The database keeps
only a SHA-256 of the token: a copy of the table opens no session. Each
session holds the CSRF token its forms must echo, and the single-use forms
it sent (`sent_forms`), which are deleted with it. A signed-out visitor
gets a session too (without an account), so that the sign-in and sign-up
forms are protected as well; signing in always starts a new session.

A visitor's session is not stored: its token carries the time it was
started, under the same HMAC, and its CSRF token is an HMAC of the token.
Anyone may open the sign-in page as often as they like, and a stored row
for each visit would let them grow the database at will.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from limits import RateLimitItem, parse
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from netcalc.accounts.tables import accounts, console_sessions
from netcalc.auth.counts import LocalCounts
from netcalc.auth.derive import derive_key
from netcalc.auth.throttle import FailureThrottle
from netcalc.db import utcnow
from netcalc.errors import TooManySignUps, UsageError
from netcalc.settings import Settings

SESSION_KEY_PURPOSE = "netcalc console session"

COOKIE_NAME = "netcalc_session"
"""The console's one cookie."""

SIGNED_IN_LIFETIME = timedelta(hours=12)
"""How long a signed-in session lasts, however active; then sign in again."""

VISITOR_LIFETIME = timedelta(hours=2)
"""How long the session behind a signed-out visitor's forms lasts."""


@dataclass(frozen=True)
class ConsoleSession:
    """One live session, as a request sees it."""

    token_hash: str
    csrf_token: str
    account_id: str | None
    email: str | None
    expires_at: datetime

    @property
    def signed_in(self) -> bool:
        """True when the session belongs to an account."""
        return self.account_id is not None


@dataclass(frozen=True)
class OpenedSession:
    """A session just started, with the cookie value that carries it."""

    session: ConsoleSession
    cookie: str
    lifetime: timedelta


_VISITOR = "visitor:"
"""How a visitor's session token begins: then its start time and a nonce."""

_VISITOR_CSRF = "csrf:"
"""Set before a visitor token when its CSRF token is derived from it."""

_TIMESTAMP_DIGITS = 11
"""Digits of a visitor session's start time, in seconds, until year 5138."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    """Starts, finds and ends console sessions."""

    def __init__(self, engine: AsyncEngine, key: bytes) -> None:
        self._engine = engine
        self._key = key

    def _signature(self, token: str) -> str:
        mac = hmac.new(self._key, token.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def _token_of(self, cookie: str) -> str | None:
        token, _, signature = cookie.partition(".")
        expected = self._signature(token)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            return None
        return token

    async def find(self, cookie: str | None) -> ConsoleSession | None:
        """The live session a cookie carries, or None."""
        token = self._token_of(cookie) if cookie else None
        if token is None:
            return None
        if token.startswith(_VISITOR):
            return self._visitor_session(token)
        query = (
            select(console_sessions, accounts.c.email, accounts.c.disabled)
            .outerjoin(accounts, accounts.c.id == console_sessions.c.account_id)
            .where(
                console_sessions.c.token_hash == _hash(token),
                console_sessions.c.expires_at > utcnow(),
            )
        )
        async with self._engine.connect() as connection:
            row = (await connection.execute(query)).mappings().one_or_none()
        # A disabled account's sessions end with it.
        if row is None or row["disabled"]:
            return None
        return ConsoleSession(
            token_hash=row["token_hash"],
            csrf_token=row["csrf_token"],
            account_id=row["account_id"],
            email=row["email"],
            expires_at=row["expires_at"],
        )

    async def start(
        self,
        account_id: str | None,
        replacing: ConsoleSession | None = None,
        *,
        password_hash: str | None = None,
    ) -> OpenedSession:
        """Start a session, ending `replacing`, so no session id outlives sign-in.

        Expired sessions of anyone are swept out in the same transaction. A
        visitor's session (no account) is made without the database.

        Raises:
            UsageError: the account is disabled, even if only since its
                password was checked, or its password is no longer
                `password_hash`, the one that was checked.
        """
        if account_id is None:
            return self._start_visitor()
        token = secrets.token_urlsafe(32)
        lifetime = SIGNED_IN_LIFETIME
        now = utcnow()
        values = {
            "token_hash": _hash(token),
            "account_id": account_id,
            "csrf_token": secrets.token_urlsafe(32),
            "created_at": now,
            "expires_at": now + lifetime,
        }
        stale = console_sessions.c.expires_at <= now
        if replacing is not None:
            stale = stale | (console_sessions.c.token_hash == replacing.token_hash)
        # Read after the insert, the account's row locked: a disabling or a
        # new password that committed first is seen here, and one that
        # commits later finds this session among those it deletes.
        state = (
            select(accounts.c.disabled, accounts.c.password_hash)
            .where(accounts.c.id == account_id)
            .with_for_update()
        )
        async with self._engine.begin() as connection:
            await connection.execute(delete(console_sessions).where(stale))
            await connection.execute(console_sessions.insert().values(**values))
            disabled, current_hash = (await connection.execute(state)).one()
            if disabled:
                raise UsageError("This account is disabled.")
            if password_hash is not None and current_hash != password_hash:
                raise UsageError("The password has just changed: sign in again.")
        session = ConsoleSession(
            token_hash=str(values["token_hash"]),
            csrf_token=str(values["csrf_token"]),
            account_id=account_id,
            email=None,
            expires_at=now + lifetime,
        )
        return OpenedSession(session, f"{token}.{self._signature(token)}", lifetime)

    def _start_visitor(self) -> OpenedSession:
        started = int(utcnow().timestamp())
        token = f"{_VISITOR}{started}:{secrets.token_urlsafe(32)}"
        cookie = f"{token}.{self._signature(token)}"
        return OpenedSession(self._visitor(token, started), cookie, VISITOR_LIFETIME)

    def _visitor_session(self, token: str) -> ConsoleSession | None:
        """The live visitor session of a token whose signature is checked."""
        started, _, _ = token.removeprefix(_VISITOR).partition(":")
        if not started.isdigit() or len(started) > _TIMESTAMP_DIGITS:
            return None
        session = self._visitor(token, int(started))
        return session if session.expires_at > utcnow() else None

    def _visitor(self, token: str, started: int) -> ConsoleSession:
        return ConsoleSession(
            token_hash=_hash(token),
            csrf_token=self._signature(_VISITOR_CSRF + token),
            account_id=None,
            email=None,
            expires_at=datetime.fromtimestamp(started, UTC) + VISITOR_LIFETIME,
        )

    async def end(self, session: ConsoleSession) -> None:
        """End a session at once, and forget the forms it sent."""
        statement = delete(console_sessions).where(
            console_sessions.c.token_hash == session.token_hash
        )
        async with self._engine.begin() as connection:
            await connection.execute(statement)

    async def purge_expired(self) -> None:
        """Delete every expired session, and with each the forms it sent."""
        statement = delete(console_sessions).where(
            console_sessions.c.expires_at <= utcnow()
        )
        async with self._engine.begin() as connection:
            await connection.execute(statement)


class SignInThrottle:
    """Failed sign-ins counted per email and per address, with their own limits.

    The counts may be kept with the token endpoint's; the prefix keeps the
    two apart even when their limits are the same.
    """

    def __init__(self, throttle: FailureThrottle) -> None:
        self._throttle = throttle

    async def check(self, email: str, address: str) -> None:
        """Raise TooManyRequests when this email or address is over its limit."""
        await self._throttle.check("signin:" + email, "signin:" + address)

    async def failed(self, email: str, address: str) -> None:
        """Count one failed sign-in."""
        await self._throttle.failed("signin:" + email, "signin:" + address)


class SignUpLimit:
    """Sign-ups allowed per address, counted whether they succeed or not:
    each one costs an argon2id hash, and most store an account."""

    def __init__(self, limit: RateLimitItem, counts: LocalCounts | None = None) -> None:
        self._limit = limit
        self._counts = counts or LocalCounts()

    async def count(self, address: str) -> None:
        """Count one sign-up from `address`; raise TooManySignUps past the limit."""
        key = "signup:" + address
        if not await self._counts.hit(self._limit, key):
            reset_time = await self._counts.reset_time(self._limit, key)
            raise TooManySignUps(math.ceil(reset_time - time.time()))


@dataclass(frozen=True)
class ConsoleAuth:
    """What the console needs to sign account holders up and in, built once."""

    sessions: SessionStore
    throttle: SignInThrottle
    sign_ups: SignUpLimit

    @classmethod
    def build(
        cls,
        settings: Settings,
        engine: AsyncEngine,
        server_secret: bytes,
        counts: LocalCounts | None = None,
    ) -> ConsoleAuth:
        """The session store and the sign-in and sign-up limits, counting in
        `counts`."""
        key = derive_key(server_secret, SESSION_KEY_PURPOSE)
        throttle = FailureThrottle(
            parse(settings.failed_signin_per_email),
            parse(settings.failed_signin_per_address),
            counts,
        )
        sign_ups = SignUpLimit(parse(settings.signups_per_address), counts)
        return cls(SessionStore(engine, key), SignInThrottle(throttle), sign_ups)
