"""Load-test netcalc on loopback with wrk and print a Markdown table.

Run it as `make bench` or `.venv/bin/python bench/run.py [--duration 10]`.
It sets up a scratch database through the `netcalc` CLI, serves netcalc and
the bare floor app (`bench/floor.py`) on free ports of 127.0.0.1, one at a
time, and measures each workload with wrk after a warm-up. Every server it
starts is stopped, and the scratch directory removed, however the run ends.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
"""The only address this benchmark ever sends traffic to."""

BENCH_DIR = Path(__file__).resolve().parent
"""Where the floor app and the wrk scripts live."""

EMAIL = "bench@example.com"
"""The account the benchmark creates in its scratch database."""

SUBNET = {"network_address": "10.0.0.0", "subnet_bits": 24, "name": "bench"}
"""The one subnet saved, so the account API answers with a non-empty list."""

READY_SECONDS = 30.0
"""How long a server may take to answer its first request."""

STOP_SECONDS = 5.0
"""How long a server may take to exit after SIGTERM before it is killed."""

CLI_SECONDS = 120.0
"""How long one `netcalc` setup command may run."""

WRK_SLACK_SECONDS = 30
"""Time allowed to wrk beyond its own duration before it is killed."""

ERROR_LINE = re.compile(r'Traceback|"level": "(error|critical)"|^(ERROR|CRITICAL):')
"""A server log line that reports a failure, in structlog's or uvicorn's form."""


class BenchError(Exception):
    """The benchmark could not run; the message says what went wrong."""


@dataclass(frozen=True)
class Options:
    """The command-line settings of one run."""

    duration: int
    warmup: int
    connections: int
    threads: int
    workers: int
    output: Path | None


@dataclass(frozen=True)
class Workload:
    """One thing to measure: a URL, the wrk script that drives it, its env."""

    name: str
    url: str
    script: str
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
    """What wrk measured for one workload."""

    name: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non2xx: int
    socket_errors: int


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the report; return the exit status."""
    options = _parse(argv)
    # Turned into an exception so that the cleanup below runs on SIGTERM too.
    signal.signal(signal.SIGTERM, _raise_exit)
    try:
        report = run(options)
    except BenchError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted; servers stopped.", file=sys.stderr)
        return 130
    print(report)
    if options.output:
        options.output.write_text(report + "\n")
    return 0


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _parse(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--duration", type=_positive, default=10, help="seconds measured")
    add("--warmup", type=_positive, default=3, help="seconds of warm-up")
    add("--connections", type=_positive, default=32, help="wrk connections")
    add("--threads", type=_positive, default=2, help="wrk threads")
    add("--workers", type=_positive, default=1, help="server worker processes")
    add("--output", type=Path, help="also write the Markdown report to this file")
    args = parser.parse_args(argv)
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads: wrk needs one each.")
    return Options(**vars(args))


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer.")
    return value


def run(options: Options) -> str:
    """Measure the floor, then netcalc, and return the Markdown report."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError("wrk is not installed; install the Debian package 'wrk'.")
    with tempfile.TemporaryDirectory(prefix="netcalc-bench-") as name:
        scratch = Path(name)
        floor = _bench_floor(options, scratch)
        results, notes = _bench_netcalc(options, scratch)
    return _report(options, [floor, *results], notes, wrk)


def _bench_floor(options: Options, scratch: Path) -> Result:
    port = _free_port()
    command = [
        *(sys.executable, "-m", "uvicorn", "floor:app", "--app-dir", str(BENCH_DIR)),
        *("--host", HOST, "--port", str(port), "--workers", str(options.workers)),
        *("--loop", "uvloop", "--http", "httptools", "--no-access-log"),
        *("--no-server-header", "--log-level", "warning", "--timeout-keep-alive", "30"),
    ]
    log = scratch / "floor.log"
    with _server(command, os.environ.copy(), log) as process:
        url = _url(port, "/")
        _wait_ready(url, process, log)
        floor = Workload('floor: bare ASGI {"status":"OK"}', url, "common.lua")
        return _measure(floor, options)


def _bench_netcalc(options: Options, scratch: Path) -> tuple[list[Result], list[str]]:
    env = _netcalc_env(scratch)
    netcalc = str(Path(sys.executable).with_name("netcalc"))
    body = json.dumps(_create_credentials(netcalc, env))
    port = _free_port()
    command = [netcalc, "serve", "--host", HOST, "--port", str(port)]
    log = scratch / "netcalc.log"
    with _server([*command, "--workers", str(options.workers)], env, log) as process:
        _wait_ready(_url(port, "/healthz"), process, log)
        token = _grant_and_save(port, body)
        workloads = _netcalc_workloads(port, body, token)
        results = [_measure(workload, options) for workload in workloads]
    return results, _log_notes(log)


def _netcalc_workloads(port: int, body: str, token: str) -> list[Workload]:
    return [
        Workload(
            "POST /api/auth/token",
            _url(port, "/api/auth/token"),
            "token.lua",
            {"BENCH_TOKEN_BODY": body},
        ),
        Workload(
            "GET /api/account/subnets",
            _url(port, "/api/account/subnets"),
            "account.lua",
            {"BENCH_TOKEN": token},
        ),
        Workload(
            "GET /api/ip/10.0.0.0/24", _url(port, "/api/ip/10.0.0.0/24"), "common.lua"
        ),
    ]


def _netcalc_env(scratch: Path) -> dict[str, str]:
    # Settings inherited from the caller's shell would make runs differ and
    # could point the benchmark at a real database: start from none.
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETCALC_")}
    env["NETCALC_DATABASE_URL"] = f"sqlite:///{scratch / 'bench.db'}"
    env["NETCALC_SECRET_KEY_FILE"] = str(scratch / "secret.key")
    return env


def _create_credentials(netcalc: str, env: dict[str, str]) -> dict[str, str]:
    """Create the account and credentials through the CLI; the grant's body."""
    password = secrets.token_urlsafe(24)
    create = [netcalc, "accounts", "create", EMAIL, "--password-stdin"]
    _run(create, env, CLI_SECONDS, stdin=password + "\n")
    issue = [netcalc, "credentials", "create", "--account", EMAIL, "--json"]
    created = json.loads(_run(issue, env, CLI_SECONDS))
    return {
        "client_id": created["client_id"],
        "client_secret": created["client_secret"],
        "grant_type": "client_credentials",
    }


def _run(
    command: list[str], env: dict[str, str], seconds: float, stdin: str = ""
) -> str:
    """Run a command to its end, within `seconds`; its stdout."""
    name = " ".join(Path(part).name for part in command[:3])
    try:
        done = subprocess.run(
            command,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=seconds,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"'{name}' did not finish in {seconds:.0f} s.") from None
    if done.returncode != 0:
        raise BenchError(f"'{name}' failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


@contextlib.contextmanager
def _server(
    command: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server for the block's length, then stop it and its workers."""
    with log.open("wb") as sink:
        # A session of its own: its process group holds the server and any
        # workers, so they can be killed together by the server's PID.
        process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a server started by `_server`: SIGTERM, then SIGKILL after 5 s."""
    process.terminate()
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        print(f"Server {process.pid} ignored SIGTERM; killing it.", file=sys.stderr)
    # Also reaches workers orphaned by a server that died before them.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=STOP_SECONDS)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _url(port: int, path: str) -> str:
    return f"http://{HOST}:{port}{path}"


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until `url` answers 200, the server exits, or time runs out."""
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(
                f"The server exited ({process.returncode}) before it was ready. "
                f"Its log ends:\n{_tail(log)}"
            )
        with contextlib.suppress(OSError):
            if _http("GET", url)[0] == 200:
                return
        time.sleep(0.1)
    raise BenchError(
        f"{url} did not answer 200 within {READY_SECONDS:.0f} s. "
        f"The server log ends:\n{_tail(log)}"
    )


def _tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


# No proxy: a proxy configured in the environment must not see bench traffic.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _http(
    method: str, url: str, body: str | None = None, token: str | None = None
) -> tuple[int, dict[str, Any]]:
    """One request to a server on HOST; the HTTP status and the JSON body."""
    if not url.startswith(f"http://{HOST}:"):
        raise BenchError(f"Refusing to send a request off loopback, to {url!r}.")
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = body.encode() if body is not None else None
    # S310: the scheme and host were checked above.
    request = urllib.request.Request(url, data, headers, method=method)  # noqa: S310
    try:
        with _OPENER.open(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _grant_and_save(port: int, body: str) -> str:
    """Get a token and save the bench subnet with it; the token."""
    status, answer = _http("POST", _url(port, "/api/auth/token"), body)
    if status != 200:
        raise BenchError(f"The token request answered {status}: {answer}.")
    token: str = answer["token"]["access_token"]
    url = _url(port, "/api/account/subnets")
    status, answer = _http("POST", url, json.dumps(SUBNET), token)
    if status != 200:
        raise BenchError(f"Saving the bench subnet answered {status}: {answer}.")
    return token


def _measure(workload: Workload, options: Options) -> Result:
    """Warm up, then measure one workload with wrk."""
    env = os.environ | workload.env | {"BENCH_LUA_DIR": str(BENCH_DIR)}
    command = [
        *("wrk", f"-t{options.threads}", f"-c{options.connections}", "--latency"),
        *("-s", str(BENCH_DIR / workload.script)),
    ]
    print(f"Measuring {workload.name} ...", file=sys.stderr)
    for seconds in (options.warmup, options.duration):
        output = _run(
            [*command, f"-d{seconds}s", workload.url],
            env,
            seconds + WRK_SLACK_SECONDS,
        )
    # Only the second run counts: the first warmed up the server.
    return _parse_wrk(workload.name, output)


def _parse_wrk(name: str, output: str) -> Result:
    """The figures of one wrk run, from the line `common.lua` prints."""
    line = re.search(r"^BENCH (.*)$", output, re.MULTILINE)
    if line is None:
        raise BenchError(f"wrk printed no BENCH line for {name!r}:\n{output}")
    figures = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line.group(1))}
    # wrk counts only statuses of 400 and up; the script counts every non-2xx.
    wrk_count = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if wrk_count and int(wrk_count.group(1)) > figures["non2xx"]:
        raise BenchError(
            f"The non-2xx counts of wrk and the script disagree:\n{output}"
        )
    return Result(
        name=name,
        requests_per_second=figures["requests"] / (figures["duration_us"] / 1e6),
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        non2xx=figures["non2xx"],
        socket_errors=sum(figures[k] for k in ("connect", "read", "write", "timeout")),
    )


def _log_notes(log: Path) -> list[str]:
    """What the netcalc server log says went wrong, in a line or a few."""
    failures = [
        line
        for line in log.read_text(errors="replace").splitlines()
        if ERROR_LINE.search(line)
    ]
    if not failures:
        return ["netcalc server log: no errors."]
    return [
        f"netcalc server log: {len(failures)} error lines; the first:",
        f"`{failures[0][:300]}`",
    ]


def _report(options: Options, results: list[Result], notes: list[str], wrk: str) -> str:
    """The Markdown report: machine, settings, the table, the notes."""
    floor = results[0].requests_per_second
    rows = [
        "| workload | workers | requests/s | p50 ms | p99 ms | non-2xx "
        "| socket errors | of floor |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    rows += [
        f"| {r.name} | {options.workers} | {r.requests_per_second:,.0f} "
        f"| {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.non2xx} | {r.socket_errors} "
        f"| {r.requests_per_second / floor:.0%} |"
        for r in results
    ]
    return "\n".join(
        [
            "## netcalc benchmark",
            "",
            f"- Machine: {_machine(wrk)}.",
            f"- Load: `wrk -t{options.threads} -c{options.connections} "
            f"-d{options.duration}s --latency` per workload, after a "
            f"{options.warmup} s warm-up; wrk and the server share the CPUs.",
            f"- Servers: {options.workers} uvicorn worker(s), uvloop, httptools, "
            "access log off, on 127.0.0.1; netcalc on SQLite, default settings.",
            "",
            *rows,
            "",
            *(f"- {note}" for note in notes),
        ]
    )


def _machine(wrk: str) -> str:
    version = subprocess.run(
        [wrk, "-v"], capture_output=True, text=True, timeout=10, check=False
    ).stdout.split()
    return (
        f"{len(os.sched_getaffinity(0))} CPUs (nproc), {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, "
        f"uvicorn {importlib.metadata.version('uvicorn')}, "
        f"netcalc {importlib.metadata.version('netcalc')}, "
        f"wrk {version[1] if len(version) > 1 else 'unknown'}"
    )


if __name__ == "__main__":
    sys.exit(main())
