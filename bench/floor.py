"""The floor: a bare ASGI app, no framework, answering `{"status":"OK"}`.

`bench/run.py` serves it with the server stack netcalc uses and measures it
like the real endpoints. Its requests per second are the most this machine,
this server and this load generator can do together, so each netcalc figure
reads as a fraction of it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

BODY = b'{"status":"OK"}'
"""The whole response body, the shape of netcalc's smallest success."""

HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(BODY)).encode()),
]
"""The response headers: what a JSON answer needs and nothing more."""


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer every HTTP request with `BODY`; take part in the lifespan."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


async def lifespan(receive: Receive, send: Send) -> None:
    """Answer the lifespan protocol's two messages, startup then shutdown.

    Answering them keeps uvicorn from logging that the app lacks lifespan
    support, so a floor's log stays as quiet as netcalc's.
    """
    await receive()
    await send({"type": "lifespan.startup.complete"})
    await receive()
    await send({"type": "lifespan.shutdown.complete"})
