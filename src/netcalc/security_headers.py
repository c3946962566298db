"""Security headers on every response, as a pure ASGI wrapper.

`netcalc.direct.DirectApp` adds them to its own answers and wraps the rest
of the app, outside Starlette's error middleware, in `SecurityHeaders`.

The console's pages load only the stylesheet and the one script served
from `/static`, so the Content-Security-Policy allows exactly that: no
inline script, no other origin, no framing. The headers are built once and
appended to each response start, which keeps the token endpoint's hot path
cheap.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
]
"""What every response gets, as raw ASGI header pairs."""


class SecurityHeaders:
    """Adds the security headers to every HTTP response of `app`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)
