"""The load generator: wrk runs against one server, or against several at once.

A workload names one URL per server instance. With one instance, one wrk
process gets all the threads and connections; with more, the connections
are split between one wrk process per instance, all started together, so
that every row puts the same total load on the system.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from processes import BENCH_DIR, STOP_SECONDS, BenchError, peak_rss_mb

WRK_SLACK_SECONDS = 30
"""Time allowed to wrk beyond its own duration before it is killed."""


@dataclass(frozen=True)
class Load:
    """How hard and how long wrk drives each workload."""

    duration: int
    warmup: int
    connections: int
    threads: int

    def shares(self, parts: int) -> list[tuple[int, int]]:
        """Threads and connections of each of `parts` wrk processes.

        The connections add up to `connections`; each process gets its share
        of the threads, at least one, and never more than its connections.
        """
        base, extra = divmod(self.connections, parts)
        counts = [base + (1 if i < extra else 0) for i in range(parts)]
        return [(max(1, min(self.threads // parts, c)), c) for c in counts]


FLOOR = "floor"
"""The `server` of the floor rows."""

SIGNING_FLOOR = "signing floor"
"""The `server` of the signing floor rows (`signing_floor.py`)."""

NETCALC = "netcalc"
"""The `server` of netcalc's rows."""

TOKEN = "token"
"""The `kind` of a token issuance row, which the ratios compare across servers."""


@dataclass(frozen=True)
class Workload:
    """One thing to measure: its URLs, one per instance, the wrk script, its env.

    `server` names what answers (netcalc, the floor or a peer, with its
    version), `workers` its processes per instance, and `kind` what is asked
    of it where rows of different servers compare.
    """

    name: str
    urls: tuple[str, ...]
    script: str
    backend: str
    env: dict[str, str] = field(default_factory=dict)
    workers: int = 1
    server: str = NETCALC
    kind: str = ""

    @property
    def instances(self) -> int:
        """How many servers answer this workload together."""
        return len(self.urls)


@dataclass(frozen=True)
class Result:
    """What wrk measured for one workload, summed over its instances.

    Requests per second are added up; the latencies are the worst of the
    instances', so a slow instance is not averaged away.
    """

    workload: Workload
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non2xx: int
    socket_errors: int
    per_instance: tuple[float, ...] = ()
    rss_mb: float | None = None


@dataclass
class Section:
    """What measuring one part of the run adds to the report."""

    results: list[Result] = field(default_factory=list)
    setup: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def count_instances(count: int) -> str:
    """'1 instance', '2 instances' and so on."""
    return "1 instance" if count == 1 else f"{count} instances"


def measure(
    workload: Workload,
    load: Load,
    pids: tuple[int, ...] = (),
    drained: Callable[[], None] | None = None,
) -> Result:
    """Warm up, then measure one workload with wrk.

    `pids` are the servers answering it; their workers' peak resident set,
    read once wrk is done, goes into the result. `drained`, if given, runs
    between the two and returns once the server answers again: a server
    slower than the warm-up's request rate still holds a queue of them.
    """
    workers = f"{workload.workers} worker" + ("s" if workload.workers > 1 else "")
    setup = f"{workload.backend}, {count_instances(workload.instances)}, {workers}"
    print(f"Measuring {workload.name} ({setup}) ...", file=sys.stderr)
    # Only the second run counts: the first warmed up the servers.
    run_wrk(workload, load, load.warmup)
    if drained is not None:
        drained()
    result = run_wrk(workload, load, load.duration)
    peaks = [peak for pid in pids if (peak := peak_rss_mb(pid)) is not None]
    return replace(result, rss_mb=max(peaks)) if peaks else result


def median_result(rounds: list[Result]) -> Result:
    """One row for a workload measured in several rounds: the median rate and
    latencies, every failure of every round, and the largest resident set."""
    rates = [r.requests_per_second for r in rounds]
    middle = rounds[rates.index(statistics.median_high(rates))]
    peaks = [r.rss_mb for r in rounds if r.rss_mb is not None]
    return replace(
        middle,
        p50_ms=statistics.median(r.p50_ms for r in rounds),
        p99_ms=statistics.median(r.p99_ms for r in rounds),
        non2xx=sum(r.non2xx for r in rounds),
        socket_errors=sum(r.socket_errors for r in rounds),
        rss_mb=max(peaks) if peaks else None,
    )


def run_wrk(workload: Workload, load: Load, seconds: int) -> Result:
    """One wrk run of `seconds` against every instance of the workload."""
    env = os.environ | workload.env | {"BENCH_LUA_DIR": str(BENCH_DIR)}
    script = str(BENCH_DIR / workload.script)
    runs = [
        [
            *("wrk", f"-t{threads}", f"-c{connections}", "--latency", "-s", script),
            *(f"-d{seconds}s", address),
        ]
        for (threads, connections), address in zip(
            load.shares(workload.instances), workload.urls, strict=True
        )
    ]
    outputs = _run_together(runs, env, seconds + WRK_SLACK_SECONDS)
    return _combine(workload, [_parse_wrk(workload, output) for output in outputs])


def _run_together(
    commands: list[list[str]], env: dict[str, str], seconds: float
) -> list[str]:
    """Start every command at once and wait for all within `seconds`; stdouts."""
    processes: list[subprocess.Popen[str]] = []
    try:
        for command in commands:
            processes.append(
                subprocess.Popen(
                    command,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        deadline = time.monotonic() + seconds
        return [_output(process, deadline, seconds) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=STOP_SECONDS)


def _output(process: subprocess.Popen[str], deadline: float, seconds: float) -> str:
    try:
        stdout, stderr = process.communicate(
            timeout=max(0.0, deadline - time.monotonic())
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish in {seconds:.0f} s.") from None
    if process.returncode != 0:
        raise BenchError(f"wrk failed ({process.returncode}): {stderr.strip()}")
    return stdout


def _parse_wrk(workload: Workload, output: str) -> Result:
    """The figures of one wrk run, from the line `common.lua` prints."""
    line = re.search(r"^BENCH (.*)$", output, re.MULTILINE)
    if line is None:
        raise BenchError(f"wrk printed no BENCH line for {workload.name!r}:\n{output}")
    figures = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line.group(1))}
    # wrk counts only statuses of 400 and up; the script counts every non-2xx.
    wrk_count = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if wrk_count and int(wrk_count.group(1)) > figures["non2xx"]:
        raise BenchError(
            f"The non-2xx counts of wrk and the script disagree:\n{output}"
        )
    return Result(
        workload=workload,
        requests_per_second=figures["requests"] / (figures["duration_us"] / 1e6),
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        non2xx=figures["non2xx"],
        socket_errors=sum(figures[k] for k in ("connect", "read", "write", "timeout")),
    )


def _combine(workload: Workload, parts: list[Result]) -> Result:
    """One result for the workload from its instances' wrk runs."""
    return Result(
        workload=workload,
        requests_per_second=sum(part.requests_per_second for part in parts),
        p50_ms=max(part.p50_ms for part in parts),
        p99_ms=max(part.p99_ms for part in parts),
        non2xx=sum(part.non2xx for part in parts),
        socket_errors=sum(part.socket_errors for part in parts),
        per_instance=tuple(part.requests_per_second for part in parts),
    )
