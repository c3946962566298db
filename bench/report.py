"""The Markdown report: the machine, the settings, the table, the notes."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path

from loadgen import FLOOR, NETCALC, SIGNING_FLOOR, TOKEN, Load, Result

NETCALC_ERROR = re.compile(r'Traceback|"level": "(error|critical)"|^(ERROR|CRITICAL):')
"""A netcalc log line that reports a failure, in structlog's or uvicorn's form."""

POSTGRES_ERROR = re.compile(r"\b(ERROR|FATAL|PANIC):")
"""A PostgreSQL log line that reports a failure."""


def report(
    load: Load,
    results: list[Result],
    setup: list[str],
    notes: list[str],
    counted: list[str],
    wrk: str,
) -> str:
    """The whole report; `results` starts with the floor, `counted` holds
    the instruction counts' lines, if they were taken."""
    against = _against_peers(results)
    return "\n".join(
        [
            "## netcalc benchmark",
            "",
            f"- Machine: {_machine(wrk)}.",
            *_load_lines(load, results),
            "- netcalc and the floor: uvicorn with uvloop and netcalc's httptools "
            "protocol (its connection bounds, one write per response), access log "
            "and proxy headers off, the worker count of each row, on 127.0.0.1; "
            "netcalc default settings. The token endpoints, introspection, the "
            "subnet list and the calculator are answered before FastAPI's routing "
            "(`netcalc.direct`).",
            *(f"- {line}" for line in setup),
            "",
            *_table(results),
            "",
            *([*against, ""] if against else []),
            *(f"- {note}" for note in [*_comparisons(results), *notes]),
            *(["", *counted] if counted else []),
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


def _table(results: list[Result]) -> list[str]:
    rows = [
        "| workload | server | database | instances | workers | requests/s | p50 ms "
        "| p99 ms | failed | socket errors | peak RSS/worker MiB | of floor |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    rows += [
        f"| {r.workload.name} | {r.workload.server} | {r.workload.backend} "
        f"| {r.workload.instances} | {r.workload.workers} "
        f"| {r.requests_per_second:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} "
        f"| {r.non2xx} | {r.socket_errors} | {_mib(r.rss_mb)} "
        f"| {r.requests_per_second / _floor(results, r.workload.workers):.1%} |"
        for r in results
    ]
    return rows


def _mib(rss_mb: float | None) -> str:
    return "n/a" if rss_mb is None else f"{rss_mb:.0f}"


def _floor(results: list[Result], workers: int) -> float:
    """The floor's requests/s with `workers` workers, else the first floor's."""
    return _floor_row(results, workers).requests_per_second


def _floor_row(results: list[Result], workers: int) -> Result:
    floors = [r for r in results if r.workload.server == FLOOR]
    same = [r for r in floors if r.workload.workers == workers]
    return (same or floors)[0]


def _against_peers(results: list[Result]) -> list[str]:
    """netcalc's token rows as multiples of each peer's and of the floor."""
    peers = [
        r
        for r in results
        if r.workload.server not in (NETCALC, FLOOR) and r.workload.kind == TOKEN
    ]
    workers = {r.workload.workers for r in peers}
    ours = [
        r
        for r in results
        if r.workload.server == NETCALC
        and r.workload.kind == TOKEN
        and r.workload.instances == 1
        and r.workload.workers in workers
    ]
    if not peers or not ours:
        return []
    floor = _floor_row(results, ours[0].workload.workers)
    head = ["against", "its requests/s", *(_column(r) for r in ours)]
    rows = [f"| {' | '.join(head)} |", f"|---|{'--:|' * (len(head) - 1)}"]
    for base in (floor, *_signing_floors(results, floor.workload.workers)):
        label = f"{base.workload.server}, {base.workload.workers} workers"
        rows.append(_ratio_row(label, base, ours, share=True))
    rows += [_ratio_row(_short(p), p, ours, share=False) for p in peers]
    return [
        "netcalc's token issuance against the floors (as a share of their "
        "requests/s) and against each peer (as a multiple: above 1 means netcalc "
        "answered more):",
        "",
        *rows,
    ]


def _signing_floors(results: list[Result], workers: int) -> list[Result]:
    return [
        r
        for r in results
        if r.workload.server == SIGNING_FLOOR and r.workload.workers == workers
    ]


def _column(result: Result) -> str:
    w = result.workload
    return f"netcalc {w.name}, {w.backend}, {w.workers} workers"


def _ratio_row(label: str, base: Result, ours: list[Result], share: bool) -> str:
    """One `against` row: each netcalc row as a share or a multiple of `base`."""
    theirs = base.requests_per_second
    cells = [
        f"{r.requests_per_second / theirs:.1%}"
        if share
        else _multiple(r.requests_per_second, theirs)
        for r in ours
    ]
    return f"| {label} | {theirs:,.0f} | {' | '.join(cells)} |"


def _multiple(ours: float, theirs: float) -> str:
    # A peer that answered nothing in time has no finite multiple.
    return f"{ours / theirs:.2f}x" if theirs else "n/a (peer: 0 requests/s)"


def _short(result: Result) -> str:
    """A peer's column title: its program and setup, without versions."""
    return f"{result.workload.server.split(' ')[0]}: {result.workload.name}"


def _comparisons(all_results: list[Result]) -> list[str]:
    """Each backend against the first, then more instances against one.

    Only netcalc's rows with the worker count of the first netcalc row.
    """
    netcalc = [r for r in all_results if r.workload.server == NETCALC]
    if not netcalc:
        return []
    results = [r for r in netcalc if r.workload.workers == netcalc[0].workload.workers]
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
