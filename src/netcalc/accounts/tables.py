"""Tables of accounts, the client credentials they own, console sessions, and
the single-use forms each session has sent."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, ForeignKey, Integer, String, Table

from netcalc.db import UTCDateTime, metadata

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
)

credentials = Table(
    "credentials",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column(
        "account_id",
        String(32),
        ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("name", String(100), nullable=False),
    # Space-separated scopes; empty means every account scope (CONTRACT §3).
    Column("scopes", String(500), nullable=False, default=""),
    Column("token_ttl", Integer, nullable=True),
    Column("secret_hash", String(64), nullable=False),
    Column("previous_secret_hash", String(64), nullable=True),
    Column("previous_secret_expires_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    # SHA-256 of the session token: a copy of this table opens no session.
    Column("token_hash", String(64), primary_key=True),
    # Empty for a signed-out visitor, who still needs a CSRF token.
    Column(
        "account_id",
        String(32),
        ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=True,
        index=True,
    ),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
)

sent_forms = Table(
    "sent_forms",
    metadata,
    # The key makes a form id count once per session, even when two posts
    # of one form arrive together on different instances.
    Column(
        "session_hash",
        String(64),
        ForeignKey("console_sessions.token_hash", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("form_id", String(22), primary_key=True),
    Column("sent_at", UTCDateTime, nullable=False),
)
