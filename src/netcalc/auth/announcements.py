"""Announcements of revocations, as they travel between instances.

Kept free of other netcalc imports so that any writer of revocations can
announce them.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

CHANNEL = "netcalc_revocations"
"""The LISTEN/NOTIFY channel of announcements."""


def client_revoked(client_id: str) -> str:
    """The announcement that credentials were revoked."""
    return f"client:{client_id}"


def account_disabled(account_id: str) -> str:
    """The announcement that an account was disabled."""
    return f"account:{account_id}"


def account_enabled(account_id: str) -> str:
    """The announcement that a disabled account was enabled again."""
    return f"enabled:{account_id}"


def token_revoked(jti: str) -> str:
    """The announcement that one access token was revoked."""
    return f"token:{jti}"


async def notify_in_transaction(connection: AsyncConnection, message: str) -> None:
    """Announce a change by NOTIFY, delivered only if the transaction commits.

    The change also takes the next revocation epoch, which the announcement
    carries. The row lock makes changes commit in epoch order, so listeners
    hear the epochs in order, and an instance that reads a newer epoch than
    it has heard knows it has missed something.
    """
    if connection.dialect.name != "postgresql":
        return
    epoch = await connection.scalar(_NEXT_EPOCH)
    await connection.execute(
        text("SELECT pg_notify(:channel, :message)"),
        {"channel": CHANNEL, "message": f"{epoch} {message}"},
    )


_NEXT_EPOCH = text("UPDATE revocation_epoch SET epoch = epoch + 1 RETURNING epoch")


def heard(payload: str) -> tuple[int, str]:
    """The epoch and the announcement a NOTIFY payload carries."""
    epoch, _, message = payload.partition(" ")
    return int(epoch), message
