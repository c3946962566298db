"""HTTP edge of the auth package: the seed token endpoint and the JWKS."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from netcalc.auth.exchange import exchange
from netcalc.auth.keys import KEY_SET_MAX_AGE
from netcalc.auth.token_request import parse_body
from netcalc.openapi import TOKEN_REQUEST, answers
from netcalc.responses import NO_STORE_FIELDS, JSONBody, ok
from netcalc.runtime import runtime_of

router = APIRouter()


@router.post("/api/auth/token", openapi_extra=TOKEN_REQUEST, responses=answers.TOKEN)
async def token_endpoint(request: Request) -> JSONBody:
    """Exchange client credentials for an access token (CONTRACT §1)."""
    token_request, granted = await exchange(request, "/api/auth/token", parse_body)
    token: dict[str, str | int] = {
        "access_token": granted.access_token,
        "token_type": "bearer",
        "expires_in": granted.expires_in,
    }
    if token_request.scope:
        token["scope"] = " ".join(granted.scopes)
    return ok({"token": token}, fields=NO_STORE_FIELDS)


@router.get("/.well-known/jwks.json", responses=answers.KEY_SET)
async def jwks(request: Request) -> Response:
    """The public keys that verify netcalc's access tokens (RFC 7517)."""
    keys = runtime_of(request).keys.jwks()
    cache = f"public, max-age={KEY_SET_MAX_AGE}"
    return JSONBody(keys, headers={"Cache-Control": cache})
