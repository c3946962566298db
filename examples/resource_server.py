"""A small service whose routes only netcalc access tokens open.

Run it beside a netcalc server:

    NETCALC_ISSUER=http://127.0.0.1:8000 \\
        .venv/bin/uvicorn resource_server:app --app-dir examples --port 9000

Set NETCALC_INTROSPECT_CLIENT_ID and NETCALC_INTROSPECT_CLIENT_SECRET to
credentials of the same account as the callers' tokens, and every call is
also checked with the issuer, so revoked tokens are refused at once.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI

from netcalc.resource_server import Introspection, TokenGuard


def _introspection() -> Introspection | None:
    client_id = os.environ.get("NETCALC_INTROSPECT_CLIENT_ID")
    client_secret = os.environ.get("NETCALC_INTROSPECT_CLIENT_SECRET")
    if client_id and client_secret:
        return Introspection(client_id, client_secret)
    return None


guard = TokenGuard(
    os.environ.get("NETCALC_ISSUER", "http://127.0.0.1:8000"),
    audience=os.environ.get("NETCALC_AUDIENCE", "netcalc"),
    introspection=_introspection(),
)


@contextlib.asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield
    await guard.aclose()


app = FastAPI(title="netcalc example resource server", lifespan=lifespan)

Claims = Annotated[dict[str, Any], Depends(guard.require("subnets:read"))]


@app.get("/reports")
async def reports(claims: Claims) -> dict[str, Any]:
    """A guarded route: answers only callers with a live subnets:read token."""
    return {"client_id": claims["client_id"], "reports": ["weekly", "monthly"]}


@app.get("/health")
async def health() -> dict[str, str]:
    """An open route, for readiness checks."""
    return {"status": "OK"}
