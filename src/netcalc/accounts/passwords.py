"""Account passwords, hashed with argon2id (RFC 9106)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from netcalc.errors import UsageError

MIN_LENGTH = 10
"""Shortest password an account may have."""

MAX_LENGTH = 1024
"""Longest password accepted, so hashing cost stays bounded."""

_hasher = PasswordHasher()

# Verifying against this when an email is unknown makes a failed sign-in
# take as long whether or not the account exists.
_DECOY_HASH = _hasher.hash("netcalc decoy password")


def check_policy(password: str) -> None:
    """Refuse passwords that are too short or absurdly long."""
    if len(password) < MIN_LENGTH:
        raise UsageError(f"A password needs at least {MIN_LENGTH} characters.")
    if len(password) > MAX_LENGTH:
        raise UsageError(f"A password may have at most {MAX_LENGTH} characters.")


def hash_password(password: str) -> str:
    """The argon2id hash stored for a new password."""
    check_policy(password)
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when `password` matches; spends the same time for unknown accounts."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(stored_hash or _DECOY_HASH, password) and (
            stored_hash is not None
        )
    except (VerificationError, InvalidHashError):
        return False
