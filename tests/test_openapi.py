"""The served OpenAPI document lists what each route really answers.

Each error below is rendered as `netcalc.responses` answers it, and its
status, body and headers are looked up in the document, so a route that
raises an error its operation does not declare, or a body the schema does
not admit, fails here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate

from netcalc.app import create_app
from netcalc.errors import (
    BearerMissing,
    CredentialsNotFound,
    InsufficientScope,
    InvalidAddress,
    InvalidCredentials,
    InvalidGrant,
    InvalidGrantType,
    InvalidRequest,
    InvalidScope,
    InvalidToken,
    MethodNotAllowed,
    MissingCredentials,
    MissingGrantType,
    MissingHeader,
    MissingValues,
    NetcalcError,
    NetworkAddressInvalid,
    NoAddressSpecified,
    NotFound,
    RequestTooLarge,
    RevokedCredentials,
    SubnetLimitReached,
    TooManyRequests,
    UnexpectedError,
)
from netcalc.responses import JSONBody, error_body, oauth_error_body
from tests.support import make_settings

BODY = [RequestTooLarge(), MissingHeader(), InvalidRequest()]
CLIENT = [
    MissingCredentials(),
    TooManyRequests(30),
    CredentialsNotFound(),
    InvalidCredentials(),
    RevokedCredentials(),
    InvalidGrant(),
]
GRANT = [*BODY, *CLIENT, InvalidGrantType(), MissingGrantType(), InvalidScope()]
BEARER = [BearerMissing(), InvalidToken(), InsufficientScope("subnets:read")]

RAISED: dict[tuple[str, str], list[NetcalcError]] = {
    ("post", "/api/auth/token"): [*GRANT, MethodNotAllowed("POST")],
    ("post", "/oauth2/token"): GRANT,
    ("post", "/oauth2/introspect"): [*BODY, *CLIENT],
    ("post", "/oauth2/revoke"): [*BODY, *CLIENT],
    ("get", "/api/account/subnets"): BEARER,
    ("get", "/api/account/subnets/{subnet_id}"): [*BEARER, NotFound()],
    ("delete", "/api/account/subnets/{subnet_id}"): [*BEARER, NotFound()],
    ("post", "/api/account/subnets"): [
        *BEARER,
        *BODY,
        MissingValues(),
        NetworkAddressInvalid(),
        SubnetLimitReached(),
    ],
    ("get", "/api/ip"): [NoAddressSpecified()],
    ("get", "/api/ip/"): [NoAddressSpecified()],
    ("get", "/api/ip/{subnet}"): [
        NoAddressSpecified(),
        InvalidAddress(),
        InvalidRequest(),
    ],
}
"""The errors each route raises, from CONTRACT.md and the route code."""

NAMED_HEADERS = ("allow", "retry-after", "www-authenticate")
"""The headers CONTRACT.md names for some answers."""


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """The OpenAPI document the app serves."""
    settings = make_settings(Path("unused"), database_url="sqlite:///:memory:")
    return create_app(settings).openapi()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    ]


def _rendered(path: str, error: NetcalcError) -> JSONBody:
    if path.startswith("/oauth2/"):
        return oauth_error_body(error)
    return error_body(error)


def test_document_is_valid_openapi_3(document: dict[str, Any]) -> None:
    """The document passes the OpenAPI 3 validator."""
    validate(document)


def test_no_operation_lists_a_validation_error(document: dict[str, Any]) -> None:
    """No operation lists FastAPI's 422, which netcalc never answers."""
    for _, _, operation in _operations(document):
        assert "422" not in operation["responses"]
    assert "HTTPValidationError" not in json.dumps(document)


def test_every_operation_lists_a_system_error(document: dict[str, Any]) -> None:
    """Every operation lists the 500 any route may answer, with its body."""
    for _, path, operation in _operations(document):
        answer = operation["responses"]["500"]["content"]["application/json"]
        rendered = json.loads(_rendered(path, UnexpectedError()).body)
        jsonschema.validate(rendered, answer["schema"])


def test_no_answer_has_an_empty_schema(document: dict[str, Any]) -> None:
    """Every JSON answer of every operation describes its body."""
    for _, _, operation in _operations(document):
        for answer in operation["responses"].values():
            for media in answer.get("content", {}).values():
                assert media["schema"], answer["description"]


def test_every_raising_route_is_checked(document: dict[str, Any]) -> None:
    """Each operation that can fail other than with a 500 is listed in RAISED."""
    for method, path, operation in _operations(document):
        if set(operation["responses"]) - {"200", "500"}:
            assert (method, path) in RAISED


@pytest.mark.parametrize(
    ("method", "path", "error"),
    [
        pytest.param(method, path, error, id=f"{method} {path} {type(error).__name__}")
        for (method, path), errors in RAISED.items()
        for error in errors
    ],
)
def test_each_error_is_listed_under_its_status(
    document: dict[str, Any], method: str, path: str, error: NetcalcError
) -> None:
    """The route's answer to the error is listed: status, body schema, headers."""
    rendered = _rendered(path, error)
    responses = document["paths"][path][method]["responses"]

    answer = responses[str(rendered.status_code)]
    schema = answer["content"]["application/json"]["schema"]
    jsonschema.validate(json.loads(rendered.body), schema)

    documented = {name.lower() for name in answer.get("headers", {})}
    sent = {name.decode() for name, _ in rendered.raw_headers}
    assert sent.intersection(NAMED_HEADERS) <= documented


def test_revocation_answers_an_empty_body(document: dict[str, Any]) -> None:
    """RFC 7009's 200 is documented without a body."""
    answer = document["paths"]["/oauth2/revoke"]["post"]["responses"]["200"]
    assert "content" not in answer


def test_calculator_without_subnet_never_succeeds(document: dict[str, Any]) -> None:
    """`GET /api/ip` is documented as answering 400, never 200."""
    assert "200" not in document["paths"]["/api/ip"]["get"]["responses"]
