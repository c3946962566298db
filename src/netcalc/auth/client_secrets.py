"""Client ids and client secrets: their format, generation and hashing.

A client secret reads `ncs_<43 base62 chars><6 base62 chars>`: the prefix lets
secret scanners find leaked ones, the body holds 256 random bits, and the tail
is a CRC32 checksum of the rest, so a mistyped or truncated secret is refused
without a database read. Only an HMAC-SHA256 of the secret is stored; secrets
are random, so a fast keyed hash is as strong as a slow one here.

This module does no I/O.
"""

from __future__ import annotations

import functools
import hmac
import re
import secrets
import zlib
from hashlib import sha256
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _hashlib import HASH

CLIENT_ID_PREFIX = "nci_"
"""Marks a client id; 32 hex digits (128 random bits) follow."""

SECRET_PREFIX = "ncs_"
"""Marks a client secret, so scanners can recognise leaked ones."""

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY_LENGTH = 43  # 62**43 > 2**256
_CHECKSUM_LENGTH = 6  # 62**6 > 2**32
_CLIENT_ID = re.compile(r"nci_[0-9a-f]{32}")
_SECRET = re.compile(
    rf"ncs_[0-9A-Za-z]{{{_BODY_LENGTH}}}[0-9A-Za-z]{{{_CHECKSUM_LENGTH}}}"
)


_PAIRS = [high + low for high in _ALPHABET for low in _ALPHABET]
"""Every two-digit base62 numeral, by value: each step takes two digits."""


def _base62(number: int, width: int) -> str:
    # Every token request checks a secret's checksum: half the steps.
    digits = [] if width % 2 == 0 else [_ALPHABET[number % 62]]
    number //= 62 ** (width % 2)
    for _ in range(width // 2):
        number, pair = divmod(number, 62 * 62)
        digits.append(_PAIRS[pair])
    return "".join(reversed(digits))


def _checksum(text: str) -> str:
    # _base62 of the CRC32 in six digits, written out: a CRC32 is below
    # 62**6, so its first pair of digits is below 62**2 too.
    high, rest = divmod(zlib.crc32(text.encode()), 62**4)
    middle, low = divmod(rest, 62**2)
    return _PAIRS[high] + _PAIRS[middle] + _PAIRS[low]


def new_client_id() -> str:
    """A fresh client id with 128 random bits."""
    return CLIENT_ID_PREFIX + secrets.token_hex(16)


def new_client_secret() -> str:
    """A fresh client secret: prefix, 256 random bits, checksum."""
    body = SECRET_PREFIX + _base62(secrets.randbits(256), _BODY_LENGTH)
    return body + _checksum(body)


def is_client_id(value: str) -> bool:
    """True when `value` has the shape of a client id netcalc issues."""
    return _CLIENT_ID.fullmatch(value) is not None


def is_client_secret(value: str) -> bool:
    """True when `value` has the shape and checksum of a client secret."""
    if _SECRET.fullmatch(value) is None:
        return False
    body, tail = value[:-_CHECKSUM_LENGTH], value[-_CHECKSUM_LENGTH:]
    return hmac.compare_digest(_checksum(body), tail)


def holds_client_secret(text: str) -> bool:
    """True when `text` contains something shaped like a client secret."""
    return _SECRET.search(text) is not None


def hash_secret(key: bytes, secret: str) -> str:
    """The keyed hash stored for a secret (HMAC-SHA256, hex)."""
    inner, outer = _keyed_states(key)
    inner = inner.copy()
    inner.update(secret.encode())
    outer = outer.copy()
    outer.update(inner.digest())
    return outer.hexdigest()


_SHA256_BLOCK = 64
_INNER_PAD = bytes(byte ^ 0x36 for byte in range(256))
_OUTER_PAD = bytes(byte ^ 0x5C for byte in range(256))


@functools.lru_cache(maxsize=4)
def _keyed_states(key: bytes) -> tuple[HASH, HASH]:
    # HMAC (RFC 2104) is two SHA-256 runs that each begin with one block
    # derived from the key. A server has one key, so both runs start from
    # copies of states that have hashed those blocks: each token request's
    # secret then costs plain hashlib calls, a third less than copying an
    # hmac.HMAC, whose methods are Python code around the same states.
    if len(key) > _SHA256_BLOCK:
        key = sha256(key).digest()
    block = key.ljust(_SHA256_BLOCK, b"\0")
    return sha256(block.translate(_INNER_PAD)), sha256(block.translate(_OUTER_PAD))


def secret_matches(key: bytes, secret: str, stored_hash: str | None) -> bool:
    """Compare a presented secret with a stored hash in constant time."""
    if stored_hash is None:
        return False
    return hmac.compare_digest(hash_secret(key, secret), stored_hash)
