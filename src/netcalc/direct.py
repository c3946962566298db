"""The busiest endpoints, called before the framework's routing.

A profile of a token request showed FastAPI's routing, dependency solving
and middleware layers costing more than reading the credentials and signing
the token together. The routes registered here are the same route functions
FastAPI serves and documents; `DirectApp` calls them straight away when the
method and path match exactly, or the method matches and the path extends a
registered prefix, running their guards and reading their parameters itself;
a prefix route also takes the line breaks Starlette's patterns refuse, so
they reach its parameter checks. The busiest, the subnet list, is answered
by a handler that reads the ASGI scope and shares its route function's work
(`ScopeRoute`): building a Request and calling its guard as a dependency
cost it a tenth of its time. Every other request, a wrong method or a
near-miss path included, goes through FastAPI, except a path ending in a
line break, which no route serves and which Starlette's routing would
mistake for the path without it.
Both ways answer errors through `netcalc.responses` and add the security
headers, so a caller cannot tell them apart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from netcalc.errors import NoSuchEndpoint
from netcalc.responses import JSONBody, answer_to, error_body
from netcalc.security_headers import HEADERS, SecurityHeaders

if TYPE_CHECKING:
    from netcalc.runtime import Runtime

Endpoint = Callable[..., Awaitable[JSONBody]]
Guard = Callable[[Request], Awaitable[Any]]
ScopeHandler = Callable[["Runtime", Scope], Awaitable[JSONBody]]


@dataclass(frozen=True)
class DirectRoute:
    """A route function and the guards (or parameter readers) whose results
    it takes by keyword."""

    endpoint: Endpoint
    guards: dict[str, Guard] = field(default_factory=dict)

    async def answer(
        self, runtime: Runtime, scope: Scope, receive: Receive
    ) -> JSONBody:
        """The route's response, or the contract's answer to what it raised."""
        request = Request(scope, receive)
        try:
            arguments = {}
            for name, check in self.guards.items():
                arguments[name] = await check(request)
            return await self.endpoint(request, **arguments)
        except Exception as exc:
            return answer_to(exc, request.method, scope["path"])


@dataclass(frozen=True)
class ScopeRoute:
    """A route answered by `handler` from the ASGI scope alone, with no
    Request built and no guard called through FastAPI's dependency shape;
    `endpoint` is the route function FastAPI routes and documents for it,
    which shares the handler's work."""

    endpoint: Endpoint
    handler: ScopeHandler

    async def answer(
        self, runtime: Runtime, scope: Scope, receive: Receive
    ) -> JSONBody:
        """The handler's response, or the contract's answer to what it raised."""
        try:
            return await self.handler(runtime, scope)
        except Exception as exc:
            return answer_to(exc, scope["method"], scope["path"])


def _path_rest(prefix: str) -> Guard:
    """Reads what follows `prefix` in the path, like FastAPI's `{name:path}`."""

    async def read(request: Request) -> str:
        path: str = request.scope["path"]
        return path[len(prefix) :]

    return read


def query_value(name: str) -> Guard:
    """Reads one query parameter as FastAPI reads a `str | None` one: the
    last value given, or None."""

    async def read(request: Request) -> str | None:
        return request.query_params.get(name)

    return read


class DirectApp(FastAPI):
    """FastAPI, with a few hot routes answered before its own routing."""

    runtime: Runtime
    """What every request shares; set by the app factory before serving."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.direct_routes: dict[tuple[str, str], DirectRoute | ScopeRoute] = {}
        self.direct_prefixes: dict[tuple[str, str], DirectRoute] = {}
        # Outside Starlette's outermost error middleware, so that its 500
        # answers get the security headers too.
        self._framework = SecurityHeaders(partial(FastAPI.__call__, self))

    def add_direct_route(
        self, method: str, path: str, endpoint: Endpoint, **guards: Guard
    ) -> None:
        """Answer `method path` with `endpoint`, which FastAPI also routes."""
        self.direct_routes[(method, path)] = DirectRoute(endpoint, guards)

    def add_scope_route(
        self, method: str, path: str, endpoint: Endpoint, handler: ScopeHandler
    ) -> None:
        """Answer `method path` with `handler`, which does what `endpoint`,
        FastAPI's route for it, does."""
        self.direct_routes[(method, path)] = ScopeRoute(endpoint, handler)

    def add_direct_prefix(
        self, method: str, prefix: str, endpoint: Endpoint, rest: str, **guards: Guard
    ) -> None:
        """Answer `method` on each path that extends `prefix`, as FastAPI
        answers its route `prefix{rest:path}`; the endpoint takes the rest of
        the path by that name."""
        guards = {rest: _path_rest(prefix), **guards}
        self.direct_prefixes[(method, prefix)] = DirectRoute(endpoint, guards)

    def _direct_route(self, scope: Scope) -> DirectRoute | ScopeRoute | None:
        if scope["type"] != "http":
            return None
        method, path = scope["method"], scope["path"]
        route = self.direct_routes.get((method, path))
        if route is not None or not self.direct_prefixes:
            return route
        for (prefix_method, prefix), candidate in self.direct_prefixes.items():
            # An empty rest is another route's, left to FastAPI. A rest with
            # a line break is taken here, though Starlette's pattern would not
            # match it, so that it is refused as the value it is.
            if (
                method == prefix_method
                and path.startswith(prefix)
                and len(path) > len(prefix)
            ):
                return candidate
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "HEAD":
            # HEAD is GET without the body (RFC 9110 §9.3.2). The server,
            # whose own scope still says HEAD, leaves the body unsent.
            scope = {**scope, "method": "GET"}
        route = self._direct_route(scope)
        if route is not None:
            scope["app"] = self
            response = await route.answer(self.runtime, scope, receive)
        elif scope["type"] == "http" and scope["path"].endswith("\n"):
            # Starlette's path patterns end in `$`, which also matches before
            # a final line break: `/healthz%0A` would be served as `/healthz`.
            response = error_body(NoSuchEndpoint())
        else:
            await self._framework(scope, receive, send)
            return
        headers = [*response.raw_headers, *HEADERS]
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": headers,
            }
        )
        await send({"type": "http.response.body", "body": response.body})
