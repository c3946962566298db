"""The standard OAuth 2.0 endpoints, for clients that speak the RFCs.

Token (RFC 6749 §4.4), introspection (RFC 7662), revocation (RFC 7009) and
server metadata (RFC 8414). They share the grant, the throttle and the log
line with the seed endpoint; only the shape of their answers differs.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from starlette.responses import Response

from netcalc.audit import record
from netcalc.auth.announcements import token_revoked
from netcalc.auth.exchange import client_address, exchange
from netcalc.auth.scopes import ACCOUNT_SCOPES
from netcalc.auth.store import ClientRecord, revoke_token
from netcalc.auth.token_request import authenticate_client, oauth_form_fields
from netcalc.auth.tokens import AccessToken, verify_token
from netcalc.errors import (
    InvalidGrant,
    InvalidRequest,
    InvalidToken,
    NetcalcError,
    UnexpectedError,
)
from netcalc.http_body import header, read_body
from netcalc.openapi import OAUTH_TOKEN_REQUEST, TOKEN_PARAMETER, answers
from netcalc.outages import log_unhandled
from netcalc.responses import NO_STORE, NO_STORE_FIELDS, JSONBody, OAuthProblem
from netcalc.runtime import Runtime, runtime_of

router = APIRouter()

Answer = TypeVar("Answer", bound=Response)

AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
"""Client authentication methods every endpoint accepts (RFC 6749 §2.3.1)."""


def _rfc6749_answers(
    route: Callable[[Request], Awaitable[Answer]],
) -> Callable[[Request], Awaitable[Answer]]:
    """Raise every failure of `route` as an OAuthProblem, unexpected ones
    too, so that it is answered in the shape of RFC 6749 §5.2."""

    @functools.wraps(route)
    async def answering(request: Request) -> Answer:
        try:
            return await route(request)
        except NetcalcError as error:
            raise OAuthProblem(error) from error
        except OAuthProblem:
            raise
        except Exception as error:
            log_unhandled(request.method, request.scope["path"], error)
            raise OAuthProblem(UnexpectedError()) from error

    return answering


@router.post(
    "/oauth2/token",
    openapi_extra=OAUTH_TOKEN_REQUEST,
    responses=answers.OAUTH_TOKEN,
)
@_rfc6749_answers
async def token(request: Request) -> JSONBody:
    """The client credentials grant with RFC 6749 §5.1 and §5.2 answers."""
    _, granted = await exchange(request, "/oauth2/token", oauth_form_fields)
    body = {
        "access_token": granted.access_token,
        "token_type": "Bearer",
        "expires_in": granted.expires_in,
        "scope": " ".join(granted.scopes),
    }
    return JSONBody(body, fields=NO_STORE_FIELDS)


async def _caller_and_token(request: Request) -> tuple[ClientRecord, str]:
    """Authenticate the calling client and read the `token` parameter."""
    runtime = runtime_of(request)
    body = await read_body(request, runtime.settings.body_limit)
    fields = oauth_form_fields(
        header(request, b"content-type"),
        body,
        ("client_id", "client_secret", "token", "token_type_hint"),
    )
    presented = authenticate_client(fields, header(request, b"authorization"))
    caller = await runtime.grant.authenticate(presented, client_address(request))
    if caller.account_disabled:
        # Refused as at the token endpoint: a disabled account's clients may
        # neither learn about its tokens nor revoke them.
        raise InvalidGrant("The account of these credentials is disabled.")
    if not fields.get("token"):
        raise InvalidRequest("The token parameter is missing.")
    return caller, fields["token"]


async def _verified(runtime: Runtime, token: str) -> AccessToken | None:
    try:
        return await verify_token(token, runtime.keys, runtime.policy, time.time)
    except InvalidToken:
        return None


@router.post(
    "/oauth2/introspect",
    openapi_extra=TOKEN_PARAMETER,
    responses=answers.INTROSPECTION,
)
@_rfc6749_answers
async def introspect(request: Request) -> JSONBody:
    """RFC 7662: whether a token is active, for its own account's clients only."""
    runtime = runtime_of(request)
    caller, token_value = await _caller_and_token(request)
    access = await _verified(runtime, token_value)
    if access is None or access.account_id != caller.account_id:
        return _inactive()
    live = await runtime.revocations.is_live(
        access.client_id, access.account_id, access.jti
    )
    if not live:
        return _inactive()
    return JSONBody(_introspection(access), fields=NO_STORE_FIELDS)


def _inactive() -> JSONBody:
    """The answer for every token that is not active (RFC 7662 §2.2)."""
    return JSONBody({"active": False}, fields=NO_STORE_FIELDS)


def _introspection(access: AccessToken) -> dict[str, Any]:
    claims = access.claims
    return {
        "active": True,
        "scope": claims["scope"],
        "client_id": access.client_id,
        "token_type": "Bearer",
        "exp": access.expires_at,
        "iat": access.issued_at,
        "sub": claims.get("sub", access.client_id),
        "aud": claims["aud"],
        "iss": claims["iss"],
        "jti": access.jti,
        "account_id": access.account_id,
    }


# Documented without a body: RFC 7009 §2.2 answers an empty 200.
@router.post(
    "/oauth2/revoke",
    openapi_extra=TOKEN_PARAMETER,
    response_class=Response,
    responses=answers.REVOCATION,
)
@_rfc6749_answers
async def revoke(request: Request) -> Response:
    """RFC 7009: revoke one access token issued to the calling client.

    Unknown, expired and other accounts' tokens get the same empty 200
    (§2.2), so the answer tells nothing about tokens of other accounts. A
    token of the caller's own account issued to other credentials is
    refused (§2.1): a client revokes only its own tokens.
    """
    runtime = runtime_of(request)
    caller, token_value = await _caller_and_token(request)
    access = await _verified(runtime, token_value)
    if access is None or access.account_id != caller.account_id:
        return Response(status_code=200, headers=NO_STORE)
    if access.client_id != caller.client_id:
        raise InvalidGrant(
            "This token was issued to other credentials; only they may revoke it."
        )
    expires = datetime.fromtimestamp(access.expires_at, UTC)
    revoked = await revoke_token(runtime.engine, access.jti, access.client_id, expires)
    # Told here even when a request at once recorded it first: this
    # answer must not come before the revocation holds on this instance.
    runtime.revocations.announce(token_revoked(access.jti))
    # Recorded by the request that revoked it, and last, so that a
    # failure to record does not hold the revocation back.
    if revoked:
        await record(
            runtime.engine,
            "token.revoked",
            actor=f"oauth:{caller.client_id}",
            account_id=caller.account_id,
            subject=access.jti,
            address=client_address(request),
            details={"client_id": access.client_id},
        )
    return Response(status_code=200, headers=NO_STORE)


@router.get("/.well-known/oauth-authorization-server", responses=answers.METADATA)
async def metadata(request: Request) -> Response:
    """Authorization server metadata (RFC 8414 §2)."""
    runtime = runtime_of(request)
    settings = runtime.settings
    base = settings.issuer.rstrip("/")
    document = {
        "issuer": settings.issuer,
        "token_endpoint": f"{base}/oauth2/token",
        "introspection_endpoint": f"{base}/oauth2/introspect",
        "revocation_endpoint": f"{base}/oauth2/revoke",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "scopes_supported": list(ACCOUNT_SCOPES),
        "access_token_signing_alg_values_supported": runtime.keys.published_algs(),
    }
    return JSONBody(document, headers={"Cache-Control": "public, max-age=300"})
