"""Client ids and secrets: shape, randomness, checksum and keyed hashing."""

from __future__ import annotations

import hashlib
import hmac
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netcalc.auth.client_secrets import (
    SECRET_PREFIX,
    hash_secret,
    is_client_id,
    is_client_secret,
    new_client_id,
    new_client_secret,
    secret_matches,
)

KEY = b"k" * 32


def test_secret_has_prefix_and_checksum() -> None:
    """A new secret carries the scanner prefix and passes its own checksum."""
    secret = new_client_secret()
    assert secret.startswith(SECRET_PREFIX)
    assert is_client_secret(secret)


def test_secret_body_holds_at_least_256_bits() -> None:
    """The random body is long enough in base62 to hold 256 bits."""
    body = new_client_secret()[len(SECRET_PREFIX) : -6]
    assert len(body) * math.log2(62) >= 256


def test_secrets_and_ids_do_not_repeat() -> None:
    """A thousand new secrets and ids are all different."""
    assert len({new_client_secret() for _ in range(1000)}) == 1000
    assert len({new_client_id() for _ in range(1000)}) == 1000


def test_client_id_has_at_least_96_random_bits() -> None:
    """A client id holds 32 hex digits, 128 random bits."""
    client_id = new_client_id()
    assert is_client_id(client_id)
    assert len(client_id.removeprefix("nci_")) * 4 >= 96


@pytest.mark.parametrize(
    "position", [4, 20, 46, -1], ids=["first", "mid", "late", "check"]
)
def test_any_changed_character_fails_the_checksum(position: int) -> None:
    """Changing one character of a secret makes it malformed."""
    secret = new_client_secret()
    chars = list(secret)
    chars[position] = "0" if chars[position] != "0" else "1"
    assert not is_client_secret("".join(chars))


@pytest.mark.parametrize(
    "secret",
    [
        "ncs_00000000000000000000000000000000000000000000jS7ow",
        "ncs_zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz1NfSx1",
        "ncs_8aspm4G7VmSUfOoD6V1vrORcmn0iSHkpEby6vK111fY2f3BS4",
    ],
    ids=["zero-body", "top-body", "random-body"],
)
def test_secrets_issued_before_keep_passing_the_checksum(secret: str) -> None:
    """Secrets whose checksum an earlier release wrote are still well formed."""
    assert is_client_secret(secret)


@pytest.mark.parametrize(
    "value",
    ["", "ncs_", "ncs_short", "xyz_" + "A" * 49, new_client_secret() + "x"],
    ids=["empty", "prefix-only", "short", "wrong-prefix", "too-long"],
)
def test_malformed_secrets_refused(value: str) -> None:
    """Values of the wrong shape are not secrets."""
    assert not is_client_secret(value)


def test_keyed_hash_depends_on_key_and_matches_in_constant_time() -> None:
    """The stored hash needs the server key; a match is checked against it."""
    secret = new_client_secret()
    stored = hash_secret(KEY, secret)
    assert secret not in stored
    assert stored != hash_secret(b"other" * 8, secret)
    assert secret_matches(KEY, secret, stored)
    assert not secret_matches(KEY, new_client_secret(), stored)
    assert not secret_matches(KEY, secret, None)


@given(key=st.binary(max_size=200), secret=st.text(max_size=120))
def test_keyed_hash_is_hmac_sha256(key: bytes, secret: str) -> None:
    """Stored hashes stay RFC 2104 HMAC-SHA256, for keys shorter and longer
    than SHA-256's block, so hashes stored before keep matching."""
    expected = hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()
    assert hash_secret(key, secret) == expected
    assert hash_secret(key, secret) == expected
