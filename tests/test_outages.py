"""Unexpected errors: a database outage is answered on a connection that
stays open, and logged about once a second; a bug keeps its traceback."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from asyncpg.exceptions import CannotConnectNowError
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.testclient import TestClient

from netcalc.app import create_app
from netcalc.auth.usage import UsageRecorder
from netcalc.db import create_engine
from netcalc.outages import OutageLog, connection_failure
from tests.services import PostgresServer
from tests.support import Console, ServerProcess, token_body
from tests.test_server import bearer, create_credentials, get_token

SUBNET = b'{"network_address": "10.0.0.0", "subnet_bits": 24, "name": "x"}'


def _raised(error: BaseException, cause: BaseException | None) -> BaseException:
    """`error` as raised from `cause`, with the chain Python would give it."""
    try:
        try:
            if cause is not None:
                raise cause
        except BaseException as caught:
            raise error from caught
        raise error
    except BaseException as raised:
        return raised


REFUSED = ConnectionRefusedError(111, "Connection refused")
SHUTTING_DOWN = CannotConnectNowError("the database system is shutting down")
REDIS_DOWN = RedisConnectionError("Error 111 connecting to 127.0.0.1:6379.")
# What asyncio raises when every address of a host refused: a plain OSError.
MANY_REFUSED = OSError(
    "Multiple exceptions: [Errno 111] Connect call failed ('::1', 5432, 0, 0), "
    "[Errno 111] Connect call failed ('127.0.0.1', 5432)"
)


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        pytest.param(REFUSED, REFUSED, id="refused"),
        pytest.param(REDIS_DOWN, REDIS_DOWN, id="redis"),
        pytest.param(MANY_REFUSED, MANY_REFUSED, id="every-address-refused"),
        pytest.param(
            _raised(OperationalError("SELECT 1", {}, SHUTTING_DOWN), SHUTTING_DOWN),
            SHUTTING_DOWN,
            id="sqlalchemy-around-asyncpg",
        ),
        pytest.param(
            _raised(RuntimeError("while saving"), REFUSED), REFUSED, id="caused-by"
        ),
    ],
)
def test_connection_failures_are_found_behind_what_wraps_them(
    error: BaseException, cause: BaseException
) -> None:
    """A failure to reach the database or Redis is found however it is wrapped."""
    assert connection_failure(error) is cause


def test_a_lost_connection_is_named_by_the_drivers_error() -> None:
    """An error SQLAlchemy marks as a lost connection is told by its driver's
    error, never by its own text, which holds the statement's parameters."""
    driver_error = Exception("connection was closed in the middle of operation")
    error = OperationalError(
        "SELECT secret_hash FROM credentials",
        {"id": 1},
        driver_error,
        connection_invalidated=True,
    )
    assert connection_failure(error) is driver_error


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(ValueError("bad value"), id="bug"),
        pytest.param(IntegrityError("INSERT", {}, ValueError("dup")), id="integrity"),
        pytest.param(_raised(KeyError("k"), None), id="uncaused"),
        pytest.param(FileNotFoundError(2, "No such file", "keys.pem"), id="file"),
        pytest.param(
            _raised(RuntimeError("loading"), PermissionError(13, "Denied")),
            id="file-behind",
        ),
    ],
)
def test_other_errors_are_bugs(error: BaseException) -> None:
    """Errors without a connection failure behind them are not outages."""
    assert connection_failure(error) is None


def test_a_cause_hidden_with_from_none_is_not_followed() -> None:
    """`raise ... from None` says the cause is noise; it is not searched."""
    try:
        try:
            raise REFUSED
        except OSError:
            raise ValueError("translated") from None
    except ValueError as error:
        assert connection_failure(error) is None


@dataclass
class Clock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_outage_is_logged_once_a_second_with_the_count_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Failures within a second of a logged one are only counted; the next
    line says how many there were."""
    clock = Clock()
    outages = OutageLog(clock=clock)
    with caplog.at_level(logging.ERROR, logger="netcalc"):
        for _ in range(10):
            outages.failed("POST", "/api/account/subnets", REFUSED)
            clock.now += 0.05
        clock.now += 0.6
        outages.failed("DELETE", "/api/account/subnets/x", REFUSED)
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2
    assert "ConnectionRefusedError" in lines[0]
    assert "more such" not in lines[0]
    assert lines[1].startswith("DELETE '/api/account/subnets/x' failed")
    assert lines[1].endswith("; 9 more such failures since the last line")
    assert all(record.exc_info is None for record in caplog.records)


def test_a_bug_behind_a_fastapi_route_keeps_its_traceback(
    console: Console, caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected error on a route FastAPI serves is answered 500
    SYSTEM_ERROR, raised no further, and logged once with its traceback."""
    issued = console.credentials(console.account("bug@example.com"))

    async def break_schema(engine: AsyncEngine) -> None:
        async with engine.begin() as connection:
            await connection.execute(text("DROP TABLE subnets"))

    console.run(break_schema)
    with TestClient(create_app(console.settings)) as client:
        granted = client.post("/api/auth/token", json=token_body(issued))
        token = granted.json()["token"]["access_token"]
        with caplog.at_level(logging.ERROR):
            response = client.post(
                "/api/account/subnets", content=SUBNET, headers=_json(token)
            )
    assert response.status_code == 500
    assert response.json()["status"] == "SYSTEM_ERROR"
    failures = [r for r in caplog.records if "'/api/account/subnets'" in r.message]
    assert len(failures) == 1
    assert failures[0].exc_info is not None


def _json(token: str) -> dict[str, str]:
    return bearer(token) | {"Content-Type": "application/json"}


@dataclass
class Stranded:
    """A live server whose PostgreSQL has stopped, and what it gave before."""

    server: ServerProcess
    token: str
    subnet_id: str


@pytest.fixture(scope="module")
def stranded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stranded]:
    """A server on a PostgreSQL of its own, stopped once a token was issued
    and a subnet saved."""
    # Outside pytest's folders, which the postgres user may not enter.
    folder = Path(tempfile.mkdtemp(prefix="netcalc-postgres-"))
    database = PostgresServer(folder)
    database.start()
    # Timers that read the database would log failures of their own.
    server = ServerProcess(
        tmp_path_factory.mktemp("stranded"),
        NETCALC_DATABASE_URL=database.new_database(),
        NETCALC_USAGE_FLUSH_SECONDS="3600",
        NETCALC_REVOCATION_RESYNC_SECONDS="3600",
    )
    try:
        server.start()
        token = get_token(server, create_credentials(server, "outage@example.com"))
        saved = httpx.post(
            server.url + "/api/account/subnets",
            content=SUBNET,
            headers=_json(token),
        )
        assert saved.status_code == 200, saved.text
        database.stop()
        yield Stranded(server, token, saved.json()["subnet"]["id"])
    finally:
        server.stop()
        database.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _request(method: str, path: str, token: str, body: bytes = b"") -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _answer(sock: socket.socket) -> tuple[int, bytes, bytes]:
    """One whole response from a kept-alive connection: status, head, body;
    fails if the server closes the connection instead."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
    assert length is not None, head
    while len(body) < int(length[1]):
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        body += chunk
    return int(head.split(b" ", 2)[1]), head.lower(), body


@pytest.mark.server
@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_a_write_without_its_database_keeps_the_connection(
    stranded: Stranded, method: str
) -> None:
    """A save or delete FastAPI routes while PostgreSQL is down is answered
    500 SYSTEM_ERROR, and the same connection serves the next request."""
    path, body = "/api/account/subnets", SUBNET
    if method == "DELETE":
        path, body = f"{path}/{stranded.subnet_id}", b""
    port = stranded.server.port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(_request(method, path, stranded.token, body))
        status, head, body = _answer(sock)
        assert status == 500
        assert json.loads(body) == {
            "status": "SYSTEM_ERROR",
            "message": "An unexpected error occurred.",
        }
        assert b"\r\nx-content-type-options: nosniff" in head
        assert b"connection: close" not in head
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _answer(sock)[0] == 200
    log = stranded.server.log()
    assert "Exception in ASGI application" not in log
    assert "unhandled error answering" not in log
    assert stranded.token not in log


@pytest.mark.server
def test_an_outage_writes_about_one_line_a_second(stranded: Stranded) -> None:
    """Requests failing for want of the database write about one log line a
    second, without a traceback, each counting the failures it left out."""
    before = len(stranded.server.log())
    port = stranded.server.port
    started = time.monotonic()
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        while sent < 200 and time.monotonic() - started < 2.5:
            sock.sendall(
                _request("POST", "/api/account/subnets", stranded.token, SUBNET)
            )
            assert _answer(sock)[0] == 500
            sent += 1
            time.sleep(0.02)
    elapsed = time.monotonic() - started
    written = stranded.server.log()[before:].splitlines()
    lines = [line for line in written if "/api/account/subnets" in line]
    assert all("the database or Redis cannot be reached" in line for line in lines)
    assert 2 <= len(lines) <= math.ceil(elapsed) + 1 < sent
    last = json.loads(lines[-1])
    assert re.search(r"; \d+ more such failures since the last line$", last["event"])
    assert last["level"] == "error"
    assert "Traceback" not in "\n".join(written)


def test_background_work_in_an_outage_logs_one_line_a_try(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Work on a timer, such as recording when credentials were last used,
    logs one line without a traceback each time an outage stops it."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    engine = create_engine(f"postgresql://netcalc@127.0.0.1:{port}/netcalc")
    recorder = UsageRecorder(engine, interval=3600)
    recorder.used("nci_" + "0" * 32)

    async def flush_twice() -> None:
        await recorder.flush()
        await recorder.flush()
        await engine.dispose()

    with caplog.at_level(logging.ERROR, logger="netcalc"):
        asyncio.run(flush_twice())
    assert [record.exc_info for record in caplog.records] == [None, None]
    assert all(
        "recording the last use of credentials failed: the database or Redis "
        "cannot be reached" in record.getMessage()
        for record in caplog.records
    )


def test_a_failed_statement_does_not_show_its_values(console: Console) -> None:
    """A statement's error, logged with its traceback as a bug, leaves out
    the values bound to it, which may be secret hashes."""

    async def fail(engine: AsyncEngine) -> str:
        async with engine.connect() as connection:
            try:
                await connection.execute(
                    text("SELECT no_such_column FROM accounts WHERE email = :email"),
                    {"email": "value-to-hide@example.com"},
                )
            except DBAPIError as error:
                return str(error)
        return ""

    said = console.run(fail)
    assert "no_such_column" in said
    assert "value-to-hide" not in said
