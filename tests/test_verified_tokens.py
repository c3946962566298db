"""Remembered signatures: only the same bytes skip the check, and only that."""

from __future__ import annotations

import asyncio
import string
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from netcalc.accounts.service import IssuedSecret
from netcalc.app import create_app
from netcalc.auth.keyring import VerifiedTokens
from netcalc.auth.tokens import AccessToken, TokenPolicy, verify_token
from netcalc.db import create_engine
from netcalc.errors import InvalidToken
from netcalc.migrate import upgrade
from netcalc.runtime import Runtime
from tests.support import Console, make_settings, token_body


@pytest.fixture
def issued(console: Console) -> IssuedSecret:
    """Credentials of a fresh account."""
    return console.credentials(console.account("memo@example.com"))


@pytest.fixture
def token(client: TestClient, issued: IssuedSecret) -> str:
    """A token the app just issued."""
    response = client.post("/api/auth/token", json=token_body(issued))
    assert response.status_code == 200
    return str(response.json()["token"]["access_token"])


@pytest.fixture
def other_runtime(tmp_path: Path) -> Iterator[Runtime]:
    """The runtime of a second netcalc, with its own database and keys."""
    settings = make_settings(tmp_path / "other")

    async def migrate() -> None:
        engine = create_engine(settings.database_url)
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(migrate())
    with TestClient(create_app(settings)) as other:
        yield other.app.runtime  # type: ignore[attr-defined]


def _runtime(client: TestClient) -> Runtime:
    runtime: Runtime = client.app.runtime  # type: ignore[attr-defined]
    return runtime


def _verify(runtime: Runtime, token: str, at: float | None = None) -> AccessToken:
    clock = time.time if at is None else (lambda: at)
    return asyncio.run(verify_token(token, runtime.keys, runtime.policy, clock))


def test_a_verified_token_is_remembered(client: TestClient, token: str) -> None:
    """After one verification the key ring holds what the token says."""
    runtime = _runtime(client)
    access = _verify(runtime, token)
    assert runtime.keys.verified.get(token, runtime.policy) == access


def test_another_policy_verifies_again(client: TestClient, token: str) -> None:
    """A token kept as valid for one issuer is checked afresh for another."""
    runtime = _runtime(client)
    _verify(runtime, token)
    elsewhere = replace(runtime.policy, issuer="https://elsewhere.example")
    assert runtime.keys.verified.get(token, elsewhere) is None
    with pytest.raises(InvalidToken):
        asyncio.run(verify_token(token, runtime.keys, elsewhere, time.time))


def test_a_remembered_token_still_expires(client: TestClient, token: str) -> None:
    """Expiry is checked on every call, remembered signature or not."""
    runtime = _runtime(client)
    access = _verify(runtime, token)
    with pytest.raises(InvalidToken, match="expired"):
        _verify(runtime, token, at=access.expires_at + 3600)


def test_altered_bytes_are_verified_again(client: TestClient, token: str) -> None:
    """A token differing by one character is checked, and refused."""
    runtime = _runtime(client)
    _verify(runtime, token)
    header, payload, signature = token.split(".")
    flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    with pytest.raises(InvalidToken):
        _verify(runtime, ".".join((header, flipped, signature)))


def _same_bytes_other_spelling(signature: str) -> str:
    # An ES256 signature is 64 bytes in 86 characters: the low 4 bits of the
    # last character carry nothing, so it can be spelled 16 ways.
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
    last = alphabet.index(signature[-1])
    return signature[:-1] + alphabet[last ^ 0b1111]


def test_one_token_has_one_spelling(client: TestClient, token: str) -> None:
    """Padding, stray characters and unused bits make a token invalid, so
    they cannot fill the memory with copies of one token."""
    runtime = _runtime(client)
    _verify(runtime, token)
    header, payload, signature = token.split(".")
    spellings = [
        token + "==",
        f"{header}.{payload}.{signature[:10]}****{signature[10:]}",
        f"{header}.{payload}.{_same_bytes_other_spelling(signature)}",
        f"{header}.{payload}. {signature}",
    ]
    for spelling in spellings:
        with pytest.raises(InvalidToken):
            _verify(runtime, spelling)
        assert runtime.keys.verified.get(spelling, runtime.policy) is None


def test_another_servers_memory_does_not_count(
    client: TestClient, token: str, other_runtime: Runtime
) -> None:
    """A token one server verified is still refused by another's keys."""
    _verify(_runtime(client), token)
    with pytest.raises(InvalidToken):
        _verify(other_runtime, token)
    assert other_runtime.keys.verified.get(token, other_runtime.policy) is None


def test_the_oldest_is_forgotten_when_full() -> None:
    """Past its capacity the memory drops the token it learned first."""
    verified = VerifiedTokens(capacity=2)
    policy = TokenPolicy(issuer="https://netcalc.example", audience="netcalc", leeway=0)
    tokens = {name: _access(name) for name in ("first", "second", "third")}
    for name, access in tokens.items():
        verified.remember(name, policy, access)
    assert verified.get("first", policy) is None
    assert verified.get("second", policy) == tokens["second"]
    assert verified.get("third", policy) == tokens["third"]


def _access(jti: str) -> AccessToken:
    return AccessToken(
        jti=jti,
        client_id="nci_0",
        account_id="a",
        scopes=(),
        issued_at=0,
        expires_at=60,
        not_before=0,
        claims={"jti": jti},
    )
