"""Resource bounds of a real server: heads, slow clients, connections, memory.

Everything here speaks raw HTTP/1.1 over sockets to a `netcalc serve` on
loopback, because the bounds live below the app, where requests are parsed
(`netcalc.http_limits`). Every wait is bounded by a socket timeout.
"""

from __future__ import annotations

import json
import re
import select
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, suppress
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute

from netcalc.auth import oauth
from netcalc.responses import OAUTH_PATHS
from netcalc.security_headers import HEADERS as SECURITY_HEADERS
from tests.support import ServerProcess

pytestmark = pytest.mark.server

REQUEST_TIMEOUT = 1.5
"""NETCALC_REQUEST_TIMEOUT_SECONDS of the bounded server, short for the tests."""

KEEP_ALIVE = 1
"""NETCALC_KEEP_ALIVE_SECONDS of the bounded server."""

WAIT = 10.0
"""The longest any socket operation here may wait."""

CAP = 10
"""NETCALC_MAX_CONNECTIONS of the capped server."""

SENDING_ENDED = (BrokenPipeError, ConnectionResetError)
"""What a send raises once the server has refused the request and closed."""


def request(
    method: bytes, target: bytes, *fields: bytes, body: bytes = b"", close: bool = True
) -> bytes:
    """The bytes of one HTTP/1.1 request to the server under test."""
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", *fields]
    if close:
        lines.append(b"Connection: close")
    if body:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join([*lines, b"", body])


def token_request(body: bytes) -> bytes:
    """A JSON token request with `body`."""
    return request(
        b"POST", b"/api/auth/token", b"Content-Type: application/json", body=body
    )


HUGE_HEADER = request(b"GET", b"/healthz", b"X-Big: " + b"a" * 2_000_000)
MANY_HEADERS = request(b"GET", b"/healthz", *(b"X-%d: v" % i for i in range(20_000)))
HUGE_URL = request(b"GET", b"/api/ip/" + b"1" * 1_000_000)
PIPELINE_FLOOD = request(b"GET", b"/healthz", close=False) * 5000
DEEP_ARRAYS = b"[" * 5000 + b"]" * 5000
DEEP_OBJECTS = b'{"a":' * 2000 + b"1" + b"}" * 2000


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with a short request timeout and keep-alive, default limits else."""
    process = ServerProcess(
        tmp_path_factory.mktemp("bounded"),
        NETCALC_REQUEST_TIMEOUT_SECONDS=str(REQUEST_TIMEOUT),
        NETCALC_KEEP_ALIVE_SECONDS=str(KEEP_ALIVE),
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server that holds at most CAP connections."""
    process = ServerProcess(tmp_path / "capped", NETCALC_MAX_CONNECTIONS=str(CAP))
    process.start()
    try:
        yield process
    finally:
        process.stop()


def connect(server: ServerProcess) -> socket.socket:
    """A fresh connection to `server`, every operation bounded by WAIT."""
    return socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes or resets the connection."""
    chunks = []
    with suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def received(sock: socket.socket) -> bytes:
    """The next bytes from `sock`; the server closing it first is a failure."""
    chunk = sock.recv(65536)
    assert chunk, "the server closed the connection before answering"
    return chunk


def read_response(sock: socket.socket) -> bytes:
    """One whole response from a connection the server keeps open."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += received(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
    assert length is not None, head
    while len(body) < int(length[1]):
        body += received(sock)
    return head + b"\r\n\r\n" + body


def exchange(server: ServerProcess, data: bytes) -> bytes:
    """Send `data` on a new connection and read until the server closes it."""
    with connect(server) as sock:
        with suppress(*SENDING_ENDED):
            sock.sendall(data)
        return read_until_closed(sock)


def answer(reply: bytes) -> tuple[int, str]:
    """The HTTP status and the JSON `status` of a raw response."""
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)["status"]


def rss_kib(pid: int) -> int:
    """The resident memory of process `pid`, KiB, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+) kB$", status, re.MULTILINE)
    assert found is not None
    return int(found[1])


@pytest.mark.parametrize(
    "data, expected",
    [
        (
            request(b"GET", b"/healthz", b"X-Big: " + b"a" * 17_000),
            (431, "REQUEST_TOO_LARGE"),
        ),
        (
            request(b"GET", b"/healthz", *(b"X-%d: v" % i for i in range(3000))),
            (431, "REQUEST_TOO_LARGE"),
        ),
        (request(b"GET", b"/api/ip/" + b"1" * 20_000), (414, "REQUEST_TOO_LARGE")),
        (request(b"GET", b"/api/ip/" + b"1" * 70_000), (414, "REQUEST_TOO_LARGE")),
    ],
    ids=["17 KB header", "3,000 headers", "20 KB URL", "70 KB URL"],
)
def test_head_over_limit_refused(
    bounded: ServerProcess, data: bytes, expected: tuple[int, str]
) -> None:
    """HTTP 431 or 414 REQUEST_TOO_LARGE for a head over the 16 KiB default."""
    assert answer(exchange(bounded, data)) == expected


@pytest.mark.parametrize(
    "data",
    [
        request(b"GET", b"/healthz", close=False),
        token_request(b"{}"),
    ],
    ids=["healthz", "token endpoint"],
)
def test_answer_reaches_a_client_that_half_closed(
    bounded: ServerProcess, data: bytes
) -> None:
    """A client that shuts its sending side after the request still gets
    the whole answer before the connection closes."""
    with connect(bounded) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        reply = read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 ")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert json.loads(body)["status"]
    assert b"content-security-policy" in head.lower()


def test_refusals_carry_the_security_headers(bounded: ServerProcess) -> None:
    """Answers the connection bounds give have the same headers as any."""
    reply = exchange(bounded, request(b"GET", b"/api/ip/" + b"1" * 20_000))
    head = reply.partition(b"\r\n\r\n")[0].lower()
    assert b"x-frame-options: deny" in head
    assert b"content-security-policy" in head


def test_head_under_limit_served(bounded: ServerProcess) -> None:
    """HTTP 200 for a head just under the limit: the limit is not too tight."""
    data = request(b"GET", b"/healthz", b"X-Big: " + b"a" * 16_000)
    assert answer(exchange(bounded, data)) == (200, "OK")


@pytest.mark.parametrize(
    "data, code",
    [(HUGE_HEADER, 431), (MANY_HEADERS, 431), (HUGE_URL, 414)],
    ids=["2 MB header", "20,000 headers", "1 MB URL"],
)
def test_huge_head_cut_off(bounded: ServerProcess, data: bytes, code: int) -> None:
    """HTTP 431 or 414 (or a reset mid-send) for a huge head; the server serves on."""
    reply = exchange(bounded, data)
    if reply:
        assert answer(reply) == (code, "REQUEST_TOO_LARGE")
    assert answer(exchange(bounded, request(b"GET", b"/healthz"))) == (200, "OK")


@pytest.mark.parametrize(
    "body", [DEEP_ARRAYS, DEEP_OBJECTS], ids=["5,000 arrays", "2,000 objects"]
)
def test_deeply_nested_json_is_invalid_request(
    bounded: ServerProcess, body: bytes
) -> None:
    """HTTP 400 INVALID_REQUEST, never 500, for JSON nested thousands deep."""
    reply = exchange(bounded, token_request(body))
    assert answer(reply) == (400, "INVALID_REQUEST")


def test_declared_huge_body_refused_before_it_arrives(bounded: ServerProcess) -> None:
    """HTTP 413 REQUEST_TOO_LARGE at once for a 1 GB Content-Length, then a close."""
    data = (
        b"POST /api/auth/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{"
    )
    assert answer(exchange(bounded, data)) == (413, "REQUEST_TOO_LARGE")


@pytest.mark.parametrize(
    "data",
    [
        b"POST /api/auth/token HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        b"POST /api/auth/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        b'{"a":',
    ],
    ids=["head cut off", "5 of 1000 body bytes"],
)
def test_unfinished_request_times_out(bounded: ServerProcess, data: bytes) -> None:
    """HTTP 408 REQUEST_TIMEOUT, then a close, for a request left unfinished."""
    assert answer(exchange(bounded, data)) == (408, "REQUEST_TIMEOUT")


def test_unfinished_request_after_a_whole_one_times_out(
    bounded: ServerProcess,
) -> None:
    """HTTP 408 for a request left unfinished on a connection that was
    already answered once."""
    with connect(bounded) as sock:
        sock.sendall(request(b"GET", b"/healthz", close=False))
        assert answer(read_response(sock)) == (200, "OK")
        sock.sendall(b"POST /api/auth/token HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        assert answer(read_until_closed(sock)) == (408, "REQUEST_TIMEOUT")


def test_dripping_head_times_out(bounded: ServerProcess) -> None:
    """HTTP 408: a head sent a line every 0.1 s is cut off though bytes keep coming."""
    with connect(bounded) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for _ in range(int(WAIT / 0.1)):
            readable, _, _ = select.select([sock], [], [], 0.1)
            if readable:
                break
            with suppress(*SENDING_ENDED):
                sock.sendall(b"X-Drip: a\r\n")
        reply = read_until_closed(sock)
    assert answer(reply) == (408, "REQUEST_TIMEOUT")


def test_pipelined_requests_answered(bounded: ServerProcess) -> None:
    """HTTP 200 for each of 10 requests pipelined in one write, in order."""
    data = request(b"GET", b"/healthz", close=False) * 9 + request(b"GET", b"/healthz")
    assert exchange(bounded, data).count(b"HTTP/1.1 200 OK\r\n") == 10


def statuses(reply: bytes) -> list[int]:
    """The status of each response in `reply`, in order."""
    return [int(code) for code in re.findall(rb"HTTP/1.1 (\d{3}) ", reply)]


def test_deep_pipeline_refused(bounded: ServerProcess) -> None:
    """5,000 requests pipelined: those read before the depth was passed are
    answered in order, then HTTP 400 and a close; the server serves on."""
    reply = exchange(bounded, PIPELINE_FLOOD)
    *answered, refused = statuses(reply)
    assert answered and set(answered) == {200}
    assert len(answered) < 5000
    assert refused == 400
    assert answer(reply[reply.rindex(b"HTTP/1.1 400 ") :]) == (
        400,
        "INVALID_REQUEST",
    )
    assert answer(exchange(bounded, request(b"GET", b"/healthz"))) == (200, "OK")


@pytest.mark.parametrize(
    "data",
    [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
    ],
    ids=["not-http", "header-without-colon", "negative-length"],
)
def test_bytes_that_are_not_http_get_the_contracts_json(
    bounded: ServerProcess, data: bytes
) -> None:
    """What the parser refuses is answered 400 INVALID_REQUEST in JSON, with
    the security headers, and the connection is closed."""
    reply = exchange(bounded, data)
    assert answer(reply) == (400, "INVALID_REQUEST")
    head = reply.partition(b"\r\n\r\n")[0].lower()
    assert b"content-type: application/json" in head
    assert b"connection: close" in head
    for name, value in SECURITY_HEADERS:
        assert name + b": " + value.lower() in head


def test_unused_connection_closed_silently(bounded: ServerProcess) -> None:
    """A connection that never sends a byte is closed, unanswered, at the timeout."""
    with connect(bounded) as sock:
        assert read_until_closed(sock) == b""


def test_idle_keep_alive_connection_closed(bounded: ServerProcess) -> None:
    """HTTP 200, then the kept-alive connection closes once idle for its timeout."""
    with connect(bounded) as sock:
        sock.sendall(request(b"GET", b"/healthz", close=False))
        assert answer(read_response(sock)) == (200, "OK")
        assert read_until_closed(sock) == b""


def test_many_idle_connections_leave_room(bounded: ServerProcess) -> None:
    """HTTP 200 beside 200 idle connections, which are all closed at the timeout."""
    with ExitStack() as stack:
        idle = [stack.enter_context(connect(bounded)) for _ in range(200)]
        data = request(b"GET", b"/api/ip/10.0.0.0/24")
        assert answer(exchange(bounded, data)) == (200, "OK")
        assert all(read_until_closed(sock) == b"" for sock in idle)


def answered_connections(
    stack: ExitStack, server: ServerProcess, count: int
) -> list[socket.socket]:
    """`count` connections to `server`, each answered once and kept alive."""
    held = [stack.enter_context(connect(server)) for _ in range(count)]
    for sock in held:
        sock.sendall(request(b"GET", b"/healthz", close=False))
        assert answer(read_response(sock)) == (200, "OK")
    return held


WAITING_FOR_BODY = (
    b"POST /api/auth/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Type: application/json\r\nContent-Length: 2\r\n"
    b"Expect: 100-continue\r\n\r\n"
)
"""A token request whose body the server asks for, then waits for."""


def test_connections_beyond_cap_get_503(capped: ServerProcess) -> None:
    """HTTP 503 SERVICE_UNAVAILABLE past NETCALC_MAX_CONNECTIONS while no
    connection is idle, 200 once one frees."""
    healthz = request(b"GET", b"/healthz")
    with ExitStack() as stack:
        held = answered_connections(stack, capped, CAP)
        for sock in held:
            sock.sendall(WAITING_FOR_BODY)
            continued = b""
            while b"\r\n\r\n" not in continued:
                continued += received(sock)
            assert continued.startswith(b"HTTP/1.1 100 ")
        assert answer(exchange(capped, healthz)) == (503, "SERVICE_UNAVAILABLE")
        held[0].close()
        for _ in range(int(WAIT / 0.1)):
            if answer(exchange(capped, healthz))[0] == 200:
                break
            time.sleep(0.1)
        else:
            pytest.fail("no connection was admitted after one closed")


def test_idle_connection_closed_to_make_room(capped: ServerProcess) -> None:
    """At NETCALC_MAX_CONNECTIONS a new connection is served in place of the
    kept-alive connection idle longest, which is closed and counted."""
    healthz = request(b"GET", b"/healthz", close=False)
    with ExitStack() as stack:
        held = answered_connections(stack, capped, CAP)
        held[0].sendall(healthz)
        assert answer(read_response(held[0])) == (200, "OK")
        assert answer(exchange(capped, request(b"GET", b"/healthz"))) == (200, "OK")
        assert read_until_closed(held[1]) == b""
        held[0].sendall(healthz)
        assert answer(read_response(held[0])) == (200, "OK")
        metrics = exchange(capped, request(b"GET", b"/metrics"))
    assert b'netcalc_connections_refused_total{reason="evicted"}' in metrics


def test_silent_connections_make_room_for_each_other(capped: ServerProcess) -> None:
    """At NETCALC_MAX_CONNECTIONS, connections that never send a byte take
    each other's places, not those of clients between their requests."""
    healthz = request(b"GET", b"/healthz", close=False)
    with ExitStack() as stack:
        (client,) = answered_connections(stack, capped, 1)
        silent = [stack.enter_context(connect(capped)) for _ in range(3 * CAP)]
        client.sendall(healthz)
        assert answer(read_response(client)) == (200, "OK")
        assert answer(exchange(capped, request(b"GET", b"/healthz"))) == (200, "OK")
        assert read_until_closed(silent[0]) == b""


def test_refusals_are_counted(bounded: ServerProcess) -> None:
    """HTTP 200 for /metrics, which counts refused heads by their reason."""
    exchange(bounded, request(b"GET", b"/healthz", b"X-Big: " + b"a" * 17_000))
    reply = exchange(bounded, request(b"GET", b"/metrics"))
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert b'netcalc_connections_refused_total{reason="head_too_large"}' in reply


def test_memory_stays_bounded_under_abuse(bounded: ServerProcess) -> None:
    """Server RSS grows under 64 MiB across 350 abusive requests and 200 idlers."""
    before = rss_kib(bounded.pid)
    attacks = [HUGE_HEADER] * 100 + [MANY_HEADERS] * 50 + [HUGE_URL] * 50
    attacks += [PIPELINE_FLOOD] * 50 + [token_request(DEEP_ARRAYS)] * 100
    with ExitStack() as stack:
        for _ in range(200):
            stack.enter_context(connect(bounded))
        with ThreadPoolExecutor(max_workers=20) as pool:
            list(pool.map(lambda data: exchange(bounded, data), attacks))
        during = rss_kib(bounded.pid)
    after = rss_kib(bounded.pid)
    print(f"server RSS KiB: before {before}, under load {during}, after {after}")
    assert max(during, after) - before < 64 * 1024


@pytest.mark.parametrize(
    ("target", "status"),
    [
        (b"/healthz", 200),
        (b"/.well-known/jwks.json", 200),
        (b"/.well-known/oauth-authorization-server", 200),
        (b"/api/ip/10.0.0.0/24", 200),
        (b"/signin", 200),
        (b"/api/account/subnets", 401),
        (b"/api/auth/token", 405),
    ],
)
def test_head_is_answered_as_get_without_the_body(
    bounded: ServerProcess, target: bytes, status: int
) -> None:
    """HEAD gets GET's status and head, Content-Length included, and no
    body: the next response on the connection follows straight after."""
    get = httpx.get(bounded.url + target.decode())
    with connect(bounded) as sock:
        sock.sendall(
            request(b"HEAD", target, close=False) + request(b"GET", b"/healthz")
        )
        answers = read_until_closed(sock)
    head, _, rest = answers.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status)
    assert get.status_code == status
    fields = dict(line.lower().split(b": ", 1) for line in head.split(b"\r\n")[1:])
    assert int(fields[b"content-length"]) == len(get.content)
    assert rest.startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize(
    ("head", "status", "message"),
    [
        (b"GET /healthz HTTP/1.1", 400, "Send exactly one Host header."),
        (
            b"GET /healthz HTTP/1.1\r\nHost: a.example\r\nHost: b.example",
            400,
            "Send exactly one Host header.",
        ),
        (
            b"GET /api/account/subnets HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: Bearer one\r\nAuthorization: Bearer two",
            400,
            "Send at most one Authorization header.",
        ),
        (b"GET /healthz HTTP/1.0", 200, None),
    ],
    ids=["no-host", "two-hosts", "two-authorizations", "http-1.0-without-host"],
)
def test_a_head_a_proxy_could_read_otherwise_is_refused(
    bounded: ServerProcess, head: bytes, status: int, message: str | None
) -> None:
    """RFC 9112 §3.2: an HTTP/1.1 request needs exactly one Host; no request
    may carry two Authorization fields for a proxy and netcalc to split."""
    with connect(bounded) as sock:
        sock.sendall(head + b"\r\nConnection: close\r\n\r\n")
        answer = read_until_closed(sock)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split(b" ")[1] == str(status).encode()
    if message is not None:
        body = json.loads(rest.partition(b"\r\n\r\n")[2])
        assert body == {"status": "INVALID_REQUEST", "message": message}


@pytest.mark.parametrize("path", sorted(OAUTH_PATHS))
def test_two_authorizations_at_rfc6749_endpoints_answer_in_their_shape(
    bounded: ServerProcess, path: str
) -> None:
    """RFC 6749 §5.2: the standard endpoints answer `invalid_request` for a
    head with two Authorization fields, though it is refused before the
    endpoint reads it."""
    fields = (b"Authorization: Basic eDp5", b"Authorization: Bearer x")
    form = b"Content-Type: application/x-www-form-urlencoded"
    data = request(b"POST", path.encode(), form, *fields, body=b"token=x")
    head, _, body = exchange(bounded, data).partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400"
    assert b"\r\ncache-control: no-store" in head.lower()
    assert json.loads(body) == {
        "error": "invalid_request",
        "error_description": "Send at most one Authorization header.",
    }


def test_size_refusals_at_rfc6749_endpoints_keep_their_shape(
    bounded: ServerProcess,
) -> None:
    """A head too large is refused alike at every path, as it may be before
    the path is read."""
    big = b"X-Big: " + b"a" * 17_000
    data = request(b"POST", b"/oauth2/token", big, body=b"grant_type=x")
    assert answer(exchange(bounded, data)) == (431, "REQUEST_TOO_LARGE")


def test_rfc6749_paths_are_the_oauth_routes() -> None:
    """The refusals' list of RFC 6749 endpoints is the OAuth router's."""
    posted = {
        route.path
        for route in oauth.router.routes
        if isinstance(route, APIRoute) and "POST" in route.methods
    }
    assert posted == OAUTH_PATHS


def chunked(target: bytes, body: bytes, *, head: bytes, trailer: bytes) -> bytes:
    """A chunked POST of `body`, one field in its head and one as a trailer."""
    fields = (head, b"Transfer-Encoding: chunked")
    chunk = b"%x\r\n%s\r\n" % (len(body), body)
    return request(b"POST", target, *fields) + chunk + b"0\r\n" + trailer + b"\r\n\r\n"


def test_trailer_fields_are_not_read_as_headers(bounded: ServerProcess) -> None:
    """RFC 9110 §6.5.1: a field sent as a trailer, after the head a proxy
    checked, is not taken as a request header."""
    subnet = b'{"network_address":"10.1.2.3","subnet_bits":24,"name":"x"}'
    bearer_after = chunked(
        b"/api/account/subnets",
        subnet,
        head=b"Content-Type: application/json",
        trailer=b"Authorization: Bearer e30.e30.c2ln",
    )
    reply = exchange(bounded, bearer_after)
    assert answer(reply) == (401, "INVALID_REQUEST")
    assert b'www-authenticate: bearer realm="netcalc"' in reply.lower()

    media_type_after = chunked(
        b"/api/auth/token",
        b"{}",
        head=b"Accept: application/json",
        trailer=b"Content-Type: application/json",
    )
    assert answer(exchange(bounded, media_type_after)) == (400, "MISSING_HEADER")


def test_trailer_fields_are_not_kept(bounded: ServerProcess) -> None:
    """A chunked body's trailer section, however long, is dropped as it
    arrives: 40 MB of trailer fields leave the server's memory as it was."""
    head = request(
        b"POST",
        b"/api/auth/token",
        b"Content-Type: application/json",
        b"Transfer-Encoding: chunked",
        close=False,
    )
    fields = (b"X-Trailer: " + b"a" * 53 + b"\r\n") * 1000
    with connect(bounded) as sock:
        sock.sendall(head + b"2\r\n{}\r\n0\r\n")
        before = rss_kib(bounded.pid)
        for _ in range(600):
            sock.sendall(fields)
        sock.sendall(b"\r\n")
        # Answered once the trailer section has ended, all of it read.
        assert answer(read_response(sock)) == (401, "MISSING_CREDENTIALS")
        grown = rss_kib(bounded.pid) - before
    assert grown < 16 * 1024


def chunked_token_request(chunks: bytes, coding: bytes = b"chunked") -> bytes:
    """A JSON token request kept alive, its body sent as `chunks` under
    `Transfer-Encoding: coding`."""
    fields = (b"Content-Type: application/json", b"Transfer-Encoding: " + coding)
    return request(b"POST", b"/api/auth/token", *fields, close=False) + chunks


BAD_CHUNKS = [b"zz\r\nabc\r\n0\r\n\r\n", b"-5\r\nabc\r\n0\r\n\r\n", b"1" * 18 + b"\r\n"]
BAD_CHUNK_IDS = ["not-hex", "negative", "18-hex-digits"]


@pytest.mark.parametrize("chunks", BAD_CHUNKS, ids=BAD_CHUNK_IDS)
def test_malformed_chunked_body_refused_at_once(
    bounded: ServerProcess, chunks: bytes
) -> None:
    """RFC 9112 §7.1: a chunked body that cannot be read is answered 400
    INVALID_REQUEST, not left to time out, and the connection is closed."""
    reply = exchange(bounded, chunked_token_request(chunks))
    assert statuses(reply) == [400]
    assert answer(reply) == (400, "INVALID_REQUEST")
    assert b"connection: close" in reply.lower()


def test_app_answering_a_malformed_body_is_not_heard(bounded: ServerProcess) -> None:
    """HTTP 400 alone for a malformed chunked body sent to an endpoint that
    answers without reading it: what the app sends afterwards is dropped."""
    data = request(b"POST", b"/healthz", b"Transfer-Encoding: chunked", close=False)
    reply = exchange(bounded, data + BAD_CHUNKS[0])
    assert statuses(reply) == [400]
    assert answer(reply) == (400, "INVALID_REQUEST")


@pytest.mark.parametrize("chunks", BAD_CHUNKS, ids=BAD_CHUNK_IDS)
def test_pipelined_malformed_body_answered_after_those_before(
    bounded: ServerProcess, chunks: bytes
) -> None:
    """Requests pipelined before one with a malformed chunked body get their
    answers first, in order, then HTTP 400 for it, and the connection closes."""
    healthz = request(b"GET", b"/healthz", close=False)
    reply = exchange(bounded, healthz * 3 + chunked_token_request(chunks))
    assert statuses(reply) == [200, 200, 200, 400]
    assert answer(reply[reply.rindex(b"HTTP/1.1 400 ") :]) == (400, "INVALID_REQUEST")


@pytest.mark.parametrize(
    ("coding", "expected"),
    [
        (b"identity", (400, "INVALID_REQUEST")),
        (b"xchunked", (400, "INVALID_REQUEST")),
        (b"chunked, gzip", (400, "INVALID_REQUEST")),
        (b"gzip, chunked", (501, "NOT_IMPLEMENTED")),
        (b"gzip\r\nTransfer-Encoding: chunked", (501, "NOT_IMPLEMENTED")),
    ],
    ids=[
        "identity",
        "xchunked",
        "chunked-then-gzip",
        "gzip-then-chunked",
        "two-fields",
    ],
)
def test_transfer_coding_other_than_chunked_refused(
    bounded: ServerProcess, coding: bytes, expected: tuple[int, str]
) -> None:
    """RFC 9112 §6.3 and §6.1: a body not chunked last is answered 400, one
    chunked over another coding 501 NOT_IMPLEMENTED, and the connection closed."""
    reply = exchange(bounded, chunked_token_request(b"2\r\n{}\r\n0\r\n\r\n", coding))
    head, _, body = reply.partition(b"\r\n\r\n")
    assert statuses(reply) == [expected[0]]
    assert answer(reply) == expected
    assert set(json.loads(body)) == {"status", "message"}
    assert b"connection: close" in head.lower()


def test_unknown_coding_answered_to_a_client_that_half_closed(
    bounded: ServerProcess,
) -> None:
    """HTTP 400 INVALID_REQUEST, not a silent close, for a body sent as
    `identity` by a client that then shuts its sending side."""
    with connect(bounded) as sock:
        sock.sendall(chunked_token_request(b"{}", b"identity"))
        sock.shutdown(socket.SHUT_WR)
        reply = read_until_closed(sock)
    assert answer(reply) == (400, "INVALID_REQUEST")


def test_pipelined_unknown_coding_answered_after_those_before(
    bounded: ServerProcess,
) -> None:
    """Requests pipelined before one with an unknown transfer coding get their
    answers first, in order, then HTTP 501 for it."""
    healthz = request(b"GET", b"/healthz", close=False)
    refused = chunked_token_request(b"2\r\n{}\r\n0\r\n\r\n", b"gzip, chunked")
    reply = exchange(bounded, healthz * 2 + refused + healthz)
    assert statuses(reply) == [200, 200, 501]


def test_transfer_encoding_on_http_1_0_is_invalid(bounded: ServerProcess) -> None:
    """RFC 9112 §6.1: HTTP/1.0 has no Transfer-Encoding, so a request sending
    one is answered 400 INVALID_REQUEST and the connection closed."""
    data = (
        b"POST /api/auth/token HTTP/1.0\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    )
    assert answer(exchange(bounded, data)) == (400, "INVALID_REQUEST")


def test_chunked_coding_name_is_case_insensitive(bounded: ServerProcess) -> None:
    """RFC 9112 §7: a body sent as `Chunked` is read as chunked, and the token
    endpoint answers it."""
    data = chunked_token_request(b"2\r\n{}\r\n0\r\n\r\n", b"Chunked")
    data = data.replace(b"Host: 127.0.0.1", b"Host: 127.0.0.1\r\nConnection: close")
    assert answer(exchange(bounded, data)) == (401, "MISSING_CREDENTIALS")
