"""One token request from HTTP to grant, shared by both token endpoints.

The seed endpoint and the RFC 6749 endpoint differ only in the shape of
their answers; reading, throttling, logging and counting are the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.requests import Request

from netcalc.auth.grant import GrantedToken
from netcalc.auth.token_request import (
    ClientAuthentication,
    TokenRequest,
    authenticate_client,
    token_request_of,
)
from netcalc.errors import NetcalcError
from netcalc.http_body import header, read_body
from netcalc.observe import observe_token_request
from netcalc.runtime import runtime_of


def client_address(request: Request) -> str:
    """The caller's address, as the server (or a trusted proxy) reports it."""
    # Read from the scope: Starlette's `request.client` builds a tuple each time.
    client = request.scope.get("client")
    return str(client[0]) if client else "unknown"


FieldReader = Callable[[str | None, bytes], dict[str, str]]
"""Reads the token request's fields from its media type and body."""


async def exchange(
    request: Request, endpoint: str, read_fields: FieldReader
) -> tuple[TokenRequest, GrantedToken]:
    """Read a token request and run the grant, logging one line either way."""
    runtime = runtime_of(request)
    started = time.perf_counter()
    address = client_address(request)
    client: ClientAuthentication | None = None
    status = "OK"
    try:
        body = await read_body(request, runtime.settings.body_limit)
        content_type = header(request, b"content-type")
        fields = read_fields(content_type, body)
        client = authenticate_client(fields, header(request, b"authorization"))
        # Known before the grant_type check, so that its refusal is logged
        # with the client that sent it.
        token_request = token_request_of(fields, client)
        granted = await runtime.grant.grant(token_request, address)
    except NetcalcError as error:
        status = error.status
        raise
    except Exception:
        status = "SYSTEM_ERROR"
        raise
    finally:
        observe_token_request(
            endpoint=endpoint,
            client=client,
            status=status,
            seconds=time.perf_counter() - started,
            address=address,
        )
    return token_request, granted
