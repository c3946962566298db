"""Accounts and their client credentials: create, list, revoke, rotate.

Used by the CLI and the web console; every change is committed before the
call returns, so the token endpoint and the bearer guard see it at once, and
its audit event is written in the same transaction.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from netcalc.accounts.passwords import hash_password
from netcalc.accounts.sent_forms import SentForm
from netcalc.accounts.tables import accounts, console_sessions, credentials
from netcalc.audit import CLI_ACTOR, Event, record
from netcalc.auth.announcements import (
    account_disabled,
    account_enabled,
    client_revoked,
    notify_in_transaction,
)
from netcalc.auth.client_secrets import (
    hash_secret,
    holds_client_secret,
    new_client_id,
    new_client_secret,
)
from netcalc.auth.scopes import check_known
from netcalc.db import new_id, utcnow
from netcalc.errors import InvalidScope, NotFound, UsageError, quoted
from netcalc.settings import MAX_ROTATION_GRACE
from netcalc.text import (
    is_printable,
    is_visible,
    shows_anything,
    without_formatting,
)

_EMAIL = re.compile(
    r"(?P<local>[^@\s.]+(?:\.[^@\s.]+)*)@(?:[^@\s.]{1,63}\.)+[^@\s.]{1,63}"
)
"""An email's shape: dot-separated words on both sides of the @, the domain
having at least two labels of at most 63 characters each."""

_LONGEST_EMAIL = 254
"""The longest address mail can be sent to (RFC 5321 §4.5.3.1.3)."""

_LONGEST_LOCAL_PART = 64
"""The longest part before the @ (RFC 5321 §4.5.3.1.1)."""


@dataclass(frozen=True)
class IssuedSecret:
    """A client secret just generated: the only time it is ever shown."""

    client_id: str
    client_secret: str
    rotated: bool = False
    """True when the secret replaced one of existing credentials."""
    previous_secret_expires_at: datetime | None = None
    """Until when a rotation left the replaced secret working, if it did."""
    ended_grace_of_older_secret: bool = False
    """True when this rotation stopped a secret that an earlier rotation had
    left working for its grace period."""
    shown_with: dict[str, Any] = field(default_factory=dict)
    """What new credentials may do, told beside their first secret: their
    name, scopes and token lifetime."""

    def as_dict(self) -> dict[str, Any]:
        """The secret as JSON, with what new credentials may do or, after a
        rotation, what became of the secrets before it."""
        issued = {"client_id": self.client_id, "client_secret": self.client_secret}
        if not self.rotated:
            return issued | self.shown_with
        expires = self.previous_secret_expires_at
        return issued | {
            "previous_secret_expires_at": expires.isoformat() if expires else None,
            "ended_grace_of_older_secret": self.ended_grace_of_older_secret,
        }


def email_key(email: str) -> str:
    """The email as it is stored and looked up: trimmed, lower-cased, and in
    one Unicode form (NFC), so two spellings that look alike are one."""
    return unicodedata.normalize("NFC", email.strip().lower())


def normalise_email(email: str) -> str:
    """The email as stored (`email_key`), if it has a plausible shape and
    holds no client secret."""
    cleaned = email_key(email)
    shape = _EMAIL.fullmatch(cleaned)
    if (
        shape is None
        or len(cleaned) > _LONGEST_EMAIL
        or len(shape["local"]) > _LONGEST_LOCAL_PART
        or not is_visible(cleaned)
        or holds_client_secret(cleaned)
    ):
        raise UsageError(f"{quoted(email)} is not an email address.")
    return cleaned


async def create_account(
    engine: AsyncEngine,
    email: str,
    password: str,
    *,
    actor: str = CLI_ACTOR,
    address: str | None = None,
) -> str:
    """Create an account and return its id; the email must be new."""
    values = {
        "id": new_id(),
        "email": normalise_email(email),
        # argon2id takes tens of milliseconds: off the loop, token requests
        # are not held up while someone signs up.
        "password_hash": await asyncio.to_thread(hash_password, password),
        "disabled": False,
        "created_at": utcnow(),
    }
    try:
        async with engine.begin() as connection:
            await connection.execute(accounts.insert().values(**values))
            await record(
                connection,
                "account.created",
                actor=actor,
                account_id=str(values["id"]),
                subject=str(values["email"]),
                address=address,
            )
    except IntegrityError:
        raise UsageError(f"An account for {values['email']} already exists.") from None
    return str(values["id"])


async def set_disabled(
    engine: AsyncEngine,
    account_id: str,
    disabled: bool,
    *,
    actor: str = CLI_ACTOR,
    address: str | None = None,
) -> bool:
    """Disable an account, refusing its tokens and ending its console
    sessions at once, or enable it again.

    Returns False when the account was in that state already, which changes
    nothing and records nothing.
    """
    statement = (
        update(accounts)
        .where(accounts.c.id == account_id, accounts.c.disabled != disabled)
        .values(disabled=disabled)
    )
    announcement = account_disabled if disabled else account_enabled
    event: Event = "account.disabled" if disabled else "account.enabled"
    email = select(accounts.c.email).where(accounts.c.id == account_id)
    async with engine.begin() as connection:
        if not (await connection.execute(statement)).rowcount:
            return False
        if disabled:
            # Ended, not hidden: a session must not come back on enabling.
            await connection.execute(
                delete(console_sessions).where(
                    console_sessions.c.account_id == account_id
                )
            )
        await notify_in_transaction(connection, announcement(account_id))
        subject = await connection.scalar(email)
        if subject is not None:
            await record(
                connection,
                event,
                actor=actor,
                account_id=account_id,
                subject=subject,
                address=address,
            )
    return True


async def set_password(
    engine: AsyncEngine,
    account_id: str,
    password: str,
    *,
    actor: str = CLI_ACTOR,
    address: str | None = None,
) -> None:
    """Give an account a new password and end its console sessions at once:
    whoever signed in with the old one is signed out."""
    # Off the loop, as at sign-up: argon2id takes tens of milliseconds.
    password_hash = await asyncio.to_thread(hash_password, password)
    statement = (
        update(accounts)
        .where(accounts.c.id == account_id)
        .values(password_hash=password_hash)
    )
    email = select(accounts.c.email).where(accounts.c.id == account_id)
    async with engine.begin() as connection:
        await connection.execute(statement)
        await connection.execute(
            delete(console_sessions).where(console_sessions.c.account_id == account_id)
        )
        subject = await connection.scalar(email)
        if subject is not None:
            await record(
                connection,
                "account.password_set",
                actor=actor,
                account_id=account_id,
                subject=subject,
                address=address,
            )


async def find_account(engine: AsyncEngine, email: str) -> dict[str, Any] | None:
    """The account with this email, or None."""
    query = select(accounts).where(accounts.c.email == email_key(email))
    async with engine.connect() as connection:
        row = (await connection.execute(query)).mappings().one_or_none()
    return dict(row) if row else None


async def account_id_for(engine: AsyncEngine, email: str) -> str:
    """The id of the account with this email, or a UsageError naming it."""
    account = await find_account(engine, email)
    if account is None:
        raise UsageError(
            f"No account has the email {quoted(email)}; "
            "create it with 'netcalc accounts create'."
        )
    return str(account["id"])


async def list_accounts(engine: AsyncEngine) -> list[dict[str, Any]]:
    """Every account, oldest first, with how many credentials it has that
    are not revoked; never a password hash."""
    active = func.count(credentials.c.client_id)
    query = (
        select(accounts.c.email, accounts.c.created_at, accounts.c.disabled, active)
        .outerjoin(
            credentials,
            (credentials.c.account_id == accounts.c.id)
            & credentials.c.revoked_at.is_(None),
        )
        .group_by(accounts.c.id)
        .order_by(accounts.c.created_at, accounts.c.email)
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return [
        {
            "email": email,
            "created_at": created_at.isoformat(),
            "disabled": disabled,
            "active_credentials": count,
        }
        for email, created_at, disabled, count in rows
    ]


async def count_accounts(engine: AsyncEngine) -> int:
    """How many accounts exist."""
    async with engine.connect() as connection:
        return int(
            (
                await connection.execute(select(func.count()).select_from(accounts))
            ).scalar_one()
        )


async def create_credentials(
    engine: AsyncEngine,
    hash_key: bytes,
    account_id: str,
    *,
    name: str,
    scopes: tuple[str, ...] = (),
    token_ttl: int | None = None,
    max_ttl: int,
    actor: str = CLI_ACTOR,
    address: str | None = None,
    form: SentForm | None = None,
) -> IssuedSecret:
    """Generate credentials for an account; the secret is returned once.

    Raises:
        FormAlreadySent: `form`, the console form that asked, was sent
            before; nothing is generated.
    """
    _check_credentials(name, scopes, token_ttl, max_ttl)
    client_id, secret = new_client_id(), new_client_secret()
    granted = {"name": name, "scopes": list(scopes), "token_ttl": token_ttl}
    async with engine.begin() as connection:
        if form is not None:
            await form.record(connection)
        await connection.execute(
            credentials.insert().values(
                client_id=client_id,
                account_id=account_id,
                name=name,
                scopes=" ".join(scopes),
                token_ttl=token_ttl,
                secret_hash=hash_secret(hash_key, secret),
                created_at=utcnow(),
            )
        )
        await record(
            connection,
            "credentials.created",
            actor=actor,
            account_id=account_id,
            subject=client_id,
            address=address,
            details=granted,
        )
    return IssuedSecret(client_id, secret, shown_with=granted)


def _check_credentials(
    name: str, scopes: tuple[str, ...], token_ttl: int | None, max_ttl: int
) -> None:
    if not shows_anything(name) or len(name) > 100 or not is_printable(name):
        raise UsageError(
            "A credentials name needs 1 to 100 characters, some of them "
            "visible and none of them control characters."
        )
    if holds_client_secret(without_formatting(name)):
        # Names are shown and recorded in the audit trail; a secret never is.
        raise UsageError(
            "A credentials name must not hold a client secret; name them for "
            "what uses them."
        )
    try:
        check_known(scopes)
    except InvalidScope as exc:
        raise UsageError(f"{exc} Known scopes: subnets:read, subnets:write.") from exc
    if token_ttl is not None and not 1 <= token_ttl <= max_ttl:
        raise UsageError(f"A token lifetime must be 1 to {max_ttl} seconds.")


async def list_credentials(
    engine: AsyncEngine, account_id: str
) -> list[dict[str, Any]]:
    """The account's credentials, oldest first, without any secret hash."""
    query = (
        select(
            credentials.c.client_id,
            credentials.c.name,
            credentials.c.scopes,
            credentials.c.token_ttl,
            credentials.c.created_at,
            credentials.c.last_used_at,
            credentials.c.revoked_at,
            credentials.c.previous_secret_expires_at,
        )
        .where(credentials.c.account_id == account_id)
        .order_by(credentials.c.created_at, credentials.c.client_id)
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).mappings().all()
    return [_present(row) for row in rows]


def _present(row: Any) -> dict[str, Any]:
    def stamp(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "client_id": row["client_id"],
        "name": row["name"],
        "scopes": row["scopes"].split(),
        "token_ttl": row["token_ttl"],
        "status": "revoked" if row["revoked_at"] else "active",
        "created_at": stamp(row["created_at"]),
        "last_used_at": stamp(row["last_used_at"]),
        "revoked_at": stamp(row["revoked_at"]),
        "previous_secret_expires_at": stamp(row["previous_secret_expires_at"]),
    }


async def revoke_credentials(
    engine: AsyncEngine,
    client_id: str,
    account_id: str | None = None,
    *,
    actor: str = CLI_ACTOR,
    address: str | None = None,
) -> bool:
    """Revoke credentials at once; with `account_id`, only that account's.

    Returns False when they were revoked already, which changes nothing.
    """
    statement = (
        update(credentials)
        .where(credentials.c.client_id == client_id, credentials.c.revoked_at.is_(None))
        .values(
            revoked_at=utcnow(),
            previous_secret_hash=None,
            previous_secret_expires_at=None,
        )
    )
    if account_id is not None:
        statement = statement.where(credentials.c.account_id == account_id)
    async with engine.begin() as connection:
        result = await connection.execute(statement)
        if result.rowcount:
            await notify_in_transaction(connection, client_revoked(client_id))
            owner = select(credentials.c.account_id).where(
                credentials.c.client_id == client_id
            )
            await record(
                connection,
                "credentials.revoked",
                actor=actor,
                account_id=await connection.scalar(owner),
                subject=client_id,
                address=address,
            )
    if result.rowcount == 0:
        await _require_credentials(engine, client_id, account_id)
        return False
    return True


async def _require_credentials(
    engine: AsyncEngine, client_id: str, account_id: str | None
) -> dict[str, Any]:
    query = select(credentials.c.revoked_at, credentials.c.account_id).where(
        credentials.c.client_id == client_id
    )
    async with engine.connect() as connection:
        row = (await connection.execute(query)).mappings().one_or_none()
    if row is None or account_id not in (None, row["account_id"]):
        raise NotFound(f"No credentials have the client id {quoted(client_id)}.")
    return dict(row)


async def rotate_credentials(
    engine: AsyncEngine,
    hash_key: bytes,
    client_id: str,
    *,
    grace: int,
    account_id: str | None = None,
    actor: str = CLI_ACTOR,
    address: str | None = None,
    form: SentForm | None = None,
) -> IssuedSecret:
    """Issue a new secret; the old one keeps working for `grace` seconds.

    A grace of 0 ends the old secret at once. Rotating again during a grace
    period ends the older secret's grace: at most two secrets ever work.

    Raises:
        FormAlreadySent: `form`, the console form that asked, was sent
            before; nothing is rotated.
    """
    if grace < 0:
        raise UsageError("The grace period cannot be negative.")
    if grace > MAX_ROTATION_GRACE:
        raise UsageError(
            f"The grace period is at most {MAX_ROTATION_GRACE} seconds (30 days)."
        )
    current = await _require_credentials(engine, client_id, account_id)
    if current["revoked_at"] is not None:
        raise UsageError("Revoked credentials cannot be rotated; create new ones.")
    secret = new_client_secret()
    now = utcnow()
    expires = now + timedelta(seconds=grace) if grace else None
    # A step of its own, so that the transaction tells whether a secret
    # still in its grace stopped, however rotations race.
    ends_older_grace = (
        update(credentials)
        .where(
            credentials.c.client_id == client_id,
            credentials.c.revoked_at.is_(None),
            credentials.c.previous_secret_hash.is_not(None),
            credentials.c.previous_secret_expires_at > now,
        )
        .values(previous_secret_hash=None, previous_secret_expires_at=None)
    )
    statement = (
        update(credentials)
        .where(credentials.c.client_id == client_id, credentials.c.revoked_at.is_(None))
        .values(
            previous_secret_hash=credentials.c.secret_hash if grace else None,
            previous_secret_expires_at=expires,
            secret_hash=hash_secret(hash_key, secret),
        )
    )
    async with engine.begin() as connection:
        if form is not None:
            await form.record(connection)
        ended_grace = bool((await connection.execute(ends_older_grace)).rowcount)
        if not (await connection.execute(statement)).rowcount:
            # Raised inside the transaction, so the form stays unsent.
            raise UsageError("The credentials were revoked while rotating.")
        await record(
            connection,
            "credentials.rotated",
            actor=actor,
            account_id=current["account_id"],
            subject=client_id,
            address=address,
            details={"grace_seconds": grace},
        )
    return IssuedSecret(
        client_id,
        secret,
        rotated=True,
        previous_secret_expires_at=expires,
        ended_grace_of_older_secret=ended_grace,
    )
