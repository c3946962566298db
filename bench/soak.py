"""The soak: netcalc under steady load for minutes, its memory read each minute.

A server that keeps something of every token it issues or verifies grows
until it is restarted. The soak runs `soak.lua` (each wrk thread fetches a
token, uses it for 100 account calls, and fetches the next) against netcalc
on SQLite with the side-by-side worker count, in one-minute wrk runs, and
reads each worker's resident set (VmRSS) after every minute.
"""

from __future__ import annotations

import sys
from pathlib import Path

from instances import deploy, sqlite_env
from loadgen import Load, Result, Section, run_wrk
from peer_servers import WORKERS
from processes import worker_rss_mb
from report import NETCALC_ERROR, log_notes

MINUTE = 60
"""Seconds of each wrk run between two readings of memory."""


def soak(load: Load, minutes: int, scratch: Path) -> Section:
    """Run the soak for `minutes`; what it found, as report lines."""
    folder = scratch / "soak"
    folder.mkdir()
    with deploy("SQLite", sqlite_env(folder), 1, WORKERS, folder / "logs") as d:
        workload = d.soak_workload()
        run_wrk(workload, load, load.warmup)
        runs: list[Result] = []
        readings: list[list[float]] = []
        for minute in range(1, minutes + 1):
            print(f"Soak, minute {minute} of {minutes} ...", file=sys.stderr)
            runs.append(run_wrk(workload, load, MINUTE))
            readings.append(worker_rss_mb(d.pids[0]))
    lines = [_summary(minutes, runs), *_memory(readings)]
    label = f"netcalc log, soak, {WORKERS} workers"
    return Section(notes=[*lines, *log_notes(label, d.logs, NETCALC_ERROR)])


def _summary(minutes: int, runs: list[Result]) -> str:
    rate = sum(r.requests_per_second for r in runs) / len(runs)
    failed = sum(r.non2xx + r.socket_errors for r in runs)
    worst = max(r.p99_ms for r in runs)
    length = f"{minutes} minute" + ("s" if minutes > 1 else "")
    return (
        f"Soak: {length} of `soak.lua` (a new token per 100 account "
        f"calls, each thread) on SQLite with {WORKERS} workers: {rate:,.0f} "
        f"requests/s on average, {failed} failed or errored, worst minute's p99 "
        f"{worst:.1f} ms."
    )


def _memory(readings: list[list[float]]) -> list[str]:
    """One line per worker: its RSS after each minute, and first to last."""
    lines = []
    for number, sizes in enumerate(zip(*readings, strict=False), start=1):
        series = ", ".join(f"{size:.1f}" for size in sizes)
        change = sizes[-1] - sizes[0]
        lines.append(
            f"Soak, worker {number} RSS after each minute (MiB): {series}; "
            f"last minus first {change:+.1f} MiB."
        )
    return lines
