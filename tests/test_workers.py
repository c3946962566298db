"""The workers of `serve --workers N`: one lost while PostgreSQL is down
leaves the others serving, and another takes its place once it is back; a
start failed for want of the database is told in one line."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Message
from uvicorn.config import STARTUP_FAILURE

from netcalc.app import create_app
from netcalc.settings import Settings
from tests.services import PostgresServer
from tests.support import ServerProcess, free_port, make_settings
from tests.test_server import create_credentials, token_answer, worker_pids

DATABASE_PASSWORD = "database-password-not-to-log"
SECRET_KEY = "server-secret-not-to-log-0123456789abcdef-01234"
STARTED = "Application startup complete."


def _wait_for(condition: Any, server: ServerProcess, seconds: float) -> None:
    """Poll `condition` until it holds; fail, showing the log, once the
    server has stopped or `seconds` have passed."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert server.running, server.log()
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.2)


def _token_status(server: ServerProcess, issued: dict[str, Any]) -> tuple[int, str]:
    answer = token_answer(server, issued)
    return answer.status_code, answer.json()["status"]


def _started_at(server: ServerProcess) -> float:
    """When the worker that answers a scrape on a fresh connection started."""
    scrape = httpx.get(server.url + "/metrics", timeout=10).text
    found = re.search(r"^process_start_time_seconds (\S+)$", scrape, re.MULTILINE)
    assert found is not None, scrape
    return float(found[1])


def _log_lines(server: ServerProcess, saying: str) -> list[dict[str, Any]]:
    """The JSON lines of the server's log whose event says `saying`."""
    lines = [json.loads(line) for line in server.log().splitlines() if saying in line]
    return [line for line in lines if saying in line["event"]]


def _failed_starts(server: ServerProcess) -> list[dict[str, Any]]:
    """The lines in which a worker said why it could not start."""
    return _log_lines(server, "could not start serving")


@pytest.mark.server
def test_a_worker_lost_in_a_database_outage_returns_with_the_database(
    tmp_path: Path, own_postgres: PostgresServer
) -> None:
    """A worker killed while PostgreSQL is down leaves the other serving and
    answering the outage's error; its replacement, failing to start, is
    tried again, each try logged in one line, until one serves."""
    url = own_postgres.new_database().replace(
        "postgres@", f"postgres:{DATABASE_PASSWORD}@"
    )
    server = ServerProcess(
        tmp_path / "server",
        workers=2,
        NETCALC_DATABASE_URL=url,
        NETCALC_SECRET_KEY=SECRET_KEY,
    )
    server.start()
    try:
        _wait_for(lambda: server.log().count(STARTED) == 2, server, 30)
        issued = create_credentials(server, "outage@example.com")
        doomed = worker_pids(server)[0]

        own_postgres.stop()
        lost_at = time.time()
        os.kill(doomed, signal.SIGKILL)
        _wait_for(lambda: len(_failed_starts(server)) >= 2, server, 30)
        assert server.running, server.log()
        assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200
        assert _token_status(server, issued) == (500, "SYSTEM_ERROR")

        own_postgres.start()
        _wait_for(lambda: _started_at(server) > lost_at, server, 60)
        assert len(worker_pids(server)) == 2
        assert _token_status(server, issued) == (200, "OK")
    finally:
        server.stop()
    log = server.log()
    assert DATABASE_PASSWORD not in log
    assert SECRET_KEY not in log
    assert "Traceback" not in log
    failed = _failed_starts(server)
    assert all(line["level"] == "error" for line in failed)
    assert all(
        "the database or Redis cannot be reached" in line["event"] for line in failed
    )
    scheduled = _log_lines(server, "failed to start; another takes its place in")
    pauses = [float(re.findall(r"in (\S+) s,", line["event"])[0]) for line in scheduled]
    assert len(pauses) == len(failed)
    assert pauses == sorted(pauses)
    assert pauses[0] < pauses[-1] <= 30


def _start(settings: Settings, fails: type[Exception]) -> list[Message]:
    """What the app sends the server when asked to start, which it cannot:
    the lifespan ends raising `fails`."""
    app = create_app(settings)
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def start() -> None:
        inbox: asyncio.Queue[Message] = asyncio.Queue()
        await inbox.put({"type": "lifespan.startup"})
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        with pytest.raises(fails):
            await app(scope, inbox.get, send)

    asyncio.run(start())
    return sent


def test_a_start_without_the_database_is_told_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An app whose database refuses connections at start tells the server
    it failed with no traceback to log, and logs one line of the cause."""
    url = f"postgresql://netcalc:{DATABASE_PASSWORD}@127.0.0.1:{free_port()}/netcalc"
    with caplog.at_level(logging.ERROR):
        sent = _start(make_settings(tmp_path, database_url=url), OSError)
    assert sent == [{"type": "lifespan.startup.failed", "message": ""}]
    (record,) = caplog.records
    assert record.exc_info is None
    assert record.getMessage().startswith(
        "netcalc could not start serving: the database or Redis cannot be "
        "reached (ConnectionRefusedError: "
    )
    assert DATABASE_PASSWORD not in record.getMessage()


async def refusing_to_start(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app whose every start fails."""
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "not today"})


def test_workers_that_fail_to_start_at_launch_stop_the_server_with_a_failure(
    tmp_path: Path,
) -> None:
    """A process manager told to restart a server that failed sees a failure:
    uvicorn's status for a failed start, as one worker's server exits with."""
    serve = (
        "import uvicorn\n"
        "from netcalc.workers import serve_workers\n"
        "serve_workers(uvicorn.Config('tests.test_workers:refusing_to_start',"
        f" host='127.0.0.1', port={free_port()}, workers=2))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", serve],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == STARTUP_FAILURE, done.stderr
    assert "failed to start, stopping the parent process" in done.stderr
