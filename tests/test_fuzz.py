"""Fuzzing: the served OpenAPI document with schemathesis, and the parsers
that read untrusted bytes with hypothesis.

The schema-driven test runs against a real `netcalc serve`, so a hang shows
as a request timeout. Every answer must be below 500, and every JSON answer
of an `/api` route must carry a contract status with its HTTP status.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from netcalc.app import create_app
from netcalc.auth.client_secrets import is_client_secret, new_client_secret
from netcalc.bodies import parse_json_object
from netcalc.errors import InvalidRequest
from tests.support import PASSWORD, ServerProcess, make_settings

CONTRACT = {
    "OK": {200},
    "REQUEST_TOO_LARGE": {413, 414, 431},
    "MISSING_HEADER": {400},
    "INVALID_REQUEST": {400, 401},
    "MISSING_CREDENTIALS": {401},
    "INVALID_GRANT_TYPE": {401},
    "TOO_MANY_REQUESTS": {429},
    "CREDENTIALS_NOT_FOUND": {401},
    "INVALID_CREDENTIALS": {401},
    "REVOKED_CREDENTIALS": {401},
    "INVALID_GRANT": {401},
    "INSUFFICIENT_SCOPE": {403},
    "METHOD_NOT_ALLOWED": {405},
    "NOT_FOUND": {400, 404},
    "MISSING_VALUES": {400},
    "NETWORK_ADDRESS_INVALID": {400},
    "NO_ADDRESS_SPECIFIED": {400},
    "INVALID_ADDRESS": {400},
}
"""Each `status` of CONTRACT.md with the HTTP statuses it is answered with."""

OAUTH_ERRORS = {
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "temporarily_unavailable",
}
"""The RFC 6749 §5.2 error codes the standard endpoints may answer."""

EMAIL = "fuzz@example.com"

# Built at import, as schemathesis needs it to make one test per operation;
# an in-memory database URL keeps the unused app off the disk.
DOCUMENT = create_app(
    make_settings(Path("unused"), database_url="sqlite:///:memory:")
).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)

DOCUMENT_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
"""The answer is one the document lists, with its media type, headers and body."""


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose address throttle never hides the deeper checks."""
    process = ServerProcess(
        tmp_path_factory.mktemp("fuzz"),
        NETCALC_FAILED_AUTH_PER_ADDRESS="100000/minute",
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def credentials(fuzz_server: ServerProcess) -> dict[str, str]:
    """Credentials of one account, made through the CLI, with a fresh token."""
    made = fuzz_server.cli(
        "accounts", "create", EMAIL, "--password-stdin", stdin=PASSWORD
    )
    assert made.returncode == 0, made.stderr
    done = fuzz_server.cli("credentials", "create", "--account", EMAIL, "--json")
    assert done.returncode == 0, done.stderr
    issued: dict[str, str] = json.loads(done.stdout)
    response = httpx.post(
        fuzz_server.url + "/api/auth/token",
        json=issued | {"grant_type": "client_credentials"},
    )
    assert response.status_code == 200, response.text
    return issued | {"token": response.json()["token"]["access_token"]}


@pytest.mark.server
def test_served_document_is_the_fuzzed_one(fuzz_server: ServerProcess) -> None:
    """HTTP 200 for /api/openapi.json, and it is the document fuzzed below."""
    response = httpx.get(fuzz_server.url + "/api/openapi.json")
    assert response.status_code == 200
    assert response.json() == DOCUMENT


def extra_headers(case: Case[Any], credentials: dict[str, str]) -> dict[str, str]:
    """A valid bearer token for the account APIs, so the fuzz reaches past it."""
    if case.path.startswith("/api/account/"):
        return {"Authorization": f"Bearer {credentials['token']}"}
    return {}


def check_contract(case: Case[Any], response: Response) -> None:
    """The answer is below 500 and shaped as the contract or RFC 6749 says."""
    assert response.status_code < 500, response.content
    if not any("json" in kind for kind in response.headers.get("content-type", [])):
        return
    document = json.loads(response.content)
    if case.path.startswith("/api/"):
        assert response.status_code in CONTRACT[document["status"]], document
    elif "error" in document:
        assert document["error"] in OAUTH_ERRORS, document


@pytest.mark.server
@schema.parametrize()
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_served_schema_holds_under_fuzzing(
    case: Case[Any], fuzz_server: ServerProcess, credentials: dict[str, str]
) -> None:
    """Below HTTP 500, in time, in the contract's shape and as the document says."""
    response = case.call(
        base_url=fuzz_server.url, headers=extra_headers(case, credentials), timeout=10
    )
    check_contract(case, response)
    case.validate_response(response, checks=DOCUMENT_CHECKS)


@given(st.binary(max_size=2048))
def test_json_object_parser_takes_any_bytes(body: bytes) -> None:
    """Any bytes give a dict or INVALID_REQUEST, never another exception."""
    with contextlib.suppress(InvalidRequest):
        assert isinstance(parse_json_object(body), dict)


@given(
    st.recursive(
        # NaN and the infinities are not JSON (RFC 8259 §6), and are refused.
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(),
        lambda children: st.lists(children) | st.dictionaries(st.text(), children),
        max_leaves=50,
    )
)
def test_json_object_parser_round_trips_documents(document: object) -> None:
    """Any JSON document parses back to itself when it is an object, else refused."""
    body = json.dumps(document).encode()
    if isinstance(document, dict):
        assert json.dumps(parse_json_object(body)) == body.decode()
    else:
        with pytest.raises(InvalidRequest):
            parse_json_object(body)


@given(st.text(max_size=128) | st.text(max_size=49).map("ncs_".__add__))
def test_secret_parser_takes_any_text(value: str) -> None:
    """Any text gives True or False, and True only with the secret's shape."""
    if is_client_secret(value):
        assert value.startswith("ncs_") and len(value) == 53


@given(st.binary(max_size=128))
def test_secret_parser_takes_any_decoded_bytes(raw: bytes) -> None:
    """Bytes decoded leniently, as a header might be, never crash the parser."""
    assert is_client_secret(raw.decode("utf-8", "surrogateescape")) in (True, False)


@given(st.data())
def test_secret_parser_refuses_any_single_change(data: st.DataObject) -> None:
    """A real secret with any one character replaced by any other is refused."""
    secret = new_client_secret()
    position = data.draw(st.integers(0, len(secret) - 1))
    replacement = data.draw(st.characters().filter(lambda c: c != secret[position]))
    changed = secret[:position] + replacement + secret[position + 1 :]
    assert is_client_secret(secret)
    assert not is_client_secret(changed)
