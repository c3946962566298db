"""Response heads written from checked fields (`netcalc.http_head`).

Each case serves one ASGI answer twice on loopback, under uvicorn's own
httptools protocol and under netcalc's, and compares the bytes on the wire:
the kept fields must change nothing a client can see.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from netcalc import http_head
from netcalc.http_head import KEPT_FIELDS, KEPT_HEADS, checked_field, checked_head
from netcalc.http_limits import LimitedHttpProtocol
from tests.support import ThreadedServer, free_port

JSON_BODY = b'{"status":"OK"}'

ANSWERS: dict[str, tuple[int, Any, bytes]] = {
    "/json": (
        200,
        [
            (b"Content-Length", str(len(JSON_BODY)).encode()),
            (b"Content-Type", b"application/json"),
            (b"X-Frame-Options", b"DENY"),
        ],
        JSON_BODY,
    ),
    "/chunked": (200, [(b"content-type", b"text/plain")], b"no length given"),
    "/close": (
        200,
        [(b"content-length", b"2"), (b"Connection", b"close")],
        b"ok",
    ),
    "/cookie": (
        303,
        [
            (b"content-length", b"0"),
            (b"location", b"/next"),
            (b"set-cookie", b"session=abc; HttpOnly"),
        ],
        b"",
    ),
    "/empty": (204, [], b""),
    "/not-modified": (304, [(b"etag", b'"1"')], b""),
    "/bad-value": (200, [(b"x-note", b"one\r\ntwo"), (b"content-length", b"0")], b""),
    "/bad-length": (200, [(b"content-length", b"+2")], b"ok"),
    "/iterated": (
        200,
        [(b"content-length", b"2"), (b"set-cookie", b"session=abc")],
        b"ok",
    ),
    "/status-600": (600, [(b"content-length", b"0")], b""),
    "/str-name": (200, [("content-length", b"2")], b"ok"),
    "/huge-length": (200, [(b"content-length", b"9" * 5000)], b"ok"),
    "/list-pairs": (200, [[b"content-length", b"2"], [b"X-A", bytearray(b"b")]], b"ok"),
    "/writable-view": (200, [(b"content-length", memoryview(bytearray(b"2")))], b"ok"),
}


async def answering_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    status, headers, body = ANSWERS[scope["path"]]
    if scope["path"] == "/iterated":
        headers = iter(headers)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Served(ThreadedServer):
    """`answering_app` under uvicorn with one protocol class, on a thread."""

    def __init__(self, protocol: type[HttpToolsProtocol]) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            answering_app,
            host="127.0.0.1",
            port=self.port,
            http=protocol,
            log_level="critical",
            access_log=False,
        )
        super().__init__(config)
        self.start()

    def exchange(self, request: bytes) -> tuple[bytes, bool]:
        """The raw answer to `request`, and whether the server then closed."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(request)
            answer = _read_answer(sock, head_only=request.startswith(b"HEAD"))
            sock.settimeout(0.2)
            try:
                closed = sock.recv(1) == b""
            except TimeoutError:
                closed = False
        return _without_date(answer), closed


def _read_answer(sock: socket.socket, *, head_only: bool) -> bytes:
    """One whole answer, framed as its head says; b"" if the server closed."""
    data = b""
    while not _complete(data, head_only):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _complete(data: bytes, head_only: bool) -> bool:
    head, found, body = data.partition(b"\r\n\r\n")
    if not found:
        return False
    head = head.lower()
    if head_only or head.startswith((b"http/1.1 204", b"http/1.1 304")):
        return True
    length = re.search(rb"content-length: \+?(\d+)", head)
    if length:
        return len(body) >= int(length.group(1))
    return body.endswith(b"0\r\n\r\n")


def _without_date(answer: bytes) -> bytes:
    return re.sub(rb"date: [^\r]*\r\n", b"", answer)


@pytest.fixture(scope="module")
def both() -> Iterator[tuple[Served, Served]]:
    plain, ours = Served(HttpToolsProtocol), Served(LimitedHttpProtocol)
    try:
        yield plain, ours
    finally:
        plain.stop()
        ours.stop()


@pytest.mark.parametrize("path", sorted(ANSWERS))
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("version", ["1.1", "1.0"])
def test_the_head_on_the_wire_is_uvicorns(
    both: tuple[Served, Served], path: str, method: str, version: str
) -> None:
    request = f"{method} {path} HTTP/{version}\r\nhost: x\r\n\r\n".encode()
    plain, ours = both
    assert ours.exchange(request) == plain.exchange(request)


def test_the_cases_cover_framing_closing_and_refusals(
    both: tuple[Served, Served],
) -> None:
    # The comparison above means something only if the answers differ in
    # the ways the cases were written for.
    _, ours = both
    chunked, _ = ours.exchange(b"GET /chunked HTTP/1.1\r\nhost: x\r\n\r\n")
    assert b"transfer-encoding: chunked\r\n" in chunked
    _, closed = ours.exchange(b"GET /close HTTP/1.1\r\nhost: x\r\n\r\n")
    assert closed
    json_answer, closed = ours.exchange(b"GET /json HTTP/1.1\r\nhost: x\r\n\r\n")
    assert json_answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-type: application/json\r\n" in json_answer
    assert json_answer.endswith(b"\r\n\r\n" + JSON_BODY)
    assert not closed
    refused, _ = ours.exchange(b"GET /bad-value HTTP/1.1\r\nhost: x\r\n\r\n")
    assert refused == b""
    _, closed = ours.exchange(b"GET /json HTTP/1.0\r\nhost: x\r\n\r\n")
    assert closed


def test_a_checked_field_is_kept_lower_cased() -> None:
    field = (b"X-Kept-Field", b"Value")
    line, length = checked_field(field) or (b"", 0)
    assert line == b"x-kept-field: Value\r\n"
    assert length == -1
    assert checked_field(field) is checked_field(field)


def test_the_content_length_is_read_once_and_kept() -> None:
    assert checked_field((b"Content-Length", b"27")) == (b"content-length: 27\r\n", 27)


@pytest.mark.parametrize(
    "field",
    [
        (b"connection", b"close"),
        (b"Transfer-Encoding", b"chunked"),
        (b"set-cookie", b"session=secret"),
        (b"bad name", b"x"),
        (b"x-note", b"one\ntwo"),
        (b"content-length", b"-1"),
    ],
)
def test_fields_uvicorn_must_write_are_not_kept(field: tuple[bytes, bytes]) -> None:
    assert checked_field(field) is None
    assert field not in http_head._checked


def test_the_kept_fields_are_bounded() -> None:
    for number in range(KEPT_FIELDS + 10):
        checked_field((b"x-request-chosen", str(number).encode()))
    assert len(http_head._checked) <= KEPT_FIELDS


DATE = (b"date", b"Sun, 06 Dec 2026 04:00:00 GMT")


def test_a_checked_head_is_kept_encoded() -> None:
    fields = [(b"Content-Type", b"application/json"), (b"content-length", b"15")]
    head = checked_head(200, [DATE], fields)
    assert head == (
        b"HTTP/1.1 200 OK\r\n"
        b"date: Sun, 06 Dec 2026 04:00:00 GMT\r\n"
        b"content-type: application/json\r\n"
        b"content-length: 15\r\n",
        15,
    )
    kept = http_head._heads[(200, *fields)]
    assert checked_head(200, [DATE], list(fields)) == head
    assert http_head._heads[(200, *fields)] is kept


def test_a_head_is_kept_once_whatever_the_date() -> None:
    fields = [(b"content-length", b"16"), (b"x-kept-once", b"yes")]
    checked_head(200, [DATE], fields)
    kept = len(http_head._heads)
    next_second = (b"date", b"Sun, 06 Dec 2026 04:00:01 GMT")
    head = checked_head(200, [next_second], fields)
    assert head is not None
    assert head[0].startswith(
        b"HTTP/1.1 200 OK\r\ndate: Sun, 06 Dec 2026 04:00:01 GMT\r\n"
    )
    assert len(http_head._heads) == kept


def test_a_server_field_uvicorn_must_write_leaves_the_head_to_it() -> None:
    refused = (b"x-server", b"one\r\ntwo")
    assert checked_head(200, [refused], [(b"content-length", b"0")]) is None


@pytest.mark.parametrize(
    "fields",
    [
        [(b"content-length", b"0"), (b"set-cookie", b"session=secret")],
        [(b"x-note", b"one\ntwo")],
        [[b"content-length", b"2"]],
        [(b"x-a", bytearray(b"b"))],
    ],
    ids=["session", "refused", "list", "bytearray"],
)
def test_heads_uvicorn_must_write_are_not_kept(fields: list[Any]) -> None:
    kept = dict(http_head._heads)
    assert checked_head(200, [DATE], fields) is None
    assert http_head._heads == kept


def test_a_status_uvicorn_has_no_line_for_is_not_kept() -> None:
    assert checked_head(600, [DATE], [(b"content-length", b"0")]) is None


def test_the_kept_heads_are_bounded() -> None:
    for number in range(KEPT_HEADS + 10):
        checked_head(200, [DATE], [(b"content-length", str(number).encode())])
    assert len(http_head._heads) <= KEPT_HEADS
