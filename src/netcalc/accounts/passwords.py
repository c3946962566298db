"""Account passwords, hashed with argon2id (RFC 9106)."""

from __future__ import annotations

import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from netcalc.errors import UsageError

MIN_LENGTH = 10
"""Shortest password an account may have."""

MAX_LENGTH = 1024
"""Longest password accepted, so hashing cost stays bounded."""

HASHES_AT_ONCE = 2
"""How many argon2id hashes a process computes at once. Each takes 64 MiB
while it runs: sign-ups or sign-ins sent together wait for a turn rather
than grow the process's memory with their number."""

_hasher = PasswordHasher()
_turns = threading.BoundedSemaphore(HASHES_AT_ONCE)

# Verifying against this when an email is unknown makes a failed sign-in
# take as long whether or not the account exists.
_DECOY_HASH = _hasher.hash("netcalc decoy password")


def check_policy(password: str) -> None:
    """Refuse passwords that are too short, absurdly long, or not text."""
    if not _is_text(password):
        raise UsageError("A password must be text: it holds bytes that are not UTF-8.")
    if len(password) < MIN_LENGTH:
        raise UsageError(f"A password needs at least {MIN_LENGTH} characters.")
    if len(password) > MAX_LENGTH:
        raise UsageError(f"A password may have at most {MAX_LENGTH} characters.")


def hash_password(password: str) -> str:
    """The argon2id hash stored for a new password."""
    check_policy(password)
    with _turns:
        return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when `password` matches; spends the same time for unknown accounts."""
    if len(password) > MAX_LENGTH or not _is_text(password):
        return False
    try:
        with _turns:
            matched = _hasher.verify(stored_hash or _DECOY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return matched and stored_hash is not None


def _is_text(password: str) -> bool:
    # A terminal's undecodable bytes reach Python as lone surrogates, which
    # argon2 cannot encode.
    try:
        password.encode()
    except UnicodeEncodeError:
        return False
    return True
