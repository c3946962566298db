"""Every table of netcalc, gathered on one metadata for Alembic."""

from __future__ import annotations

from netcalc.accounts.tables import (
    accounts,
    console_sessions,
    credentials,
    sent_forms,
)
from netcalc.audit import audit_events
from netcalc.auth.tables import revocation_epoch, revoked_tokens, signing_keys
from netcalc.db import metadata
from netcalc.subnets.tables import subnets

__all__ = [
    "accounts",
    "audit_events",
    "console_sessions",
    "credentials",
    "metadata",
    "revocation_epoch",
    "revoked_tokens",
    "sent_forms",
    "signing_keys",
    "subnets",
]
