"""Reading single headers and bounded bodies straight from the ASGI request."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import Request

from netcalc.errors import ClientGone, RequestTooLarge
from netcalc.http_body import header, read_body

Message = dict[str, Any]


def _request(
    headers: list[tuple[bytes, bytes]],
    messages: list[Message] = (),  # type: ignore[assignment]
) -> Request:
    queue = list(messages)

    async def receive() -> Message:
        return queue.pop(0)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    return Request(scope, receive)


def test_header_is_the_first_value_of_that_name() -> None:
    """Names are matched as servers give them, in lower case; absent is None."""
    request = _request(
        [(b"content-type", b"application/json"), (b"content-type", b"text/plain")]
    )
    assert header(request, b"content-type") == "application/json"
    assert header(request, b"authorization") is None


def test_body_arriving_in_parts_is_joined() -> None:
    """A body sent in several messages reads back whole."""
    request = _request(
        [],
        [
            {"type": "http.request", "body": b'{"a":', "more_body": True},
            {"type": "http.request", "body": b'"b"}', "more_body": False},
        ],
    )
    assert asyncio.run(read_body(request, 100)) == b'{"a":"b"}'


@pytest.mark.parametrize(
    ("headers", "parts"),
    [
        ([(b"content-length", b"101")], [b"x"]),
        ([], [b"x" * 60, b"x" * 60]),
    ],
    ids=["declared", "counted"],
)
def test_body_over_the_limit_is_refused(
    headers: list[tuple[bytes, bytes]], parts: list[bytes]
) -> None:
    """A declared length over the limit, or more bytes than it, is refused."""
    messages = [
        {"type": "http.request", "body": part, "more_body": True} for part in parts
    ]
    request = _request(headers, messages)
    with pytest.raises(RequestTooLarge):
        asyncio.run(read_body(request, 100))


def test_a_client_gone_mid_body_is_told_apart() -> None:
    """A disconnect before the body ends raises ClientGone, not a parse error."""
    request = _request(
        [],
        [
            {"type": "http.request", "body": b"{", "more_body": True},
            {"type": "http.disconnect"},
        ],
    )
    with pytest.raises(ClientGone):
        asyncio.run(read_body(request, 100))
