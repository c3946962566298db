"""The Markdown report: the machine, the settings, the table, the notes."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path

from loadgen import Load, Result

NETCALC_ERROR = re.compile(r'Traceback|"level": "(error|critical)"|^(ERROR|CRITICAL):')
"""A netcalc log line that reports a failure, in structlog's or uvicorn's form."""

POSTGRES_ERROR = re.compile(r"\b(ERROR|FATAL|PANIC):")
"""A PostgreSQL log line that reports a failure."""


def report(
    load: Load,
    workers: int,
    results: list[Result],
    setup: list[str],
    notes: list[str],
    wrk: str,
) -> str:
    """The whole report; `results` starts with the floor."""
    return "\n".join(
        [
            "## netcalc benchmark",
            "",
            f"- Machine: {_machine(wrk)}.",
            *_load_lines(load, results),
            f"- Servers: {workers} uvicorn worker(s) per instance, uvloop, "
            "httptools, access log off, on 127.0.0.1; netcalc default settings.",
            *(f"- {line}" for line in setup),
            "",
            *_table(workers, results),
            "",
            *(f"- {note}" for note in [*_comparisons(results[1:]), *notes]),
        ]
    )


def _load_lines(load: Load, results: list[Result]) -> list[str]:
    lines = [
        f"- Load: `wrk -t{load.threads} -c{load.connections} -d{load.duration}s "
        f"--latency` per workload, after a {load.warmup} s warm-up; wrk and the "
        "servers share the CPUs."
    ]
    counts = sorted({r.workload.instances for r in results} - {1})
    for count in counts:
        each = ", ".join(f"`wrk -t{t} -c{c}`" for t, c in load.shares(count))
        lines.append(
            f"- {count} instances: {each} at once, one per instance; requests/s "
            "are summed, p50 and p99 are the worst instance's."
        )
    return lines


def _table(workers: int, results: list[Result]) -> list[str]:
    floor = results[0].requests_per_second
    rows = [
        "| workload | database | instances | workers | requests/s | p50 ms "
        "| p99 ms | non-2xx | socket errors | of floor |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    rows += [
        f"| {r.workload.name} | {r.workload.backend} | {r.workload.instances} "
        f"| {workers} | {r.requests_per_second:,.0f} | {r.p50_ms:.2f} "
        f"| {r.p99_ms:.2f} | {r.non2xx} | {r.socket_errors} "
        f"| {r.requests_per_second / floor:.0%} |"
        for r in results
    ]
    return rows


def _comparisons(results: list[Result]) -> list[str]:
    """Each backend against the first, then more instances against one."""
    backends = list(dict.fromkeys(r.workload.backend for r in results))
    lines = []
    for backend in backends[1:]:
        if text := _ratios(results, backend, 1, backends[0]):
            lines.append(f"{backend} against {backends[0]}, one instance each: {text}.")
    for backend in backends:
        counts = {
            r.workload.instances for r in results if r.workload.backend == backend
        }
        for count in sorted(counts - {1}):
            if text := _ratios(results, backend, count, backend):
                lines.append(f"{count} instances against one, {backend}: {text}.")
    return lines


def _ratios(results: list[Result], backend: str, instances: int, base: str) -> str:
    """`workload N.NNx` for each row of `backend` with `instances`, as a
    multiple of the same workload's one-instance row on `base`."""
    bases = {
        r.workload.name: r.requests_per_second
        for r in results
        if r.workload.backend == base and r.workload.instances == 1
    }
    parts = []
    for r in results:
        w = r.workload
        if w.backend != backend or w.instances != instances or w.name not in bases:
            continue
        part = f"{w.name} {r.requests_per_second / bases[w.name]:.2f}x"
        if instances > 1:
            each = " + ".join(f"{rate:,.0f}" for rate in r.per_instance)
            part += f" ({each} requests/s)"
        parts.append(part)
    return "; ".join(parts)


def log_notes(label: str, logs: Iterable[Path], pattern: re.Pattern[str]) -> list[str]:
    """What the logs say went wrong, in a line or two."""
    failures = [
        line
        for log in logs
        for line in log.read_text(errors="replace").splitlines()
        if pattern.search(line)
    ]
    if not failures:
        return [f"{label}: no errors."]
    return [
        f"{label}: {len(failures)} error lines; the first:",
        f"`{failures[0][:300]}`",
    ]


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
