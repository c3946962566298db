"""The bearer guard of the account APIs (CONTRACT §3, RFC 6750)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.exceptions import HTTPException
from starlette.testclient import TestClient

from netcalc.accounts import service
from netcalc.accounts.service import IssuedSecret
from netcalc.accounts.tables import credentials
from netcalc.auth.keys import KeySealer, SigningKey, load_keys
from netcalc.auth.store import revoke_token
from netcalc.auth.tables import revocation_epoch
from netcalc.db import utcnow
from netcalc.resource_server import TokenGuard
from netcalc.settings import Settings
from tests.support import Console, token_body

SUBNETS = "/api/account/subnets"
SUBNET = {"network_address": "10.0.0.0", "subnet_bits": 8, "name": "lab"}
REALM_ONLY = 'Bearer realm="netcalc"'


# --- helpers ---------------------------------------------------------------


def b64url(data: bytes) -> str:
    """Base64url without padding, as JWS compact serialisation writes it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    """The bytes of an unpadded base64url segment."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def segment(document: dict[str, Any]) -> str:
    """One JSON header or payload as a compact JWS segment."""
    return b64url(json.dumps(document, separators=(",", ":")).encode())


def bearer(token: str, scheme: str = "Bearer") -> dict[str, str]:
    """The Authorization header that presents `token`."""
    return {"Authorization": f"{scheme} {token}"}


def get_token(client: TestClient, issued: IssuedSecret, **extra: str) -> str:
    """An access token from the token endpoint for these credentials."""
    response = client.post("/api/auth/token", json=token_body(issued, **extra))
    assert response.status_code == 200, response.text
    return str(response.json()["token"]["access_token"])


def call(
    client: TestClient, method: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    """Call the subnets collection with `method`; POST sends a valid subnet."""
    response: httpx.Response
    if method == "POST":
        response = client.post(SUBNETS, json=SUBNET, headers=headers)
    else:
        response = client.request(method, SUBNETS, headers=headers)
    return response


def assert_invalid_token(response: httpx.Response, token: str) -> None:
    """The guard refused the token as RFC 6750 `invalid_token`."""
    assert response.status_code == 401
    assert response.json()["status"] == "INVALID_GRANT"
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="invalid_token"' in challenge
    assert token not in response.text


def set_disabled(account_id: str) -> Callable[[AsyncEngine], Any]:
    """Work for `Console.run` that disables an account."""

    async def work(engine: AsyncEngine) -> None:
        await service.set_disabled(engine, account_id, True)

    return work


# --- fixtures --------------------------------------------------------------


@pytest.fixture
def account_id(console: Console) -> str:
    """An account with no credentials yet."""
    return console.account("owner@example.com")


@pytest.fixture
def issued(console: Console, account_id: str) -> IssuedSecret:
    """Credentials without scopes, so every account scope is allowed."""
    return console.credentials(account_id)


@pytest.fixture
def token(client: TestClient, issued: IssuedSecret) -> str:
    """A token the server issued to `issued`."""
    return get_token(client, issued)


@dataclass(frozen=True)
class Forger:
    """Signs tokens of our own with the server's real current key."""

    key: SigningKey
    claims: dict[str, Any]

    def header(self, **changes: Any) -> dict[str, Any]:
        return {"alg": self.key.alg, "typ": "at+jwt", "kid": self.key.kid} | changes

    def sign(self, claims: dict[str, Any] | None = None, **header: Any) -> str:
        return jwt.encode(
            claims or self.claims, self.key.private_key, headers=self.header(**header)
        )


@pytest.fixture
def forger(
    client: TestClient,
    console: Console,
    settings: Settings,
    issued: IssuedSecret,
    account_id: str,
) -> Forger:
    """A Forger whose default claims are those a real token would carry.

    Depends on `client` so the app's lifespan has made the first key.
    """
    sealer = KeySealer(settings.server_secret())
    keys = console.run(lambda engine: load_keys(engine, sealer))
    current = next(key for key in keys if key.retired_at is None)
    now = int(time.time())
    claims = {
        "iss": settings.issuer,
        "sub": issued.client_id,
        "aud": settings.audience,
        "client_id": issued.client_id,
        "account_id": account_id,
        "scope": "subnets:read subnets:write",
        "iat": now,
        "exp": now + 300,
        "jti": secrets.token_urlsafe(16),
    }
    return Forger(current, claims)


# --- no bearer token -------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-authorization"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="basic"),
        pytest.param({"Authorization": "Token x"}, id="token-scheme"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_request_without_bearer_is_invalid_request(
    client: TestClient, method: str, headers: dict[str, str]
) -> None:
    """A call without a Bearer Authorization header is refused with the realm."""
    response = call(client, method, headers)

    assert response.status_code == 401
    assert response.json()["status"] == "INVALID_REQUEST"
    assert response.headers["WWW-Authenticate"] == REALM_ONLY


def test_basic_scheme_carrying_a_real_token_is_refused(
    client: TestClient, token: str
) -> None:
    """A valid token under a scheme other than Bearer is not accepted."""
    response = call(client, "GET", bearer(token, scheme="Basic"))

    assert response.status_code == 401
    assert response.json()["status"] == "INVALID_REQUEST"
    assert response.headers["WWW-Authenticate"] == REALM_ONLY


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_bearer_scheme_is_case_insensitive(
    client: TestClient, token: str, scheme: str
) -> None:
    """The Bearer scheme name is accepted in any case."""
    response = call(client, "GET", bearer(token, scheme=scheme))

    assert response.status_code == 200
    assert response.json()["status"] == "OK"


# --- tokens that are not ours or not intact --------------------------------


@pytest.mark.parametrize(
    "bad_token",
    [
        pytest.param("abc", id="one-word"),
        pytest.param("a.b.c", id="three-junk-parts"),
        pytest.param("eyJhbGciOiJFUzI1NiJ9", id="header-only"),
        pytest.param("....", id="only-dots"),
        pytest.param(
            b64url(b"[" * 1000 + b"]" * 1000) + ".e30.c2ln",
            id="header-nested-1000-deep",
        ),
    ],
)
def test_malformed_token_is_invalid(client: TestClient, bad_token: str) -> None:
    """A bearer value that is not a JWT is refused as invalid_token, saying so."""
    response = call(client, "GET", bearer(bad_token))
    assert_invalid_token(response, bad_token)
    assert response.json()["message"] == "The access token is not a well-formed JWT."


def test_truncated_token_is_invalid(client: TestClient, token: str) -> None:
    """A real token missing its signature part is refused."""
    truncated = token.rsplit(".", 1)[0]

    assert_invalid_token(call(client, "GET", bearer(truncated)), truncated)


def test_flipped_signature_character_is_invalid(client: TestClient, token: str) -> None:
    """Changing one character inside the signature makes the token invalid."""
    head, payload, signature = token.split(".")
    # The middle character, not the last: its low bits may be padding only.
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    forged = f"{head}.{payload}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"

    assert_invalid_token(call(client, "GET", bearer(forged)), forged)


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        pytest.param("account_id", "someone-else", id="account_id"),
        pytest.param("scope", "subnets:read subnets:write admin", id="scope"),
        pytest.param("exp", 4_102_444_800, id="exp"),
    ],
)
def test_tampered_payload_is_invalid(
    client: TestClient, token: str, claim: str, value: object
) -> None:
    """A changed payload under the original signature is refused."""
    head, payload, signature = token.split(".")
    claims = json.loads(unb64url(payload))
    assert claims[claim] != value
    forged = f"{head}.{segment(claims | {claim: value})}.{signature}"

    assert_invalid_token(call(client, "GET", bearer(forged)), forged)


def test_forger_control_token_is_accepted(client: TestClient, forger: Forger) -> None:
    """A token signed here with the server's key and true claims is accepted.

    This proves the forgeries below fail for the one thing each changes.
    """
    token = forger.sign()

    response = call(client, "GET", bearer(token))

    assert response.status_code == 200
    assert response.json()["status"] == "OK"


def _unknown_kid(forger: Forger) -> str:
    return forger.sign(kid=b64url(secrets.token_bytes(32)))


def _alg_none(forger: Forger) -> str:
    header = forger.header(alg="none")
    return f"{segment(header)}.{segment(forger.claims)}."


def _hs256_with_public_key(forger: Forger) -> str:
    header = forger.header(alg="HS256")
    signing_input = f"{segment(header)}.{segment(forger.claims)}"
    pem = forger.key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def _hs256_with_public_jwk(forger: Forger) -> str:
    header = forger.header(alg="HS256")
    signing_input = f"{segment(header)}.{segment(forger.claims)}"
    secret = json.dumps(forger.key.public_jwk).encode()
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def _foreign_key_with_our_kid(forger: Forger) -> str:
    stranger = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(
        forger.claims, stranger, algorithm="ES256", headers=forger.header(alg="ES256")
    )


def _expired(forger: Forger) -> str:
    now = int(time.time())
    return forger.sign(forger.claims | {"iat": now - 3600, "exp": now - 120})


def _issued_in_the_future(forger: Forger) -> str:
    now = int(time.time())
    return forger.sign(forger.claims | {"iat": now + 3600, "exp": now + 7200})


def _wrong_issuer(forger: Forger) -> str:
    return forger.sign(forger.claims | {"iss": "https://evil.example"})


def _wrong_audience(forger: Forger) -> str:
    return forger.sign(forger.claims | {"aud": "some-other-api"})


def _not_yet_valid(forger: Forger) -> str:
    return forger.sign(forger.claims | {"nbf": int(time.time()) + 3600})


def _path_like_kid(forger: Forger) -> str:
    return forger.sign(kid="../../etc/passwd")


def _key_url_header(name: str) -> Callable[[Forger], str]:
    def forge(forger: Forger) -> str:
        return forger.sign(**{name: "http://127.0.0.1:9/keys.json"})

    return forge


def _embedded_jwk(forger: Forger) -> str:
    # The real key, embedded: still refused, since a token never picks its key.
    return forger.sign(jwk=forger.key.public_jwk)


def _crit_header(forger: Forger) -> str:
    return forger.sign(crit=["exp"])


FORGERIES = [
    pytest.param(_unknown_kid, id="unknown-kid"),
    pytest.param(_alg_none, id="alg-none"),
    pytest.param(_hs256_with_public_key, id="hs256-public-key-pem"),
    pytest.param(_hs256_with_public_jwk, id="hs256-public-jwk"),
    pytest.param(_foreign_key_with_our_kid, id="foreign-key-our-kid"),
    pytest.param(_expired, id="expired-beyond-leeway"),
    pytest.param(_issued_in_the_future, id="iat-far-future"),
    pytest.param(_not_yet_valid, id="nbf-future"),
    pytest.param(_wrong_issuer, id="wrong-iss"),
    pytest.param(_wrong_audience, id="wrong-aud"),
    pytest.param(_path_like_kid, id="path-like-kid"),
    pytest.param(_key_url_header("jku"), id="jku-header"),
    pytest.param(_key_url_header("x5u"), id="x5u-header"),
    pytest.param(_embedded_jwk, id="jwk-header"),
    pytest.param(_crit_header, id="crit-header"),
]
"""Tokens no part of netcalc may accept, each made by one forging step."""


@pytest.mark.parametrize("forge", FORGERIES)
def test_introspection_reports_forgeries_inactive(
    client: TestClient,
    forger: Forger,
    issued: IssuedSecret,
    forge: Callable[[Forger], str],
) -> None:
    """Introspection calls every forged or unacceptable token inactive."""
    response = client.post(
        "/oauth2/introspect",
        data={"token": forge(forger)},
        auth=(issued.client_id, issued.client_secret),
    )
    assert response.status_code == 200
    assert response.json() == {"active": False}


@pytest.mark.parametrize("forge", FORGERIES)
def test_resource_kit_refuses_forgeries(
    client: TestClient,
    forger: Forger,
    settings: Settings,
    forge: Callable[[Forger], str],
) -> None:
    """The resource-server kit refuses every forged or unacceptable token."""
    forged = forge(forger)

    async def verify() -> int:
        # The key set is served from memory, so the app can answer in this loop.
        transport = httpx.ASGITransport(app=client.app)
        http = httpx.AsyncClient(transport=transport)
        guard = TokenGuard(settings.issuer, settings.audience, http=http)
        try:
            await guard.verify(forged)
        except HTTPException as refusal:
            return refusal.status_code
        finally:
            await http.aclose()
        return 200

    assert asyncio.run(verify()) == 401


def test_resource_kit_accepts_the_control_token(
    client: TestClient, forger: Forger, settings: Settings
) -> None:
    """The kit accepts what the forger signs unchanged, so refusals above mean it."""

    async def verify() -> dict[str, Any]:
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=client.app))
        guard = TokenGuard(settings.issuer, settings.audience, http=http)
        try:
            return await guard.verify(forger.sign())
        finally:
            await http.aclose()

    assert asyncio.run(verify())["jti"] == forger.claims["jti"]


@pytest.mark.parametrize(
    "header",
    ["Bearer  {token}", "Bearer\t{token}", " Bearer {token} ", "\tBearer \t{token}\t"],
    ids=["two-spaces", "tab", "padded", "tabs"],
)
def test_bearer_whitespace_variants(
    client: TestClient, token: str, header: str
) -> None:
    """Extra whitespace around the scheme and token does not change the answer."""
    response = client.get(
        SUBNETS, headers={"Authorization": header.format(token=token)}
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        "Bearer {token} x",
        "Bearer x {token}",
        "Bearer {token}\xa0",
        "Bearer {token}\x1f",
    ],
    ids=["second-value", "first-value", "no-break-space", "unit-separator"],
)
def test_bearer_with_more_than_a_token_is_a_malformed_token(
    client: TestClient, token: str, header: str
) -> None:
    """A second value after the scheme, or anything but spaces and tabs
    around the token, makes the token malformed."""
    # Sent as Latin-1 bytes, as a client may: httpx would refuse the text.
    value = header.format(token=token).encode("latin-1")
    response = client.get(SUBNETS, headers={"Authorization": value})

    assert_invalid_token(response, token)


def test_only_spaces_and_tabs_part_scheme_and_token(
    client: TestClient, token: str
) -> None:
    """A no-break space after `Bearer` leaves a header with no Bearer scheme."""
    value = f"Bearer\xa0{token}".encode("latin-1")
    response = client.get(SUBNETS, headers={"Authorization": value})

    assert response.status_code == 401
    assert response.json()["status"] == "INVALID_REQUEST"


@pytest.mark.parametrize("forge", FORGERIES)
def test_forged_or_unacceptable_token_is_invalid(
    client: TestClient, forger: Forger, forge: Callable[[Forger], str]
) -> None:
    """A token the server's key and policy do not vouch for is refused."""
    forged = forge(forger)

    assert_invalid_token(call(client, "GET", bearer(forged)), forged)


# --- tokens switched off after issue ---------------------------------------


def test_revoked_credentials_token_is_refused_at_once(
    client: TestClient, console: Console, issued: IssuedSecret, token: str
) -> None:
    """The first call after the credentials are revoked is already refused."""
    before = call(client, "GET", bearer(token))
    assert before.status_code == 200

    console.revoke(issued.client_id)

    assert_invalid_token(call(client, "GET", bearer(token)), token)


def test_revoking_credentials_spares_other_credentials(
    client: TestClient, console: Console, account_id: str, issued: IssuedSecret
) -> None:
    """Revoking one credentials leaves another of the same account working."""
    other = console.credentials(account_id)
    token = get_token(client, issued)
    other_token = get_token(client, other)

    console.revoke(issued.client_id)

    assert_invalid_token(call(client, "GET", bearer(token)), token)
    response = call(client, "GET", bearer(other_token))
    assert response.status_code == 200
    assert response.json()["status"] == "OK"


async def revoke_unannounced(engine: AsyncEngine, client_id: str) -> None:
    """Revoke credentials and take the next epoch, as the revoking
    transaction does, but send no announcement, as if it were lost."""
    async with engine.begin() as connection:
        await connection.execute(
            update(credentials)
            .where(credentials.c.client_id == client_id)
            .values(revoked_at=utcnow())
        )
        await connection.execute(
            update(revocation_epoch).values(epoch=revocation_epoch.c.epoch + 1)
        )


def test_a_revocation_not_yet_announced_is_refused_at_once(
    client: TestClient, console: Console, issued: IssuedSecret, token: str
) -> None:
    """A revocation committed elsewhere whose announcement has not arrived
    is still refused on the next call: the newer revocation epoch sends the
    check to the database."""
    assert call(client, "GET", bearer(token)).status_code == 200

    console.run(lambda engine: revoke_unannounced(engine, issued.client_id))

    assert_invalid_token(call(client, "GET", bearer(token)), token)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_announcement_after_a_missed_one_leaves_the_missed_one_refused(
    client: TestClient,
    console: Console,
    account_id: str,
    issued: IssuedSecret,
    token: str,
) -> None:
    """A revocation whose announcement was missed, as while the feed
    reconnected, stays refused after a later announcement arrives."""
    other = console.credentials(account_id)
    assert call(client, "GET", bearer(token)).status_code == 200

    console.run(lambda engine: revoke_unannounced(engine, issued.client_id))
    console.revoke(other.client_id)
    known = client.app.runtime.revocations.known  # type: ignore[attr-defined]
    deadline = time.monotonic() + 5
    while other.client_id not in known.clients and time.monotonic() < deadline:
        time.sleep(0.05)
    assert other.client_id in known.clients

    assert_invalid_token(call(client, "GET", bearer(token)), token)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_announcements_carry_the_epoch_the_instance_has_heard(
    client: TestClient, console: Console, issued: IssuedSecret
) -> None:
    """On PostgreSQL each revocation takes the next epoch, and the instance
    that hears its announcement knows it has heard that far."""
    revocations = client.app.runtime.revocations  # type: ignore[attr-defined]
    assert revocations.known.epoch == 0
    console.revoke(issued.client_id)
    deadline = time.monotonic() + 5
    while revocations.known.epoch < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert revocations.known.epoch == 1
    assert issued.client_id in revocations.known.clients


def test_revoked_token_is_refused_and_its_sibling_is_not(
    client: TestClient, console: Console, issued: IssuedSecret
) -> None:
    """One revoked token is refused while another of the same credentials works."""
    token = get_token(client, issued)
    sibling = get_token(client, issued)
    jti = json.loads(unb64url(token.split(".")[1]))["jti"]
    expires = datetime.now(UTC) + timedelta(hours=1)

    console.run(lambda engine: revoke_token(engine, jti, issued.client_id, expires))

    assert_invalid_token(call(client, "GET", bearer(token)), token)
    response = call(client, "GET", bearer(sibling))
    assert response.status_code == 200
    assert response.json()["status"] == "OK"


def test_disabled_account_token_is_refused(
    client: TestClient, console: Console, account_id: str, token: str
) -> None:
    """A token stops working as soon as its account is disabled."""
    assert call(client, "GET", bearer(token)).status_code == 200

    console.run(set_disabled(account_id))

    assert_invalid_token(call(client, "GET", bearer(token)), token)


# --- scopes ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("scopes", "method"),
    [
        pytest.param((), "GET", id="unscoped-read"),
        pytest.param((), "POST", id="unscoped-write"),
        pytest.param(("subnets:read",), "GET", id="read-only-read"),
        pytest.param(("subnets:write",), "POST", id="write-only-write"),
        pytest.param(("subnets:read", "subnets:write"), "GET", id="both-read"),
        pytest.param(("subnets:read", "subnets:write"), "POST", id="both-write"),
    ],
)
def test_token_with_the_scope_is_admitted(
    client: TestClient,
    console: Console,
    account_id: str,
    scopes: tuple[str, ...],
    method: str,
) -> None:
    """A token carrying the endpoint's scope is let through."""
    token = get_token(client, console.credentials(account_id, scopes=scopes))

    response = call(client, method, bearer(token))

    assert response.status_code == 200
    assert response.json()["status"] == "OK"


@pytest.mark.parametrize(
    ("scopes", "method", "needed"),
    [
        pytest.param(("subnets:read",), "POST", "subnets:write", id="read-only-post"),
        pytest.param(
            ("subnets:read",), "DELETE", "subnets:write", id="read-only-delete"
        ),
        pytest.param(("subnets:write",), "GET", "subnets:read", id="write-only-get"),
    ],
)
def test_token_without_the_scope_is_insufficient(
    client: TestClient,
    console: Console,
    account_id: str,
    scopes: tuple[str, ...],
    method: str,
    needed: str,
) -> None:
    """A valid token lacking the endpoint's scope is refused with 403."""
    token = get_token(client, console.credentials(account_id, scopes=scopes))
    if method == "DELETE":
        response = client.delete(f"{SUBNETS}/0", headers=bearer(token))
    else:
        response = call(client, method, bearer(token))

    assert response.status_code == 403
    assert response.json()["status"] == "INSUFFICIENT_SCOPE"
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="insufficient_scope"' in challenge
    assert f'scope="{needed}"' in challenge


def test_token_scope_narrower_than_credentials_governs(
    client: TestClient, issued: IssuedSecret
) -> None:
    """A token asked for with `subnets:read` alone cannot write."""
    token = get_token(client, issued, scope="subnets:read")

    response = call(client, "POST", bearer(token))

    assert response.status_code == 403
    assert response.json()["status"] == "INSUFFICIENT_SCOPE"
    assert 'scope="subnets:write"' in response.headers["WWW-Authenticate"]
