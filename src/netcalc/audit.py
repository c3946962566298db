"""The audit trail: who changed what, from which address, and when.

Each event is written where its change is made, inside the same transaction
when the change has one, so a change that was acknowledged always has its
event. An event names what it is about by id or email only: it never holds
a client secret, a password, a token or any hash of them.

The account id is not a foreign key: a trail must outlive what it describes,
and a failed sign-in for an unknown email belongs to no account at all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from netcalc.db import UTCDateTime, metadata, utcnow
from netcalc.errors import UsageError

Event = Literal[
    "account.created",
    "account.disabled",
    "account.enabled",
    "account.password_set",
    "credentials.created",
    "credentials.rotated",
    "credentials.revoked",
    "token.revoked",
    "keys.rotated",
    "signin.succeeded",
    "signin.failed",
    "signout",
]
"""Every kind of event the trail records."""

CLI_ACTOR = "cli"
"""The actor of changes made with the `netcalc` command."""

MAX_LIMIT = 10_000
"""The most events one listing returns."""

PURGE_BATCH = 1_000
"""The most events one purge deletes, so a trail long past its retention is
cut over several maintenance rounds without holding the writer for long."""

audit_events = Table(
    "audit_events",
    metadata,
    # Insertion order breaks ties between events of the same microsecond.
    Column(
        "id",
        BigInteger().with_variant(Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("occurred_at", UTCDateTime, nullable=False, index=True),
    Column("event", String(40), nullable=False),
    # "cli", "console:<email>" or "oauth:<client id>".
    Column("actor", String(300), nullable=False),
    Column("account_id", String(32), nullable=True),
    # A client id, key id, token id or email: what the event is about.
    Column("subject", String(320), nullable=False),
    Column("address", String(64), nullable=True),
    # A JSON object of a few facts, such as a name or a grace period.
    Column("details", Text, nullable=True),
    Index(None, "account_id", "occurred_at"),
)


def _clip(value: str | None, column: str) -> str | None:
    """Cut a value to its column's length: an event must never fail its change."""
    length = getattr(audit_events.c[column].type, "length", None)
    if value is None or length is None:
        return value
    return value[:length]


async def record(
    target: AsyncConnection | AsyncEngine,
    event: Event,
    *,
    actor: str,
    subject: str,
    account_id: str | None = None,
    address: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Write one event, on `target`'s transaction when given a connection.

    Args:
        target: a connection inside the change's transaction, or an engine
            when the change has already committed.
        event: what happened.
        actor: who did it.
        subject: what it was done to, by id or email; never a secret.
        account_id: whose trail the event belongs to, if anyone's.
        address: where the request came from; None for the CLI.
        details: a few more facts; never a secret.
    """
    statement = audit_events.insert().values(
        occurred_at=utcnow(),
        event=event,
        actor=_clip(actor, "actor"),
        account_id=account_id,
        subject=_clip(subject, "subject"),
        address=_clip(address, "address"),
        details=json.dumps(dict(details), sort_keys=True) if details else None,
    )
    if isinstance(target, AsyncConnection):
        await target.execute(statement)
        return
    async with target.begin() as connection:
        await connection.execute(statement)


async def list_events(
    engine: AsyncEngine, *, account_id: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The newest events first; with `account_id`, only that account's.

    Raises:
        UsageError: when `limit` is not 1 to MAX_LIMIT.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise UsageError(f"A limit must be 1 to {MAX_LIMIT} events.")
    query = (
        select(audit_events)
        .order_by(audit_events.c.occurred_at.desc(), audit_events.c.id.desc())
        .limit(limit)
    )
    if account_id is not None:
        query = query.where(audit_events.c.account_id == account_id)
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).mappings().all()
    return [_present(row) for row in rows]


def _present(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "occurred_at": row["occurred_at"].isoformat(),
        "event": row["event"],
        "actor": row["actor"],
        "account_id": row["account_id"],
        "subject": row["subject"],
        "address": row["address"],
        "details": json.loads(row["details"]) if row["details"] else {},
    }


async def purge_events(
    engine: AsyncEngine, retention: timedelta, batch: int = PURGE_BATCH
) -> int:
    """Delete up to `batch` of the oldest events older than `retention`;
    returns how many were deleted."""
    cutoff = utcnow() - retention
    oldest = (
        select(audit_events.c.id)
        .where(audit_events.c.occurred_at < cutoff)
        .order_by(audit_events.c.occurred_at)
        .limit(batch)
    )
    async with engine.begin() as connection:
        ids = (await connection.execute(oldest)).scalars().all()
        if ids:
            await connection.execute(
                audit_events.delete().where(audit_events.c.id.in_(ids))
            )
    return len(ids)
