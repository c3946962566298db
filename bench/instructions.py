"""Instructions per request, counted by callgrind: a cost the machine's other
work does not move.

Requests per second swing with whatever else shares the host; a row's share
of the floor moved by ten points or more between rounds of one run. The
instructions one server process executes for the same requests do not:
callgrind counts them exactly, the same from run to run for the same code.
They leave out the kernel's share (the socket calls) and the client's, so
they tell what each server's own code costs per request, not its rate.

Each server runs with one worker and a fixed hash seed under `valgrind
--tool=callgrind --instr-atstart=no`. The bench sends WARMUP requests
uncounted, turns counting on (`callgrind_control -i on`), sends COUNTED
requests one after another on one keep-alive connection, each checked to
answer 200, turns it off and dumps the totals.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from instances import create_credentials, grant_and_save, sqlite_env
from processes import (
    HOST,
    BenchError,
    bare_app_command,
    free_port,
    run_command,
    server,
    url,
    wait_http,
)

WARMUP = 300
"""Requests sent before counting starts: caches filled, code paths warm."""

COUNTED = 1000
"""Requests counted per workload."""

START_SECONDS = 300.0
"""How long a server may take to start under valgrind, some fifty times
slower than without."""

CONTROL_SECONDS = 60.0
"""How long one `callgrind_control` command may take."""

TOOLS = ("valgrind", "callgrind_control")


@dataclass(frozen=True)
class Request:
    """One request, sent again and again."""

    method: str
    path: str
    headers: dict[str, str]
    body: str | None = None


@dataclass(frozen=True)
class Count:
    """A workload and the instructions a request of it cost."""

    name: str
    per_request: float


def check_installed() -> None:
    """Raise BenchError unless valgrind and callgrind_control are installed."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise BenchError(
            f"{' and '.join(missing)} not found: install the Debian package "
            "'valgrind', or leave the counts out with --no-instructions."
        )


def count_instructions(scratch: Path) -> list[str]:
    """Count the floors and netcalc's hot calls; the report's lines."""
    folder = scratch / "instructions"
    folder.mkdir()
    env = sqlite_env(folder)
    body = json.dumps(create_credentials(env))
    token_request = Request(
        "POST", "/api/auth/token", {"Content-Type": "application/json"}, body
    )
    counts = [
        _count_bare("floor:app", 'floor: bare ASGI {"status":"OK"}', folder),
        _count_bare(
            "signing_floor:app",
            "floor + signature: a new ES256 token each",
            folder,
            token_request,
        ),
    ]
    with _counted(_netcalc_command, env, folder / "netcalc") as (port, counter):
        bearer = {"Authorization": f"Bearer {grant_and_save(port, body)}"}
        counts.append(counter("POST /api/auth/token", token_request))
        account = Request("GET", "/api/account/subnets", bearer)
        counts.append(counter("GET /api/account/subnets", account))
    return _lines(counts)


def _count_bare(
    target: str, name: str, folder: Path, request: Request | None = None
) -> Count:
    log = folder / target.partition(":")[0]
    with _counted(
        lambda port: bare_app_command(target, port, 1), dict(os.environ), log
    ) as (_, counter):
        return counter(name, request or Request("GET", "/", {}))


def _netcalc_command(port: int) -> list[str]:
    serve = ["serve", "--host", HOST, "--port", str(port), "--workers", "1"]
    return [sys.executable, "-m", "netcalc", *serve]


@contextlib.contextmanager
def _counted(
    command_for: Callable[[int], list[str]], env: dict[str, str], stem: Path
) -> Iterator[tuple[int, Counter]]:
    """A server under callgrind for the block's length, ready to count."""
    port = free_port()
    dumps = stem.with_suffix(".callgrind")
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
    valgrind.append(f"--callgrind-out-file={dumps}")
    command = [*valgrind, *command_for(port)]
    log = stem.with_suffix(".log")
    # Python salts its string hashes anew in each process, which moves where
    # dictionary entries land and so the count, by up to 2,000 instructions
    # a request; one fixed salt makes the counts repeat from run to run.
    pinned = env | {"PYTHONHASHSEED": "0"}
    with server(command, pinned, log) as process:
        health = "/" if "uvicorn" in command else "/healthz"
        wait_http(url(port, health), process, log, START_SECONDS)
        yield port, Counter(port, process.pid, dumps)


class Counter:
    """Counts the instructions of requests sent to one server under callgrind."""

    def __init__(self, port: int, pid: int, dumps: Path) -> None:
        self._port = port
        self._pid = pid
        self._dumps = dumps

    def __call__(self, name: str, request: Request) -> Count:
        """Send `request` WARMUP times, then COUNTED times counted."""
        connection = http.client.HTTPConnection(HOST, self._port, timeout=60)
        try:
            _send(connection, request, WARMUP)
            before = set(self._dumps.parent.glob(self._dumps.name + "*"))
            self._control("-i", "on")
            _send(connection, request, COUNTED)
            self._control("-i", "off")
            self._control("-d")
            total = self._total(before)
        finally:
            connection.close()
        return Count(name, total / COUNTED)

    def _control(self, *arguments: str) -> None:
        command = ["callgrind_control", *arguments, str(self._pid)]
        run_command(command, None, CONTROL_SECONDS)

    def _total(self, before: set[Path]) -> int:
        """The instruction total of the dump written since `before`."""
        deadline = time.monotonic() + CONTROL_SECONDS
        while time.monotonic() < deadline:
            for dump in set(self._dumps.parent.glob(self._dumps.name + "*")) - before:
                total = _totals_line(dump)
                if total is not None:
                    return total
            time.sleep(0.2)
        raise BenchError(f"callgrind wrote no totals for {self._pid} in time.")


def _send(connection: http.client.HTTPConnection, request: Request, count: int) -> None:
    for _ in range(count):
        connection.request(request.method, request.path, request.body, request.headers)
        answer = connection.getresponse()
        answer.read()
        if answer.status != 200:
            raise BenchError(
                f"{request.method} {request.path} answered {answer.status} "
                "while its instructions were counted."
            )


def _totals_line(dump: Path) -> int | None:
    """The `totals:` of a complete callgrind dump, None while it is written."""
    with contextlib.suppress(OSError):
        for line in dump.read_text().splitlines():
            if line.startswith("totals:"):
                return int(line.split()[1])
    return None


def _lines(counts: list[Count]) -> list[str]:
    floor = counts[0].per_request
    return [
        "### Instructions per request",
        "",
        f"Counted by callgrind in one worker: {COUNTED} requests one after "
        f"another on one keep-alive connection, after {WARMUP} uncounted. "
        "Only the server process's own instructions count, not the kernel's "
        "socket work nor the client's, so the shares here are of the code's "
        "cost alone; they do not move with the machine's load.",
        "",
        "| workload | instructions/request | floor's share |",
        "|---|--:|--:|",
        *(
            f"| {count.name} | {count.per_request:,.0f} "
            f"| {floor / count.per_request:.1%} |"
            for count in counts
        ),
    ]
