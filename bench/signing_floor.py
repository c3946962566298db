"""The signing floor: the floor app, plus one ES256 access token per request.

Each request's body is read, and the answer carries a new token made by
netcalc's own issuing code (`netcalc.auth.tokens.issue_token`, with the
same claims, the same batched signer and an ES256 key like netcalc's
default), in the shape of netcalc's token answer. Nothing else runs: no
client authentication, no database, no log line, no metrics. Its requests
per second are the most any token endpoint on this stack can answer while
signing such tokens, so netcalc's token rows read as a fraction of it too.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import orjson
from cryptography.hazmat.primitives.asymmetric import ec
from floor import Receive, Scope, Send, lifespan

from netcalc.auth.keys import SigningKey
from netcalc.auth.signatures import TurnSigner
from netcalc.auth.tokens import TokenPolicy, issue_token

TTL = 3600
"""The tokens' lifetime in seconds, netcalc's default."""

KEY = SigningKey(
    kid="signing-floor",
    alg="ES256",
    private_key=ec.generate_private_key(ec.SECP256R1()),
    public_jwk={},
    created_at=datetime.now(UTC),
    retired_at=None,
    published_until=None,
)
"""A new key in each process: nobody verifies what the signing floor signs."""

POLICY = TokenPolicy(issuer="http://127.0.0.1:8000", audience="netcalc", leeway=30)

SIGNER = TurnSigner()


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer every HTTP request with a newly signed access token."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    await _read_body(receive)
    token, _ = await issue_token(
        KEY,
        POLICY,
        SIGNER,
        client_id="nci_" + "0" * 32,
        account_id="0" * 24,
        scopes=("subnets:read", "subnets:write"),
        ttl=TTL,
        now=int(time.time()),
    )
    answer = {"access_token": token, "token_type": "bearer", "expires_in": TTL}
    body = orjson.dumps({"status": "OK", "token": answer})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return
