"""POST /api/auth/token: every row of CONTRACT §1, in its order."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from httpx import Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.testclient import TestClient

from netcalc.accounts.service import IssuedSecret, find_account, set_disabled
from netcalc.app import create_app
from netcalc.auth.client_secrets import new_client_id, new_client_secret
from netcalc.settings import Settings
from tests.support import Console, make_settings, token_body

URL = "/api/auth/token"


@pytest.fixture
def issued(console: Console) -> IssuedSecret:
    """Credentials of a fresh account, with every scope."""
    return console.credentials(console.account("owner@example.com"))


def test_success_answers_token_with_no_store(
    client: TestClient, issued: IssuedSecret
) -> None:
    """Valid credentials get a bearer token, and the answer is never cached."""
    response = client.post(URL, json=token_body(issued))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "OK"
    assert body["token"]["token_type"] == "bearer"
    assert body["token"]["expires_in"] == 3600
    assert body["token"]["access_token"].count(".") == 2
    assert "scope" not in body["token"]
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"


def test_form_body_and_charset_parameter(
    client: TestClient, issued: IssuedSecret
) -> None:
    """A form body works, and so does JSON declared with a charset."""
    form = client.post(URL, data=token_body(issued))
    assert form.status_code == 200
    charset = client.post(
        URL,
        content=str(token_body(issued)).replace("'", '"'),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert charset.status_code == 200


def test_basic_header_credentials(client: TestClient, issued: IssuedSecret) -> None:
    """The id and secret may come in an Authorization: Basic header."""
    raw = f"{issued.client_id}:{issued.client_secret}".encode()
    response = client.post(
        URL,
        json={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic " + base64.b64encode(raw).decode()},
    )
    assert response.status_code == 200
    assert response.json()["status"] == "OK"


def test_requested_scope_is_reported(client: TestClient, issued: IssuedSecret) -> None:
    """When a scope is asked for, token.scope holds what was granted."""
    response = client.post(URL, json=token_body(issued, scope="subnets:read"))
    assert response.status_code == 200
    assert response.json()["token"]["scope"] == "subnets:read"


def test_per_credentials_lifetime(client: TestClient, console: Console) -> None:
    """Credentials with their own token lifetime get tokens of that lifetime."""
    issued = console.credentials(console.account("ttl@example.com"), ttl=120)
    response = client.post(URL, json=token_body(issued))
    assert response.status_code == 200
    assert response.json()["token"]["expires_in"] == 120


def _status(response: Response) -> tuple[int, str]:
    return response.status_code, response.json()["status"]


def test_body_over_limit(client: TestClient) -> None:
    """A body over 16 KiB is refused before anything else is read."""
    response = client.post(
        URL, content=b"x" * 16385, headers={"Content-Type": "text/plain"}
    )
    assert _status(response) == (413, "REQUEST_TOO_LARGE")


def test_body_over_limit_without_length(client: TestClient) -> None:
    """A chunked body with no Content-Length is counted as it arrives."""

    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"x" * 1024

    response = client.post(
        URL, content=chunks(), headers={"Content-Type": "text/plain"}
    )
    assert _status(response) == (413, "REQUEST_TOO_LARGE")


@pytest.mark.parametrize(
    "headers", [{}, {"Content-Type": "text/plain"}], ids=["absent", "text"]
)
def test_missing_header(client: TestClient, headers: dict[str, str]) -> None:
    """No Content-Type, or one neither JSON nor form, is MISSING_HEADER."""
    response = client.post(URL, content=b'{"a": "b"}', headers=headers)
    assert _status(response) == (400, "MISSING_HEADER")


@pytest.mark.parametrize(
    "body",
    [
        b"{oops",
        b"[]",
        b'{"client_id": 1}',
        b'{"client_id": "a", "client_id": "b"}',
        b'{"client_id": "a", "client_secret": "b", "extra": NaN}',
        b'{"client_id": "a", "client_secret": "b", "extra": -Infinity}',
    ],
    ids=["unparseable", "not-object", "not-string", "twice", "nan", "infinity"],
)
def test_invalid_request(client: TestClient, body: bytes) -> None:
    """Bodies that do not parse or hold wrong shapes are INVALID_REQUEST."""
    response = client.post(
        URL, content=body, headers={"Content-Type": "application/json"}
    )
    assert _status(response) == (400, "INVALID_REQUEST")


def test_header_and_body_credentials_refused(
    client: TestClient, issued: IssuedSecret
) -> None:
    """Credentials in both the Basic header and the body are INVALID_REQUEST."""
    raw = f"{issued.client_id}:{issued.client_secret}".encode()
    response = client.post(
        URL,
        json=token_body(issued),
        headers={"Authorization": "Basic " + base64.b64encode(raw).decode()},
    )
    assert _status(response) == (400, "INVALID_REQUEST")


def test_missing_credentials(client: TestClient) -> None:
    """A body without the secret is MISSING_CREDENTIALS."""
    response = client.post(
        URL, json={"client_id": "x", "grant_type": "client_credentials"}
    )
    assert _status(response) == (401, "MISSING_CREDENTIALS")


def test_invalid_grant_type(client: TestClient, issued: IssuedSecret) -> None:
    """A grant_type other than client_credentials is INVALID_GRANT_TYPE."""
    response = client.post(URL, json=token_body(issued, grant_type="password"))
    assert _status(response) == (401, "INVALID_GRANT_TYPE")


def test_credentials_not_found(client: TestClient) -> None:
    """An id no credentials have is CREDENTIALS_NOT_FOUND, well-formed or not."""
    for client_id in (new_client_id(), "not-an-id"):
        body = {
            "client_id": client_id,
            "client_secret": new_client_secret(),
            "grant_type": "client_credentials",
        }
        assert _status(client.post(URL, json=body)) == (401, "CREDENTIALS_NOT_FOUND")


@pytest.mark.parametrize(
    "secret",
    [new_client_secret(), "wrong", "ncs_" + "A" * 49],
    ids=["other-secret", "not-a-secret", "bad-checksum"],
)
def test_invalid_credentials(
    client: TestClient, issued: IssuedSecret, secret: str
) -> None:
    """An existing id with a secret that does not match is INVALID_CREDENTIALS."""
    body = token_body(issued) | {"client_secret": secret}
    assert _status(client.post(URL, json=body)) == (401, "INVALID_CREDENTIALS")


def test_revoked_credentials(
    client: TestClient, console: Console, issued: IssuedSecret
) -> None:
    """The right secret of revoked credentials is REVOKED_CREDENTIALS."""
    console.revoke(issued.client_id)
    response = client.post(URL, json=token_body(issued))
    assert _status(response) == (401, "REVOKED_CREDENTIALS")


def test_revoked_with_wrong_secret_is_invalid(
    client: TestClient, console: Console, issued: IssuedSecret
) -> None:
    """A wrong secret for revoked credentials says INVALID, not REVOKED."""
    console.revoke(issued.client_id)
    body = token_body(issued) | {"client_secret": new_client_secret()}
    assert _status(client.post(URL, json=body)) == (401, "INVALID_CREDENTIALS")


@pytest.mark.parametrize(
    "scope", ["admin", "subnets:read bogus"], ids=["unknown", "one-unknown"]
)
def test_unknown_scope_is_invalid_grant(
    client: TestClient, issued: IssuedSecret, scope: str
) -> None:
    """Asking for a scope that does not exist is INVALID_GRANT."""
    response = client.post(URL, json=token_body(issued, scope=scope))
    assert _status(response) == (401, "INVALID_GRANT")


@pytest.mark.parametrize("url", [URL, "/oauth2/token"])
def test_a_secret_sent_as_scope_is_not_repeated(
    client: TestClient, issued: IssuedSecret, url: str
) -> None:
    """A secret pasted into the scope is refused without being echoed."""
    body = token_body(issued, scope=issued.client_secret)
    response = client.post(url, data=body)
    assert response.status_code in (400, 401)
    assert issued.client_secret not in response.text
    assert issued.client_secret[4:20] not in response.text


def test_scope_beyond_credentials_is_invalid_grant(
    client: TestClient, console: Console
) -> None:
    """Credentials limited to read may not be granted write."""
    issued = console.credentials(
        console.account("r@example.com"), scopes=("subnets:read",)
    )
    response = client.post(URL, json=token_body(issued, scope="subnets:write"))
    assert _status(response) == (401, "INVALID_GRANT")


def test_disabled_account_is_invalid_grant(
    client: TestClient, console: Console, issued: IssuedSecret
) -> None:
    """Valid credentials of a disabled account are INVALID_GRANT."""

    async def disable(engine: AsyncEngine) -> None:
        account = await find_account(engine, "owner@example.com")
        assert account is not None
        await set_disabled(engine, account["id"], True)

    console.run(disable)
    assert _status(client.post(URL, json=token_body(issued))) == (401, "INVALID_GRANT")


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_method_not_allowed(client: TestClient, method: str) -> None:
    """Any method but POST is 405 with Allow: POST."""
    response = client.request(method, URL)
    assert _status(response) == (405, "METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == "POST"


def test_system_error_reveals_nothing(
    client: TestClient, console: Console, issued: IssuedSecret
) -> None:
    """A failing database answers 500 SYSTEM_ERROR with nothing internal."""

    async def break_schema(engine: AsyncEngine) -> None:
        async with engine.begin() as connection:
            await connection.execute(text("DROP TABLE credentials"))

    console.run(break_schema)
    response = client.post(URL, json=token_body(issued))
    assert _status(response) == (500, "SYSTEM_ERROR")
    assert "credentials" not in response.text.lower()
    assert "sql" not in response.text.lower()


def test_checks_run_in_contract_order(client: TestClient) -> None:
    """Each failure answers with the first failing check of the table."""
    big = b"{" + b" " * 20000 + b"}"
    assert _status(client.post(URL, content=big))[1] == "REQUEST_TOO_LARGE"
    assert _status(client.post(URL, content=b"{oops"))[1] == "MISSING_HEADER"
    bad_json = client.post(
        URL, content=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert _status(bad_json)[1] == "INVALID_REQUEST"
    no_secret = client.post(URL, json={"client_id": "x", "grant_type": "nope"})
    assert _status(no_secret)[1] == "MISSING_CREDENTIALS"


class TestThrottle:
    """Failed authentication is throttled per client id and per address."""

    @pytest.fixture
    def tight(
        self, tmp_path: Path, settings: Settings, console: Console
    ) -> Iterator[TestClient]:
        settings = make_settings(
            tmp_path,
            database_url=settings.database_url,
            failed_auth_per_client="3/minute",
            failed_auth_per_address="5/minute",
        )
        with TestClient(
            create_app(settings), raise_server_exceptions=False
        ) as test_client:
            yield test_client

    def test_client_id_throttled_with_retry_after(
        self, tight: TestClient, issued: IssuedSecret
    ) -> None:
        """After the limit of failures the right secret waits too, told when."""
        wrong = token_body(issued) | {"client_secret": new_client_secret()}
        for _ in range(3):
            assert _status(tight.post(URL, json=wrong))[1] == "INVALID_CREDENTIALS"
        response = tight.post(URL, json=token_body(issued))
        assert _status(response) == (429, "TOO_MANY_REQUESTS")
        assert 1 <= int(response.headers["retry-after"]) <= 60

    def test_other_clients_not_slowed(
        self, tight: TestClient, console: Console, issued: IssuedSecret
    ) -> None:
        """A client throttled for failures does not slow another client."""
        other = console.credentials(console.account("other@example.com"))
        wrong = token_body(issued) | {"client_secret": new_client_secret()}
        for _ in range(3):
            tight.post(URL, json=wrong)
        assert _status(tight.post(URL, json=token_body(other))) == (200, "OK")

    def test_address_throttled(self, tight: TestClient, issued: IssuedSecret) -> None:
        """Failures spread over many unknown ids are limited per address."""
        for _ in range(5):
            body = {
                "client_id": new_client_id(),
                "client_secret": "x",
                "grant_type": "client_credentials",
            }
            assert _status(tight.post(URL, json=body))[1] == "CREDENTIALS_NOT_FOUND"
        response = tight.post(URL, json=token_body(issued))
        assert _status(response) == (429, "TOO_MANY_REQUESTS")

    def test_successes_are_not_counted(
        self, tight: TestClient, issued: IssuedSecret
    ) -> None:
        """Many successful requests never reach the failure limit."""
        for _ in range(10):
            assert _status(tight.post(URL, json=token_body(issued))) == (200, "OK")

    def test_success_does_not_reset_count(
        self, tight: TestClient, issued: IssuedSecret
    ) -> None:
        """A success between failures leaves the failure count as it was."""
        wrong = token_body(issued) | {"client_secret": new_client_secret()}
        tight.post(URL, json=wrong)
        tight.post(URL, json=wrong)
        assert _status(tight.post(URL, json=token_body(issued)))[1] == "OK"
        tight.post(URL, json=wrong)
        assert _status(tight.post(URL, json=token_body(issued)))[0] == 429


def test_unknown_endpoint_is_404(client: TestClient) -> None:
    """A path no route answers is 404 NOT_FOUND, not a redirect or a 400."""
    for path in ("/api/nonexistent", "/api/auth/token/"):
        response = client.post(path, follow_redirects=False)
        assert _status(response) == (404, "NOT_FOUND")
