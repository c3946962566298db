"""Reading requests: single headers, and bodies with a hard size limit."""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import Scope

from netcalc.errors import ClientGone, RequestTooLarge


def header(request: Request, name: bytes) -> str | None:
    """The first value of the header `name`, given in lower case, if sent."""
    return scope_header(request.scope, name)


def scope_header(scope: Scope, name: bytes) -> str | None:
    """The first value of the header `name` of an ASGI request scope.

    ASGI servers hand header names over in lower case. Scanning them is a
    third of the cost of Starlette's case-folding Headers mapping, which
    the token endpoint consulted three times per request.
    """
    key: bytes
    value: bytes
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing it once it passes `limit` bytes.

    The declared Content-Length is checked first, and the stream is counted
    as it arrives, so a lying or absent length cannot exhaust memory. The
    ASGI messages are read directly: Starlette's body stream, an async
    generator, cost more than the token request's JSON parsing.
    """
    declared = header(request, b"content-length") or ""
    if declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge()
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
