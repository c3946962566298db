"""The standard OAuth 2.0 endpoints, driven by clients this project did not write."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from oauthlib.oauth2 import BackendApplicationClient
from requests_oauthlib import OAuth2Session
from starlette.exceptions import HTTPException

from netcalc.resource_server import Introspection, TokenGuard
from netcalc.responses import NO_STORE, JSONBody
from netcalc.security_headers import HEADERS
from tests.support import PASSWORD, ServerProcess, free_port

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One live server for the module, with no clock-skew leeway."""
    process = ServerProcess(
        tmp_path_factory.mktemp("oauth"), NETCALC_CLOCK_SKEW_SECONDS="0"
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


_accounts = iter(range(1000))


def credentials(
    server: ServerProcess, *args: str, email: str | None = None
) -> dict[str, Any]:
    """New credentials, in a new account unless `email` names an existing one."""
    if email is None:
        email = f"oauth{next(_accounts)}@example.com"
        made = server.cli(
            "accounts", "create", email, "--password-stdin", stdin=PASSWORD
        )
        assert made.returncode == 0, made.stderr
    created = server.cli("credentials", "create", "--account", email, "--json", *args)
    assert created.returncode == 0, created.stderr
    result: dict[str, Any] = json.loads(created.stdout) | {"email": email}
    return result


def metadata(server: ServerProcess) -> dict[str, Any]:
    response = httpx.get(server.url + "/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def oauth_token(
    server: ServerProcess, issued: dict[str, Any], **form: str
) -> httpx.Response:
    return httpx.post(
        server.url + "/oauth2/token",
        data={"grant_type": "client_credentials"} | form,
        auth=(issued["client_id"], issued["client_secret"]),
    )


def access_token(server: ServerProcess, issued: dict[str, Any]) -> str:
    response = oauth_token(server, issued)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def introspect(
    server: ServerProcess, caller: dict[str, Any], token: str
) -> dict[str, Any]:
    response = httpx.post(
        server.url + "/oauth2/introspect",
        data={"token": token},
        auth=(caller["client_id"], caller["client_secret"]),
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    result: dict[str, Any] = response.json()
    return result


def subnets_status(server: ServerProcess, token: str) -> int:
    response = httpx.get(
        server.url + "/api/account/subnets",
        headers={"Authorization": f"Bearer {token}"},
    )
    return response.status_code


def test_metadata_describes_the_server(server: ServerProcess) -> None:
    """RFC 8414 metadata names the issuer, endpoints, methods, scopes and algorithms."""
    document = metadata(server)
    assert document["issuer"] == server.url
    assert document["token_endpoint"] == server.url + "/oauth2/token"
    assert document["introspection_endpoint"] == server.url + "/oauth2/introspect"
    assert document["revocation_endpoint"] == server.url + "/oauth2/revoke"
    assert document["jwks_uri"] == server.url + "/.well-known/jwks.json"
    assert document["grant_types_supported"] == ["client_credentials"]
    assert set(document["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }
    assert document["scopes_supported"] == ["subnets:read", "subnets:write"]
    assert document["access_token_signing_alg_values_supported"] == ["ES256"]


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_authlib_fetches_a_token(server: ServerProcess, method: str) -> None:
    """Authlib's OAuth2Client gets a working token with either authentication method."""
    issued = credentials(server)
    with OAuth2Client(
        issued["client_id"], issued["client_secret"], token_endpoint_auth_method=method
    ) as client:
        token = client.fetch_token(
            metadata(server)["token_endpoint"], grant_type="client_credentials"
        )
        assert token["token_type"] == "Bearer"
        assert token["expires_in"] == 3600
        assert token["scope"] == "subnets:read subnets:write"
        response = client.get(server.url + "/api/account/subnets")
    assert response.status_code == 200
    assert response.json()["status"] == "OK"


def test_requests_oauthlib_backend_application(
    server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests-oauthlib's BackendApplicationClient gets a token and calls the API."""
    # oauthlib insists on https; this server is plain HTTP on loopback.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    issued = credentials(server, "--scope", "subnets:read")
    session = OAuth2Session(
        client=BackendApplicationClient(client_id=issued["client_id"])
    )
    token = session.fetch_token(
        token_url=server.url + "/oauth2/token",
        client_id=issued["client_id"],
        client_secret=issued["client_secret"],
    )
    assert token["scope"] == ["subnets:read"]
    response = session.get(server.url + "/api/account/subnets")
    assert response.status_code == 200


def test_pyjwt_verifies_with_jwks_uri_from_metadata(server: ServerProcess) -> None:
    """PyJWT's PyJWKClient, pointed at the metadata's jwks_uri, verifies a token."""
    token = access_token(server, credentials(server))
    document = metadata(server)
    signing_key = jwt.PyJWKClient(document["jwks_uri"]).get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        signing_key,
        algorithms=document["access_token_signing_alg_values_supported"],
        audience="netcalc",
        issuer=document["issuer"],
    )
    assert claims["scope"] == "subnets:read subnets:write"


def test_success_response_shape(server: ServerProcess) -> None:
    """The §5.1 answer has exactly the standard members and is never cached."""
    response = oauth_token(server, credentials(server), scope="subnets:read")
    assert response.status_code == 200
    assert set(response.json()) == {"access_token", "token_type", "expires_in", "scope"}
    assert response.json()["scope"] == "subnets:read"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"


def test_success_head_is_json_body_with_no_store(server: ServerProcess) -> None:
    """The §5.1 answer's header fields are JSONBody's with NO_STORE, then the
    security headers, in that order and spelling."""
    response = oauth_token(server, credentials(server))
    assert response.status_code == 200
    expected = JSONBody(response.json(), headers=NO_STORE).raw_headers + HEADERS
    served = [
        (name.lower(), value)
        for name, value in response.headers.raw
        if name.lower() not in (b"date", b"server")
    ]
    assert served == expected


def _error(response: httpx.Response) -> tuple[int, str]:
    assert response.headers["cache-control"] == "no-store"
    return response.status_code, response.json()["error"]


def test_client_failures_are_all_invalid_client(server: ServerProcess) -> None:
    """Unknown id, wrong secret and revoked credentials all get 401 invalid_client."""
    issued = credentials(server)
    revoked = credentials(server)
    assert server.cli("credentials", "revoke", revoked["client_id"]).returncode == 0
    attempts = [
        issued | {"client_id": "nci_" + "0" * 32},
        issued | {"client_secret": revoked["client_secret"]},
        revoked,
    ]
    bodies = []
    for attempt in attempts:
        response = oauth_token(server, attempt)
        assert _error(response) == (401, "invalid_client")
        assert response.headers["www-authenticate"].startswith("Basic")
        bodies.append(response.json())
    assert bodies[0] == bodies[1] == bodies[2]


def test_missing_client_authentication(server: ServerProcess) -> None:
    """A request with no client authentication is invalid_client."""
    response = httpx.post(
        server.url + "/oauth2/token", data={"grant_type": "client_credentials"}
    )
    assert _error(response) == (401, "invalid_client")


@pytest.mark.parametrize(
    "form, expected",
    [
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"grant_type": None}, "invalid_request"),
        ({"scope": "admin"}, "invalid_scope"),
    ],
    ids=["other-grant", "no-grant-type", "unknown-scope"],
)
def test_request_errors(
    server: ServerProcess, form: dict[str, str | None], expected: str
) -> None:
    """Grant type and scope problems get their RFC 6749 §5.2 codes with 400."""
    issued = credentials(server)
    data = {k: v for k, v in ({"grant_type": "client_credentials"} | form).items() if v}
    response = httpx.post(
        server.url + "/oauth2/token",
        data=data,
        auth=(issued["client_id"], issued["client_secret"]),
    )
    assert _error(response) == (400, expected)


def test_parameters_without_a_value_count_as_omitted(server: ServerProcess) -> None:
    """RFC 6749 §3.2: an empty parameter is as if it was not sent, so empty
    body credentials beside Basic are no second method, and an empty
    grant_type or scope is missing rather than unsupported or unknown."""
    issued = credentials(server)
    body = "grant_type=client_credentials&client_id=&client_secret=&scope="
    granted = httpx.post(
        server.url + "/oauth2/token",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=(issued["client_id"], issued["client_secret"]),
    )
    assert granted.status_code == 200, granted.text
    assert granted.json()["scope"] == "subnets:read subnets:write"
    blank_grant = oauth_token(server, issued, grant_type="")
    assert _error(blank_grant) == (400, "invalid_request")
    introspected = httpx.post(
        server.url + "/oauth2/introspect",
        data={"token": "", "client_id": issued["client_id"]},
        auth=(issued["client_id"], issued["client_secret"]),
    )
    assert _error(introspected) == (400, "invalid_request")


def test_scope_beyond_credentials_is_invalid_scope(server: ServerProcess) -> None:
    """Read-only credentials asking for write get invalid_scope."""
    issued = credentials(server, "--scope", "subnets:read")
    response = oauth_token(server, issued, scope="subnets:write")
    assert _error(response) == (400, "invalid_scope")


def test_disabled_account_is_unauthorized_client(server: ServerProcess) -> None:
    """Valid credentials of a disabled account get no token until enabled."""
    issued = credentials(server)
    assert server.cli("accounts", "disable", issued["email"]).returncode == 0
    refused = oauth_token(server, issued)
    assert refused.status_code == 400
    assert refused.json()["error"] == "unauthorized_client"
    assert server.cli("accounts", "enable", issued["email"]).returncode == 0
    assert oauth_token(server, issued).status_code == 200


@pytest.mark.parametrize("endpoint", ["/oauth2/introspect", "/oauth2/revoke"])
def test_disabled_account_may_not_introspect_or_revoke(
    server: ServerProcess, endpoint: str
) -> None:
    """A disabled account's credentials are refused at introspection and
    revocation as at the token endpoint, and the token stays untouched."""
    issued = credentials(server)
    token = access_token(server, issued)
    assert server.cli("accounts", "disable", issued["email"]).returncode == 0
    refused = httpx.post(
        server.url + endpoint,
        data={"token": token},
        auth=(issued["client_id"], issued["client_secret"]),
    )
    assert _error(refused) == (400, "unauthorized_client")
    assert server.cli("accounts", "enable", issued["email"]).returncode == 0
    assert introspect(server, issued, token)["active"] is True


def test_repeated_parameters_refused(server: ServerProcess) -> None:
    """A parameter given twice is invalid_request (RFC 6749 §3.2)."""
    issued = credentials(server)
    response = httpx.post(
        server.url + "/oauth2/token",
        content="grant_type=client_credentials&grant_type=client_credentials",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=(issued["client_id"], issued["client_secret"]),
    )
    assert _error(response) == (400, "invalid_request")


def test_json_body_refused(server: ServerProcess) -> None:
    """The RFC endpoint reads only form bodies; JSON is invalid_request."""
    issued = credentials(server)
    response = httpx.post(
        server.url + "/oauth2/token",
        json={"grant_type": "client_credentials"} | issued,
    )
    assert _error(response) == (400, "invalid_request")
    description = response.json()["error_description"]
    assert "application/x-www-form-urlencoded" in description
    assert "json" not in description


def test_introspection_of_an_active_token(server: ServerProcess) -> None:
    """A client of the same account sees the token active, with its claims."""
    issued = credentials(server)
    caller = credentials(server, email=issued["email"])
    token = access_token(server, issued)
    result = introspect(server, caller, token)
    assert result["active"] is True
    assert result["client_id"] == issued["client_id"]
    assert result["scope"] == "subnets:read subnets:write"
    assert result["iss"] == server.url and result["aud"] == "netcalc"
    assert result["exp"] - result["iat"] == 3600


def test_introspection_inactive_cases(server: ServerProcess) -> None:
    """Garbage, foreign-account, expired and revoked tokens are all just inactive."""
    issued = credentials(server)
    stranger = credentials(server)
    short = credentials(server, "--ttl", "1", email=issued["email"])
    token = access_token(server, issued)
    short_token = access_token(server, short)

    assert introspect(server, issued, "not.a.token") == {"active": False}
    assert introspect(server, stranger, token) == {"active": False}
    time.sleep(2.1)
    assert introspect(server, issued, short_token) == {"active": False}
    assert server.cli("credentials", "revoke", short["client_id"]).returncode == 0
    assert server.cli("credentials", "revoke", issued["client_id"]).returncode == 0
    assert introspect(server, stranger, token) == {"active": False}


def test_introspection_needs_client_authentication(server: ServerProcess) -> None:
    """Introspection by an unauthenticated caller is 401 invalid_client."""
    token = access_token(server, credentials(server))
    response = httpx.post(server.url + "/oauth2/introspect", data={"token": token})
    assert _error(response) == (401, "invalid_client")


def test_revoking_one_token_leaves_the_others(server: ServerProcess) -> None:
    """RFC 7009 revocation refuses that token at once; the client's others work."""
    issued = credentials(server)
    doomed, spared = access_token(server, issued), access_token(server, issued)
    response = httpx.post(
        server.url + "/oauth2/revoke",
        data={"token": doomed, "token_type_hint": "access_token"},
        auth=(issued["client_id"], issued["client_secret"]),
    )
    assert response.status_code == 200
    assert subnets_status(server, doomed) == 401
    assert introspect(server, issued, doomed) == {"active": False}
    assert subnets_status(server, spared) == 200
    assert introspect(server, issued, spared)["active"] is True


def test_revoking_one_token_many_times_at_once(server: ServerProcess) -> None:
    """Retried revocations sent together all get 200, and the token's
    revocation is recorded once."""
    issued = credentials(server)
    token = access_token(server, issued)
    auth = (issued["client_id"], issued["client_secret"])

    async def revoke_together() -> list[int]:
        async with httpx.AsyncClient(base_url=server.url, auth=auth) as client:
            answers = await asyncio.gather(
                *(
                    client.post("/oauth2/revoke", data={"token": token})
                    for _ in range(12)
                )
            )
        return [answer.status_code for answer in answers]

    assert asyncio.run(revoke_together()) == [200] * 12
    assert subnets_status(server, token) == 401
    listed = server.cli("audit", "--account", issued["email"], "--json")
    events = [event["event"] for event in json.loads(listed.stdout)]
    assert events.count("token.revoked") == 1


def test_revoking_a_foreign_token_does_nothing(server: ServerProcess) -> None:
    """Another account's token is answered 200 but stays valid."""
    owner, stranger = credentials(server), credentials(server)
    token = access_token(server, owner)
    response = httpx.post(
        server.url + "/oauth2/revoke",
        data={"token": token},
        auth=(stranger["client_id"], stranger["client_secret"]),
    )
    assert response.status_code == 200
    assert subnets_status(server, token) == 200


def test_a_client_may_not_revoke_another_clients_token(server: ServerProcess) -> None:
    """RFC 7009 §2.1: a token issued to other credentials of the same
    account is refused with unauthorized_client, and stays valid."""
    owner = credentials(server)
    sibling = credentials(server, email=owner["email"])
    token = access_token(server, owner)
    response = httpx.post(
        server.url + "/oauth2/revoke",
        data={"token": token},
        auth=(sibling["client_id"], sibling["client_secret"]),
    )
    assert _error(response) == (400, "unauthorized_client")
    assert subnets_status(server, token) == 200


class ExampleService:
    """The example resource server under uvicorn, guarded by the kit."""

    def __init__(self, issuer: str, introspection: dict[str, Any], log: Path) -> None:
        self.port = free_port()
        env = {
            "NETCALC_ISSUER": issuer,
            "NETCALC_INTROSPECT_CLIENT_ID": introspection["client_id"],
            "NETCALC_INTROSPECT_CLIENT_SECRET": introspection["client_secret"],
        }
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "resource_server:app",
                    "--app-dir",
                    str(ROOT / "examples"),
                    "--port",
                    str(self.port),
                ],
                env=os.environ | env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(log.read_text())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def test_example_service_guarded_by_the_kit(
    server: ServerProcess, tmp_path: Path
) -> None:
    """The example service accepts a live token and refuses it once revoked."""
    issued = credentials(server)
    guard = credentials(server, email=issued["email"])
    service = ExampleService(server.url, guard, tmp_path / "example.log")
    try:
        token = access_token(server, issued)
        url = service.url + "/reports"
        accepted = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
        assert accepted.status_code == 200
        assert accepted.json()["client_id"] == issued["client_id"]
        assert httpx.get(url).status_code == 401
        tampered = token[:-8] + ("A" * 8 if not token.endswith("A" * 8) else "B" * 8)
        assert (
            httpx.get(url, headers={"Authorization": f"Bearer {tampered}"}).status_code
            == 401
        )
        revoked = httpx.post(
            server.url + "/oauth2/revoke",
            data={"token": token},
            auth=(issued["client_id"], issued["client_secret"]),
        )
        assert revoked.status_code == 200
        refused = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 401
        assert "invalid_token" in refused.headers["www-authenticate"]
        assert refused.json()["detail"].startswith(
            "The issuer reports the token inactive: revoked, "
        )
    finally:
        service.stop()


def _kit_refusal(guard: TokenGuard, token: str) -> int:
    async def verify() -> int:
        try:
            await guard.verify(token)
        except HTTPException as refusal:
            return refusal.status_code
        finally:
            await guard.aclose()
        return 200

    return asyncio.run(verify())


def test_kit_pauses_after_the_issuer_refuses_its_credentials(
    server: ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """Introspection credentials revoked under a running service: calls are
    answered 503 saying so, one error is logged, and once the refusal is
    known the issuer is not asked again during the pause, so the host is
    not locked out there."""
    issued = credentials(server)
    token = access_token(server, issued)
    stale = credentials(server, email=issued["email"])
    assert server.cli("credentials", "revoke", stale["client_id"]).returncode == 0
    asked: list[str] = []

    async def note(request: httpx.Request) -> None:
        asked.append(request.url.path)

    async def refusal(guard: TokenGuard) -> tuple[int, str]:
        with pytest.raises(HTTPException) as refused:
            await guard.verify(token)
        return refused.value.status_code, str(refused.value.detail)

    async def calls() -> tuple[list[tuple[int, str]], int]:
        http = httpx.AsyncClient(event_hooks={"request": [note]})
        introspection = Introspection(stale["client_id"], stale["client_secret"])
        guard = TokenGuard(
            server.url, "netcalc", introspection=introspection, http=http
        )
        at_once = await asyncio.gather(*(refusal(guard) for _ in range(5)))
        asked_at_once = asked.count("/oauth2/introspect")
        after = [await refusal(guard) for _ in range(3)]
        await http.aclose()
        return [*at_once, *after], asked_at_once

    with caplog.at_level(logging.ERROR, logger="netcalc.resource_server"):
        answers, asked_at_once = asyncio.run(calls())
    refused = "The token issuer refused this service's credentials; retry later."
    assert answers == [(503, refused)] * 8
    assert asked.count("/oauth2/introspect") == asked_at_once <= 5
    (logged,) = caplog.records
    assert stale["client_id"] in logged.getMessage()
    assert stale["client_secret"] not in logged.getMessage()


async def _shorten_key_set_max_age(response: httpx.Response) -> None:
    # The issuer's five minutes, as a few seconds: the kit's floor between
    # fetches applies, so the test waits that floor rather than the cache time.
    if response.url.path == "/.well-known/jwks.json":
        response.headers["Cache-Control"] = "public, max-age=1"


async def _kit_answers(
    guard: TokenGuard, token: str, until: int, seconds: float
) -> list[int]:
    """The kit's answers to `token`, asked every half second until one is
    `until` or `seconds` have passed."""
    seen: list[int] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and until not in seen:
        try:
            await guard.verify(token)
            seen.append(200)
        except HTTPException as refusal:
            seen.append(refusal.status_code)
        await asyncio.sleep(0.5)
    return seen


def _guard_with_short_key_cache(issuer: ServerProcess) -> TokenGuard:
    http = httpx.AsyncClient(event_hooks={"response": [_shorten_key_set_max_age]})
    return TokenGuard(issuer.url, "netcalc", http=http)


def test_kit_stops_trusting_a_withdrawn_key_when_its_cache_time_is_up(
    tmp_path: Path,
) -> None:
    """After `keys rotate --withdraw`, the kit fetches the key set again once
    the issuer's max-age has passed, though every token names a key it
    knows, and refuses the withdrawn key's tokens."""
    issuer = ServerProcess(tmp_path / "withdraw", NETCALC_KEY_REFRESH_SECONDS="0.5")

    async def answers(token: str) -> tuple[list[int], list[int]]:
        guard = _guard_with_short_key_cache(issuer)
        before = await _kit_answers(guard, token, until=200, seconds=5)
        assert issuer.cli("keys", "rotate", "--withdraw").returncode == 0
        after = await _kit_answers(guard, token, until=401, seconds=20)
        await guard.aclose()
        return before, after

    issuer.start()
    try:
        before, after = asyncio.run(answers(access_token(issuer, credentials(issuer))))
    finally:
        issuer.stop()
    assert before == [200]
    assert after[-1] == 401


def test_kit_verifies_with_its_last_key_set_while_the_issuer_is_away(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A key set past its cache time still verifies while the issuer cannot
    be reached, with a warning, so an issuer restart stops no service."""
    issuer = ServerProcess(tmp_path / "away")

    async def answers(token: str) -> tuple[list[int], list[int]]:
        guard = _guard_with_short_key_cache(issuer)
        before = await _kit_answers(guard, token, until=200, seconds=5)
        issuer.stop()
        away = await _kit_answers(guard, token, until=0, seconds=7)
        await guard.aclose()
        return before, away

    issuer.start()
    try:
        token = access_token(issuer, credentials(issuer))
        with caplog.at_level(logging.WARNING, logger="netcalc.resource_server"):
            before, away = asyncio.run(answers(token))
    finally:
        issuer.stop()
    assert before == [200]
    assert set(away) == {200}
    assert "could not be fetched again" in caplog.text


def test_kit_keeps_its_key_set_when_the_issuer_answers_no_key_set(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A key-set answer that is JSON but not an object, after the cache time,
    is a failed fetch: requests waiting on it verify with the last key set,
    and the failure is logged once, not once per request."""
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key())) | {
        "kid": "k1",
        "alg": "ES256",
    }
    answers = [
        httpx.Response(
            200, json={"keys": [jwk]}, headers={"Cache-Control": "max-age=5"}
        )
    ]

    def issuer(request: httpx.Request) -> httpx.Response:
        return answers.pop(0) if answers else httpx.Response(200, json=[])

    now = int(time.time())
    claims = {
        "iss": "http://issuer.test",
        "aud": "netcalc",
        "sub": "c",
        "iat": now,
        "exp": now + 60,
    }
    token = jwt.encode(
        claims, key, algorithm="ES256", headers={"kid": "k1", "typ": "at+jwt"}
    )

    async def verified() -> list[int]:
        http = httpx.AsyncClient(transport=httpx.MockTransport(issuer))
        guard = TokenGuard("http://issuer.test", "netcalc", http=http)
        await guard.verify(token)
        await asyncio.sleep(5.1)
        results = await asyncio.gather(
            *(guard.verify(token) for _ in range(20)), return_exceptions=True
        )
        await http.aclose()
        return [200 if isinstance(r, dict) else 0 for r in results]

    with caplog.at_level(logging.WARNING, logger="netcalc.resource_server"):
        assert asyncio.run(verified()) == [200] * 20
    assert caplog.text.count("could not be fetched again") == 1


def test_kit_accepts_a_valid_token(server: ServerProcess) -> None:
    """The kit verifies a fresh token offline with the published keys."""
    token = access_token(server, credentials(server))
    assert _kit_refusal(TokenGuard(server.url, "netcalc"), token) == 200


def test_kit_checks_issuer_audience_and_algorithm(server: ServerProcess) -> None:
    """Another issuer or audience, an alg of none, or HS256 are all refused."""
    token = access_token(server, credentials(server))
    # Same keys, but an issuer string that differs from the token's iss.
    assert _kit_refusal(TokenGuard(server.url + "/", "netcalc"), token) == 401
    assert _kit_refusal(TokenGuard(server.url, "another-api"), token) == 401
    payload = token.split(".")[1]
    none_header = (
        base64.urlsafe_b64encode(
            json.dumps({"alg": "none", "typ": "at+jwt", "kid": "x"}).encode()
        )
        .rstrip(b"=")
        .decode()
    )
    assert (
        _kit_refusal(TokenGuard(server.url, "netcalc"), f"{none_header}.{payload}.")
        == 401
    )
    kid = jwt.get_unverified_header(token)["kid"]
    forged = jwt.encode(
        jwt.decode(token, options={"verify_signature": False}),
        "a-public-key-used-as-a-secret-0123456789",
        algorithm="HS256",
        headers={"kid": kid, "typ": "at+jwt"},
    )
    assert _kit_refusal(TokenGuard(server.url, "netcalc"), forged) == 401


def test_kit_refuses_expired_tokens(server: ServerProcess) -> None:
    """A token past its exp is refused once the kit's leeway has passed."""
    token = access_token(server, credentials(server, "--ttl", "1"))
    time.sleep(2.1)
    assert _kit_refusal(TokenGuard(server.url, "netcalc", leeway=0), token) == 401
