"""The one place where errors become HTTP responses.

Routes raise the errors of `netcalc.errors`; the handlers installed here turn
them, and the framework's own routing errors, into the contract's JSON.
Any other error is answered 500 SYSTEM_ERROR and logged (`netcalc.outages`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from netcalc.errors import (
    InvalidRequest,
    MethodNotAllowed,
    NetcalcError,
    NoSuchEndpoint,
    UnexpectedError,
)
from netcalc.outages import log_unhandled

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
"""Headers that keep tokens and secrets out of every cache (RFC 6749 §5.1)."""

NO_STORE_FIELDS = [
    (name.lower().encode("latin-1"), value.encode("latin-1"))
    for name, value in NO_STORE.items()
]
"""NO_STORE as a JSONBody sends it, encoded once for every token answer."""


class JSONBody(Response):
    """A compact UTF-8 JSON response; cheaper than re-validating through
    pydantic. orjson writes it in a tenth of the time the json module takes."""

    media_type = "application/json"

    def __init__(
        self,
        content: Any,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        *,
        fields: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """`fields` are headers already encoded, such as NO_STORE_FIELDS."""
        # Starlette's constructor serves every kind of body and media type;
        # this one always has a JSON body, whose length is always sent.
        self.status_code = status_code
        self.background = None
        self.body = self.render(content)
        self.raw_headers = [
            (b"content-length", b"%d" % len(self.body)),
            (b"content-type", b"application/json"),
        ]
        if fields:
            self.raw_headers += fields
        if headers:
            self.raw_headers += [
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in headers.items()
            ]

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def ok(
    payload: dict[str, Any] | None = None,
    *,
    fields: list[tuple[bytes, bytes]] | None = None,
    **headers: str,
) -> JSONBody:
    """The contract's success body: `status` OK plus the payload; `fields`
    are headers already encoded, as JSONBody takes them."""
    return JSONBody(
        {"status": "OK", **(payload or {})}, headers=headers or None, fields=fields
    )


def error_body(error: NetcalcError) -> JSONBody:
    """The contract's error body for one netcalc error; never cached."""
    return JSONBody(
        {"status": error.status, "message": error.message},
        status_code=error.http_status,
        headers=NO_STORE | error.headers(),
    )


class OAuthProblem(Exception):
    """A netcalc error to be answered in the shape of RFC 6749 §5.2."""

    def __init__(self, error: NetcalcError) -> None:
        super().__init__(error.message)
        self.error = error


def oauth_status(error: type[NetcalcError]) -> int:
    """The HTTP status of the RFC 6749 §5.2 answer to a kind of error.

    invalid_client is 401; size, throttling and server failures keep their
    own status; every other error is 400.
    """
    if error.oauth_error == "invalid_client":
        return 401
    if error.http_status in (413, 429, 500):
        return error.http_status
    return 400


OAUTH_PATHS = frozenset({"/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"})
"""The endpoints whose errors are answered as RFC 6749 §5.2 says, even the
ones the server refuses before the request reaches them (`http_limits`)."""


OAUTH_CHALLENGE = 'Basic realm="netcalc"'
"""The challenge of an invalid_client answer (RFC 6749 §5.2)."""


def oauth_error_body(error: NetcalcError) -> JSONBody:
    """The RFC 6749 §5.2 error response for a netcalc error; invalid_client
    comes with a Basic challenge."""
    headers = NO_STORE | error.headers()
    status = oauth_status(type(error))
    description = error.message
    if error.oauth_error == "invalid_client":
        # RFC 6749 tells these failures apart for no one: unknown, wrong and
        # revoked credentials read the same.
        headers["WWW-Authenticate"] = OAUTH_CHALLENGE
        description = "Client authentication failed."
    return JSONBody(
        {"error": error.oauth_error, "error_description": description},
        status_code=status,
        headers=headers,
    )


def raised_error_body(exc: Exception) -> JSONBody:
    """The answer to an error a route raised; unexpected ones are 500."""
    if isinstance(exc, OAuthProblem):
        return oauth_error_body(exc.error)
    if isinstance(exc, NetcalcError):
        return error_body(exc)
    return error_body(UnexpectedError())


def answer_to(exc: Exception, method: str, path: str) -> JSONBody:
    """The answer to an error raised answering `method path`; an unexpected
    one is logged too."""
    if not isinstance(exc, (NetcalcError, OAuthProblem)):
        log_unhandled(method, path, exc)
    return raised_error_body(exc)


async def _raised_error(_: Request, exc: Exception) -> Response:
    return raised_error_body(exc)


class UnexpectedErrors:
    """Answers the errors no handler took, as 500 SYSTEM_ERROR, and logs them.

    Starlette's outermost middleware answers them too, but then raises them
    again to the server, which logs a traceback and closes the keep-alive
    connection without a `Connection: close`. This one sits inside it and
    raises nothing, so the connection serves the client's next request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            answer = answer_to(exc, scope["method"], scope["path"])
            # A response begun cannot be taken back; the server closes the
            # connection of one the app left unfinished.
            if not started:
                await answer(scope, receive, send)


async def _routing_error(request: Request, error: Exception) -> Response:
    exc = cast(HTTPException, error)
    if exc.status_code == 405:
        allow = _allowed_methods(request) or (exc.headers or {}).get("Allow", "")
        return error_body(MethodNotAllowed(allow))
    if exc.status_code == 404:
        return error_body(NoSuchEndpoint())
    return error_body(InvalidRequest(str(exc.detail)))


def _allowed_methods(request: Request) -> str:
    """Every method the app's routes answer at this path (RFC 9110 §10.2.1).

    Starlette's own `Allow` names only the methods of the first route whose
    path matched, so a path served by a GET route and a POST route would
    claim to take GET alone. Mounts match a path whatever the method, so
    they cannot say which methods they take.
    """
    routes = [r for r in request.app.router.routes if not isinstance(r, Mount)]
    # Inside a mount the scope's root_path has grown by the mount's prefix;
    # the app's own routes match against the app's root path.
    scope = request.scope
    root_path = scope.get("app_root_path", scope.get("root_path", ""))
    app_scope = {**scope, "root_path": root_path}
    answered = {
        method
        for method in _METHODS
        if any(
            route.matches({**app_scope, "method": method})[0] == Match.FULL
            for route in routes
        )
    }
    # Every GET is answered to HEAD too (netcalc.direct).
    if "GET" in answered:
        answered.add("HEAD")
    return ", ".join(method for method in _METHODS if method in answered)


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
"""The methods a route may answer, in the order `Allow` lists them."""


async def _validation_error(_: Request, exc: Exception) -> Response:
    return error_body(InvalidRequest("The request parameters are malformed."))


def install_error_handlers(app: FastAPI) -> None:
    """Route every error raised inside `app` through this module."""
    app.add_exception_handler(NetcalcError, _raised_error)
    app.add_exception_handler(OAuthProblem, _raised_error)
    app.add_exception_handler(HTTPException, _routing_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(UnexpectedErrors)
