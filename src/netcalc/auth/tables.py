"""Tables of signing keys, individually revoked access tokens, and the
revocation epoch."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, String, Table, Text

from netcalc.db import UTCDateTime, metadata

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("alg", String(16), nullable=False),
    Column("public_jwk", Text, nullable=False),
    # Fernet token of the PKCS#8 PEM, keyed from the server secret.
    Column("private_key", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("retired_at", UTCDateTime, nullable=True),
    # A retired key is published until the last token it signed expires.
    Column("published_until", UTCDateTime, nullable=True),
)

revoked_tokens = Table(
    "revoked_tokens",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("client_id", String(64), nullable=False, index=True),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
)

revocation_epoch = Table(
    "revocation_epoch",
    metadata,
    Column("id", Integer, primary_key=True),
    # Counts every revocation, disabling and enabling, each in the
    # transaction that makes it; see netcalc.auth.revocations.
    Column("epoch", BigInteger, nullable=False),
)
