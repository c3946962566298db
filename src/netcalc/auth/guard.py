"""The bearer guard of the account APIs (RFC 6750, CONTRACT §3).

A route declares the scope it needs with `Depends(require_scope(...))` and
receives the verified AccessToken; `admitted` is the same check for a route
that `netcalc.direct` answers from the ASGI scope.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import Request

from netcalc.auth.tokens import AccessToken, verify_token
from netcalc.errors import BearerMissing, InsufficientScope, InvalidToken
from netcalc.http_body import header
from netcalc.runtime import Runtime, runtime_of


def bearer_value(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer` header (scheme in any case).

    Spaces and tabs part the scheme from the token (RFC 9110 §11.4 and
    §5.6.3), and nothing else does: a no-break space is part of the token.
    A token with anything but base64url in it is malformed, which the
    token's own check refuses; so only the scheme and the ends are looked
    at here, not every character of every request's token.
    """
    if authorization is None:
        raise BearerMissing()
    parts = authorization.replace("\t", " ").strip(" ").split(" ", 1)
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise BearerMissing()
    return parts[1].lstrip(" ")


async def admitted(
    runtime: Runtime, authorization: str | None, scope: str
) -> AccessToken:
    """The live token of an `Authorization` header, if it carries `scope`."""
    token = bearer_value(authorization)
    access = await verify_token(token, runtime.keys, runtime.policy, time.time)
    await check_live(runtime, access)
    if scope not in access.scopes:
        raise InsufficientScope(scope)
    return access


async def check_live(runtime: Runtime, access: AccessToken) -> None:
    """Raise InvalidToken if the token, its credentials or its account has
    been switched off; a route that reads a body asks again after it, since
    a revocation may come while the body arrives."""
    live = await runtime.revocations.is_live(
        access.client_id, access.account_id, access.jti
    )
    if not live:
        raise InvalidToken("The access token is no longer valid.")


def require_scope(scope: str) -> Callable[[Request], Awaitable[AccessToken]]:
    """A dependency that admits only live tokens carrying `scope`."""

    async def guard(request: Request) -> AccessToken:
        authorization = header(request, b"authorization")
        return await admitted(runtime_of(request), authorization, scope)

    return guard
