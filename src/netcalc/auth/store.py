"""What the grant and the bearer guard read and write in the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, exists, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from netcalc.accounts.tables import accounts, credentials
from netcalc.auth.announcements import notify_in_transaction, token_revoked
from netcalc.auth.scopes import parse_scope
from netcalc.auth.tables import revoked_tokens
from netcalc.db import Reads, utcnow


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


def _read_client(connection: Connection, client_id: str) -> ClientRecord | None:
    row = connection.execute(_CLIENT_BY_ID, {"client_id": client_id}).one_or_none()
    if row is None:
        return None
    return ClientRecord(
        client_id=row.client_id,
        account_id=row.account_id,
        scopes=parse_scope(row.scopes),
        token_ttl=row.token_ttl,
        secret_hash=row.secret_hash,
        previous_secret_hash=row.previous_secret_hash,
        previous_secret_expires_at=row.previous_secret_expires_at,
        revoked=row.revoked_at is not None,
        account_disabled=row.disabled,
    )


def _read_liveness(connection: Connection, client_id: str, jti: str) -> bool:
    params = {"client_id": client_id, "jti": jti}
    row = connection.execute(_LIVENESS, params).one_or_none()
    return row is not None and row[0] is None and not row[1] and not row[2]


async def find_client(reads: Reads, client_id: str) -> ClientRecord | None:
    """The credentials with this client id and their account's state."""
    return await reads.run(_read_client, client_id)


async def token_is_live(reads: Reads, client_id: str, jti: str) -> bool:
    """False once the token, its credentials or its account is switched off."""
    return await reads.run(_read_liveness, client_id, jti)


async def revoke_token(
    engine: AsyncEngine, jti: str, client_id: str, expires_at: datetime
) -> None:
    """Record one access token as revoked until it would have expired."""
    already = select(revoked_tokens.c.jti).where(revoked_tokens.c.jti == jti)
    async with engine.begin() as connection:
        if (await connection.execute(already)).first() is None:
            await connection.execute(
                revoked_tokens.insert().values(
                    jti=jti, client_id=client_id, expires_at=expires_at
                )
            )
            await notify_in_transaction(connection, token_revoked(jti))


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
