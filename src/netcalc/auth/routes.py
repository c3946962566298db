"""HTTP edge of the auth package: the seed token endpoint and the JWKS."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from starlette.responses import Response

from netcalc.auth.token_request import read_token_request
from netcalc.errors import NetcalcError
from netcalc.http_body import read_body
from netcalc.observe import observe_token_request
from netcalc.responses import NO_STORE, JSONBody, ok
from netcalc.runtime import Runtime

router = APIRouter()


def runtime_of(request: Request) -> Runtime:
    """The Runtime of the app serving this request."""
    runtime: Runtime = request.app.state.runtime
    return runtime


def client_address(request: Request) -> str:
    """The caller's address, as the server (or a trusted proxy) reports it."""
    return request.client.host if request.client else "unknown"


@router.post("/api/auth/token")
async def token_endpoint(request: Request) -> Response:
    """Exchange client credentials for an access token (CONTRACT §1)."""
    runtime = runtime_of(request)
    started = time.perf_counter()
    address = client_address(request)
    client_id: str | None = None
    status = "OK"
    try:
        body = await read_body(request, runtime.settings.body_limit)
        token_request = read_token_request(
            request.headers.get("content-type"),
            body,
            request.headers.get("authorization"),
        )
        client_id = token_request.client_id
        granted = await runtime.grant.grant(token_request, address)
    except NetcalcError as error:
        status = error.status
        raise
    except Exception:
        status = "SYSTEM_ERROR"
        raise
    finally:
        observe_token_request(
            endpoint="/api/auth/token",
            client_id=client_id,
            status=status,
            seconds=time.perf_counter() - started,
            address=address,
        )
    token = {
        "access_token": granted.access_token,
        "token_type": "bearer",
        "expires_in": granted.expires_in,
    }
    if token_request.scope:
        token["scope"] = " ".join(granted.scopes)
    return ok({"token": token}, **NO_STORE)


@router.get("/.well-known/jwks.json")
async def jwks(request: Request) -> Response:
    """The public keys that verify netcalc's access tokens (RFC 7517)."""
    keys = runtime_of(request).keys.jwks()
    return JSONBody(keys, headers={"Cache-Control": "public, max-age=300"})
