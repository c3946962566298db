"""Access tokens: RFC 9068 claims, JWKS verification and key rotation."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from jwt.utils import base64url_decode, base64url_encode
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.testclient import TestClient

from netcalc.accounts.service import IssuedSecret
from netcalc.app import create_app
from netcalc.auth.keys import KeySealer, SigningKey, load_keys, rotate_keys
from netcalc.auth.tables import signing_keys
from netcalc.db import utcnow
from netcalc.errors import UsageError
from netcalc.settings import Settings
from tests.support import Console, make_settings, token_body


@pytest.fixture
def issued(console: Console) -> IssuedSecret:
    """Credentials of a fresh account, with every scope."""
    return console.credentials(console.account("keys@example.com"))


def get_token(client: TestClient, issued: IssuedSecret, **extra: str) -> str:
    response = client.post("/api/auth/token", json=token_body(issued, **extra))
    assert response.status_code == 200, response.text
    return str(response.json()["token"]["access_token"])


def verify_with_jwks(
    client: TestClient, token: str, settings: Settings
) -> dict[str, Any]:
    """Verify as an outside resource server would: PyJWT and the served JWKS."""
    key_set = jwt.PyJWKSet.from_dict(client.get("/.well-known/jwks.json").json())
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in key_set.keys if k.key_id == kid)
    return jwt.decode(
        token,
        key,
        algorithms=[key.algorithm_name],
        audience=settings.audience,
        issuer=settings.issuer,
    )


def test_token_is_an_rfc9068_jwt(
    client: TestClient, settings: Settings, issued: IssuedSecret
) -> None:
    """The token is an ES256 at+jwt with every claim the contract lists."""
    token = get_token(client, issued)
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    claims = verify_with_jwks(client, token, settings)
    assert claims["sub"] == claims["client_id"] == issued.client_id
    assert claims["iss"] == settings.issuer
    assert claims["aud"] == settings.audience
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["scope"] == "subnets:read subnets:write"
    assert claims["jti"] and claims["account_id"]


def test_token_is_written_in_canonical_base64url(
    client: TestClient, issued: IssuedSecret
) -> None:
    """Each segment and the jti are unpadded base64url, each in the one
    spelling PyJWT writes, the jti of 16 bytes."""
    token = get_token(client, issued)
    segments = token.encode().split(b".")
    assert len(segments) == 3
    for segment in segments:
        assert re.fullmatch(rb"[A-Za-z0-9_-]+", segment)
        assert base64url_encode(base64url_decode(segment)) == segment
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    assert len(base64url_decode(jti)) == 16
    assert base64url_encode(base64url_decode(jti)).decode() == jti


def test_token_ids_are_unique(client: TestClient, issued: IssuedSecret) -> None:
    """Every token gets its own jti."""
    tokens = [get_token(client, issued) for _ in range(5)]
    assert (
        len({jwt.decode(t, options={"verify_signature": False})["jti"] for t in tokens})
        == 5
    )


def test_jwks_holds_only_public_parts(client: TestClient) -> None:
    """The key set publishes no private key member."""
    keys = client.get("/.well-known/jwks.json").json()["keys"]
    assert keys
    for key in keys:
        assert "d" not in key and {"kid", "alg", "use"} <= key.keys()


def test_rotation_keeps_old_key_published(
    client: TestClient, settings: Settings, console: Console, issued: IssuedSecret
) -> None:
    """After `keys rotate`, old tokens still verify and new ones use the new key."""
    old_token = get_token(client, issued)
    sealer = KeySealer(settings.server_secret())
    new_kid = console.run(
        lambda e: rotate_keys(e, sealer, "ES256", settings.token_ttl_max)
    )
    client.portal.call(client.app.runtime.keys.refresh)  # type: ignore[attr-defined]
    new_token = get_token(client, issued)
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    assert jwt.get_unverified_header(old_token)["kid"] != new_kid
    for token in (old_token, new_token):
        verify_with_jwks(client, token, settings)
        response = client.get(
            "/api/account/subnets", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_rotation_that_waits_publishes_before_signing(
    client: TestClient,
    settings: Settings,
    console: Console,
    issued: IssuedSecret,
    alg: str,
) -> None:
    """A rotation with a wait publishes the new key at once, goes on signing
    with the old one, and switches when the wait is over, with no reload,
    to a key of another algorithm too."""
    old_token = get_token(client, issued)
    sealer = KeySealer(settings.server_secret())
    new_kid = console.run(lambda e: rotate_keys(e, sealer, alg, 3600, switch_after=2))
    client.portal.call(client.app.runtime.keys.refresh)  # type: ignore[attr-defined]
    published = [
        key["kid"] for key in client.get("/.well-known/jwks.json").json()["keys"]
    ]
    assert new_kid in published and kid_of(old_token) in published
    assert kid_of(get_token(client, issued)) == kid_of(old_token)
    deadline = time.monotonic() + 10
    token = get_token(client, issued)
    while kid_of(token) != new_kid and time.monotonic() < deadline:
        time.sleep(0.2)
        token = get_token(client, issued)
    assert kid_of(token) == new_kid
    assert jwt.get_unverified_header(token)["alg"] == alg
    verify_with_jwks(client, token, settings)


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def test_withdrawn_keys_tokens_are_refused(
    client: TestClient, settings: Settings, console: Console, issued: IssuedSecret
) -> None:
    """A rotation that withdraws the old keys takes them out of the key set,
    and once the server reloads its keys every token they signed is refused,
    one it verified before included; new tokens work."""
    old_token = get_token(client, issued)

    def account_call(token: str) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        return client.get("/api/account/subnets", headers=headers).status_code

    assert account_call(old_token) == 200
    sealer = KeySealer(settings.server_secret())
    new_kid = console.run(
        lambda e: rotate_keys(e, sealer, "ES256", 3600, withdraw=True)
    )
    client.portal.call(client.app.runtime.keys.refresh)  # type: ignore[attr-defined]
    published = [
        key["kid"] for key in client.get("/.well-known/jwks.json").json()["keys"]
    ]
    assert published == [new_kid]
    assert account_call(old_token) == 401
    new_token = get_token(client, issued)
    assert kid_of(new_token) == new_kid
    assert account_call(new_token) == 200


def test_retired_key_unpublished_after_its_tokens_expire(
    settings: Settings, console: Console
) -> None:
    """A retired key leaves the key set once its last token has expired."""
    sealer = KeySealer(settings.server_secret())
    first = console.run(lambda e: rotate_keys(e, sealer, "ES256", 3600))
    console.run(lambda e: rotate_keys(e, sealer, "ES256", 0))
    kids = [key.kid for key in console.run(lambda e: load_keys(e, sealer))]
    assert first not in kids and len(kids) == 1


@pytest.mark.parametrize("alg", ["EdDSA", "RS256"])
def test_other_algorithms_by_configuration(
    tmp_path: Path,
    settings: Settings,
    console: Console,
    issued: IssuedSecret,
    alg: str,
) -> None:
    """EdDSA and RS256 signing work when configured, and verify from the JWKS."""
    settings = make_settings(
        tmp_path, database_url=settings.database_url, signing_alg=alg
    )
    with TestClient(create_app(settings)) as client:
        token = get_token(client, issued)
        assert jwt.get_unverified_header(token)["alg"] == alg
        verify_with_jwks(client, token, settings)


def test_private_keys_are_sealed_at_rest(
    settings: Settings, console: Console, client: TestClient
) -> None:
    """Stored private keys are ciphertext that only the server secret opens."""

    async def stored(engine: AsyncEngine) -> list[str]:
        async with engine.connect() as connection:
            return list(await connection.scalars(select(signing_keys.c.private_key)))

    sealed = console.run(stored)
    assert sealed
    for value in sealed:
        assert "PRIVATE KEY" not in value
        KeySealer(settings.server_secret()).open(value)
        with pytest.raises(UsageError, match="does not open the signing keys"):
            KeySealer(b"another-server-secret-of-32-bytes!!").open(value)


def test_es256_signatures_keep_leading_zero_bytes() -> None:
    """r and s are 32 bytes each even when they start with zeros, as JWS wants.

    One signature in 128 has such an r or s; a thousand make missing one
    all but impossible, and PyJWT must verify every one.
    """
    private_key = ec.generate_private_key(ec.SECP256R1())
    key = SigningKey(
        kid="k",
        alg="ES256",
        private_key=private_key,
        public_jwk={},
        created_at=utcnow(),
        retired_at=None,
        published_until=None,
    )
    verifier = ECAlgorithm(ECAlgorithm.SHA256)
    for n in range(1000):
        message = b"signing input %d" % n
        signature = key.sign(message)
        assert len(signature) == 64
        assert verifier.verify(message, private_key.public_key(), signature)
