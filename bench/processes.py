"""Processes and requests of the benchmark, all bounded in time, all on loopback.

Commands run to their end within a deadline; servers run for the length of a
`with` block in a session of their own, so that stopping one by its PID also
stops its workers. Requests go only to 127.0.0.1.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
"""The only address this benchmark ever sends traffic to."""

READY_SECONDS = 30.0
"""How long a server may take to answer its first request."""

STOP_SECONDS = 5.0
"""How long a server may take to exit after SIGTERM before it is killed."""


BENCH_DIR = Path(__file__).resolve().parent
"""Where the floor apps and the wrk scripts live."""


def bare_app_command(target: str, port: int, workers: int) -> list[str]:
    """The command serving the bench app `target` (`module:app`) on HOST:`port`."""
    return [
        *(sys.executable, "-m", "uvicorn", target, "--app-dir", str(BENCH_DIR)),
        *("--host", HOST, "--port", str(port), "--workers", str(workers)),
        # netcalc's own protocol (httptools with its bounds and gathered
        # writes), so that a floor differs from netcalc only in the app.
        *("--loop", "uvloop", "--http", "netcalc.http_limits:LimitedHttpProtocol"),
        # As `netcalc serve` runs when it trusts no proxy, its default.
        *("--no-access-log", "--no-proxy-headers"),
        *("--no-server-header", "--log-level", "warning", "--timeout-keep-alive", "30"),
    ]


class BenchError(Exception):
    """The benchmark could not run; the message says what went wrong."""


def run_command(
    command: list[str], env: dict[str, str] | None, seconds: float, stdin: str = ""
) -> str:
    """Run a command to its end, within `seconds`; its stdout.

    Raises:
        BenchError: the command timed out or exited with a non-zero status.
    """
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
def server(
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
            stop(process)


def stop(process: subprocess.Popen[Any]) -> None:
    """Stop a process started in its own session: SIGTERM, then SIGKILL."""
    process.terminate()
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        print(f"Process {process.pid} ignored SIGTERM; killing it.", file=sys.stderr)
    # Also reaches workers orphaned by a server that died before them.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=STOP_SECONDS)


def free_port() -> int:
    """A TCP port of HOST that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def url(port: int, path: str) -> str:
    """The URL of `path` on the server listening on HOST:`port`."""
    return f"http://{HOST}:{port}{path}"


def wait_until(
    ready: Callable[[], bool],
    process: subprocess.Popen[bytes],
    log: Path,
    what: str,
    seconds: float = READY_SECONDS,
) -> None:
    """Wait until `ready()` is true, the server exits, or `seconds` pass.

    Raises:
        BenchError: the server exited or was not ready in time; the message
            ends with the tail of its log.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(
                f"The server exited ({process.returncode}) before it was ready. "
                f"Its log ends:\n{tail(log)}"
            )
        with contextlib.suppress(OSError):
            if ready():
                return
        time.sleep(0.1)
    raise BenchError(
        f"{what} did not happen within {seconds:.0f} s. "
        f"The server log ends:\n{tail(log)}"
    )


def wait_http(
    address: str,
    process: subprocess.Popen[bytes],
    log: Path,
    seconds: float = READY_SECONDS,
) -> None:
    """Wait until `address` answers 200; see `wait_until`."""
    wait_until(
        lambda: http("GET", address)[0] == 200,
        process,
        log,
        f"{address} answering 200",
        seconds,
    )


def tail(log: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log file."""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


# No proxy: a proxy configured in the environment must not see bench traffic.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(
    method: str, address: str, body: str | None = None, token: str | None = None
) -> tuple[int, dict[str, Any]]:
    """One request to a server on HOST; the HTTP status and the JSON body."""
    if not address.startswith(f"http://{HOST}:"):
        raise BenchError(f"Refusing to send a request off loopback, to {address!r}.")
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = body.encode() if body is not None else None
    # S310: the scheme and host were checked above.
    request = urllib.request.Request(address, data, headers, method=method)  # noqa: S310
    try:
        with _OPENER.open(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def basic_credentials(client_id: str, client_secret: str) -> str:
    """The value after `Basic ` for a client (RFC 6749 §2.3.1)."""
    # The RFC form-encodes both parts first; these ids and secrets are
    # URL-safe already, so the encoding would change nothing.
    pair = f"{client_id}:{client_secret}".encode()
    return base64.b64encode(pair).decode()


def form_post(
    address: str, form: str, basic: str, seconds: float = 10.0
) -> tuple[int, dict[str, Any]]:
    """POST a form with HTTP Basic auth to a server on HOST; status and JSON body.

    A body that is not JSON, such as an HTML error page, reads as `{}`.
    """
    if not address.startswith(f"http://{HOST}:"):
        raise BenchError(f"Refusing to send a request off loopback, to {address!r}.")
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Authorization": f"Basic {basic}",
    }
    # S310: the scheme and host were checked above.
    request = urllib.request.Request(  # noqa: S310
        address, form.encode(), headers, method="POST"
    )
    try:
        with _OPENER.open(request, timeout=seconds) as answer:
            return answer.status, _json_or_empty(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, _json_or_empty(error.read())


def _json_or_empty(raw: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def peak_rss_mb(pid: int) -> float | None:
    """The largest peak resident set (VmHWM) among a server's workers, in MiB.

    The workers are the server's child processes; a server without any is
    its own worker. None when the kernel does not say (the process is gone).
    """
    peaks = [peak for p in _workers(pid) if (peak := _status_kib(p, "VmHWM"))]
    return max(peaks) / 1024 if peaks else None


def worker_rss_mb(pid: int) -> list[float]:
    """The resident set (VmRSS) of each of a server's workers now, in MiB."""
    sizes = [_status_kib(p, "VmRSS") for p in _workers(pid)]
    return [size / 1024 for size in sizes if size is not None]


def _workers(pid: int) -> list[int]:
    """A server's child processes; a server without any is its own worker.

    Python's multiprocessing resource tracker is a child too, but no worker.
    """
    children = [
        child
        for child in _all_pids()
        if _parent(child) == pid and b"resource_tracker" not in _command(child)
    ]
    return children or [pid]


def _command(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _all_pids() -> list[int]:
    return [
        int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()
    ]


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name, in parentheses, may hold spaces: split after it.
    return int(stat.rsplit(")", 1)[1].split()[1])


def _status_kib(pid: int, field: str) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) if found else None
