"""What the grant and the bearer guard read and write in the database."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, exists, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from netcalc.accounts.tables import accounts, credentials
from netcalc.auth.announcements import notify_in_transaction, token_revoked
from netcalc.auth.scopes import parse_scope
from netcalc.auth.tables import revoked_tokens
from netcalc.db import Reads, Row, utcnow


@dataclass(frozen=True)
class ClientRecord:
    """Stored credentials as the grant needs them; never the secret itself."""

    client_id: str
    account_id: str
    scopes: tuple[str, ...]
    token_ttl: int | None
    secret_hash: str
    previous_secret_hash: str | None
    previous_secret_expires_at: datetime | None
    revoked: bool
    account_disabled: bool


# Built once with bound parameters: building and keying a fresh statement
# per request cost more than running it.
_CLIENT_BY_ID = (
    select(
        credentials.c.client_id,
        credentials.c.account_id,
        credentials.c.scopes,
        credentials.c.token_ttl,
        credentials.c.secret_hash,
        credentials.c.previous_secret_hash,
        credentials.c.previous_secret_expires_at,
        credentials.c.revoked_at,
        accounts.c.disabled,
    )
    .join(accounts, accounts.c.id == credentials.c.account_id)
    .where(credentials.c.client_id == bindparam("client_id"))
)

_LIVENESS = (
    select(
        credentials.c.revoked_at,
        accounts.c.disabled,
        exists().where(revoked_tokens.c.jti == bindparam("jti")),
    )
    .join(accounts, accounts.c.id == credentials.c.account_id)
    .where(credentials.c.client_id == bindparam("client_id"))
)


def _client_record(row: Row) -> ClientRecord:
    (
        client_id,
        account_id,
        scopes,
        token_ttl,
        secret_hash,
        previous_secret_hash,
        previous_secret_expires_at,
        revoked_at,
        disabled,
    ) = row
    return ClientRecord(
        client_id=client_id,
        account_id=account_id,
        scopes=parse_scope(scopes),
        token_ttl=token_ttl,
        secret_hash=secret_hash,
        previous_secret_hash=previous_secret_hash,
        previous_secret_expires_at=previous_secret_expires_at,
        revoked=revoked_at is not None,
        account_disabled=disabled,
    )


def _first_client_record(rows: list[Row]) -> ClientRecord | None:
    # The client id is the primary key: one row or none.
    return _client_record(rows[0]) if rows else None


def _is_live(rows: list[Row]) -> bool:
    if not rows:
        return False
    revoked_at, disabled, jti_revoked = rows[0]
    return revoked_at is None and not disabled and not jti_revoked


def find_client(reads: Reads, client_id: str) -> Awaitable[ClientRecord | None]:
    """The credentials with this client id and their account's state.

    Not a coroutine, like token_is_live: every token request asks.
    """
    params = {"client_id": client_id}
    return reads.read(_CLIENT_BY_ID, params, _first_client_record)


def token_is_live(reads: Reads, client_id: str, jti: str) -> Awaitable[bool]:
    """False once the token, its credentials or its account is switched off.

    Not a coroutine: every account call asks, and the caller awaits the
    read itself.
    """
    params = {"client_id": client_id, "jti": jti}
    return reads.read(_LIVENESS, params, _is_live)


async def revoke_token(
    engine: AsyncEngine, jti: str, client_id: str, expires_at: datetime
) -> bool:
    """Record one access token as revoked until it would have expired.

    False if it already was. The row is inserted unless one exists, in one
    statement: revocations of the same token at once, which clients that
    retry send, add one row and tell the other instances once.
    """
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    statement = (
        insert(revoked_tokens)
        .values(jti=jti, client_id=client_id, expires_at=expires_at)
        .on_conflict_do_nothing()
    )
    async with engine.begin() as connection:
        if (await connection.execute(statement)).rowcount == 0:
            return False
        await notify_in_transaction(connection, token_revoked(jti))
    return True


async def record_last_used(engine: AsyncEngine, used: dict[str, datetime]) -> None:
    """Write the `last_used_at` of many credentials in one transaction."""
    if not used:
        return
    statement = (
        update(credentials)
        .where(credentials.c.client_id == bindparam("used_id"))
        .values(last_used_at=bindparam("used_at"))
    )
    rows = [{"used_id": cid, "used_at": when} for cid, when in used.items()]
    async with engine.begin() as connection:
        await connection.execute(statement, rows)


async def purge_expired_revocations(engine: AsyncEngine) -> None:
    """Forget revoked tokens that have expired anyway."""
    async with engine.begin() as connection:
        await connection.execute(
            revoked_tokens.delete().where(revoked_tokens.c.expires_at < utcnow())
        )
