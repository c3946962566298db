"""What each route answers, as the `responses` of its OpenAPI operation.

A route names the errors it may raise; their HTTP statuses and codes are
read from the classes of `netcalc.errors` and from `netcalc.responses`, the
one place that turns errors into answers, so this document cannot drift
from what the server sends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from netcalc.errors import (
    BearerError,
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
from netcalc.openapi import shapes
from netcalc.openapi.shapes import STRING, Schema, obj
from netcalc.responses import oauth_status

Error = type[NetcalcError]
Answers = dict[int | str, Any]

_HEADERS: dict[Error, tuple[str, Schema, str]] = {
    MethodNotAllowed: ("Allow", STRING, "The methods this path answers."),
    TooManyRequests: (
        "Retry-After",
        {"type": "string", "pattern": "^[0-9]+$"},
        "Seconds to wait before trying again.",
    ),
    BearerError: ("WWW-Authenticate", STRING, "The bearer challenge (RFC 6750 §3)."),
}
"""The header each kind of error is answered with (see its `headers()`)."""

_BASIC_CHALLENGE = ("WWW-Authenticate", STRING, "The Basic challenge.")


def _headers(errors: list[Error], oauth: bool) -> dict[str, Any]:
    """The headers of one status's answers; required when all carry them."""
    found: dict[str, list[tuple[str, Schema, str]]] = {}
    for error in errors:
        for kind, header in _HEADERS.items():
            if issubclass(error, kind):
                found.setdefault(header[0], []).append(header)
        if oauth and error.oauth_error == "invalid_client":
            found.setdefault("WWW-Authenticate", []).append(_BASIC_CHALLENGE)
    return {
        name: {
            "description": given[0][2],
            "required": len(given) == len(errors),
            "schema": given[0][1],
        }
        for name, given in found.items()
    }


def _answers(
    errors: Iterable[Error],
    http_status: Callable[[Error], int],
    code: Callable[[Error], str],
    body: Callable[[list[str]], Schema],
    oauth: bool = False,
) -> Answers:
    grouped: dict[int, list[Error]] = {}
    for error in (*errors, UnexpectedError):
        grouped.setdefault(http_status(error), []).append(error)
    answers: Answers = {}
    for status, group in sorted(grouped.items()):
        codes = list(dict.fromkeys(code(error) for error in group))
        lines = [f"- `{code(error)}`: {_summary(error)}" for error in group]
        answer = {
            "description": f"{HTTPStatus(status).phrase}.\n\n" + "\n".join(lines),
            "content": {"application/json": {"schema": body(codes)}},
        }
        if headers := _headers(group, oauth):
            answer["headers"] = headers
        answers[status] = answer
    return answers


def _summary(error: Error) -> str:
    return (error.__doc__ or "").strip().splitlines()[0]


def _status_body(codes: list[str]) -> Schema:
    status = {"type": "string", "enum": codes}
    return obj({"status": status}, {"message": STRING})


def _oauth_body(codes: list[str]) -> Schema:
    error = {"type": "string", "enum": codes}
    return obj({"error": error}, {"error_description": STRING})


def _success(description: str, schema: Schema | None) -> Any:
    if schema is None:
        return {"description": description}
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


def status_answers(success: Schema | None, *errors: Error) -> Answers:
    """A NetworkCalc-style route's answers: `success` at 200, and each error's
    `status` under its HTTP status, 500 SYSTEM_ERROR included."""
    found = _answers(errors, lambda e: e.http_status, lambda e: e.status, _status_body)
    if success is None:
        return found
    return {200: _success("The request succeeded.", success)} | found


def oauth_answers(success: Schema | None, *errors: Error) -> Answers:
    """A standard endpoint's answers: `success` at 200, and each error as RFC
    6749 §5.2 answers it (`netcalc.responses.oauth_error_body`)."""
    found = _answers(
        errors, oauth_status, lambda e: e.oauth_error, _oauth_body, oauth=True
    )
    return {200: _success("The request succeeded.", success)} | found


_BODY = (RequestTooLarge, MissingHeader, InvalidRequest)
_CLIENT = (
    MissingCredentials,
    TooManyRequests,
    CredentialsNotFound,
    InvalidCredentials,
    RevokedCredentials,
    InvalidGrant,
)
_GRANT = (*_BODY, *_CLIENT, InvalidGrantType, MissingGrantType, InvalidScope)
_BEARER = (BearerMissing, InvalidToken, InsufficientScope)

TOKEN = status_answers(shapes.TOKEN, *_GRANT, MethodNotAllowed)
"""`POST /api/auth/token` (CONTRACT §1)."""

OAUTH_TOKEN = oauth_answers(shapes.OAUTH_TOKEN, *_GRANT)
"""`POST /oauth2/token` (RFC 6749 §5.1, §5.2)."""

INTROSPECTION = oauth_answers(shapes.INTROSPECTION, *_BODY, *_CLIENT)
"""`POST /oauth2/introspect` (RFC 7662 §2.2)."""

REVOCATION = oauth_answers(None, *_BODY, *_CLIENT)
"""`POST /oauth2/revoke`: an empty 200 (RFC 7009 §2.2)."""

SUBNETS = status_answers(shapes.SUBNETS, *_BEARER)
ONE_SUBNET = status_answers(shapes.ONE_SUBNET, *_BEARER, NotFound)
SAVED_SUBNET = status_answers(
    shapes.SAVED_SUBNET,
    *_BEARER,
    *_BODY,
    MissingValues,
    NetworkAddressInvalid,
    SubnetLimitReached,
)
DELETED_SUBNET = status_answers(shapes.DONE, *_BEARER, NotFound)

CALCULATION = status_answers(
    shapes.CALCULATION, NoAddressSpecified, InvalidAddress, InvalidRequest
)
"""`GET /api/ip/{subnet}`; INVALID_REQUEST is a `?fields=` naming no field."""

NO_SUBNET = status_answers(None, NoAddressSpecified)
"""`GET /api/ip` with no subnet: never a success."""

KEY_SET = status_answers(shapes.KEY_SET)
METADATA = status_answers(shapes.METADATA)
