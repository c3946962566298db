"""Load-test netcalc on loopback with wrk and print a Markdown table.

Run it as `make bench` or `.venv/bin/python bench/run.py [--duration 10]`.
It measures the bare floor app (`bench/floor.py`), then netcalc on a scratch
SQLite file, then netcalc on a throwaway PostgreSQL and Redis with one
instance and with two. Every server listens on a free port of 127.0.0.1;
every one it starts is stopped, and the scratch folder removed, however the
run ends.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import datastores
from instances import deploy, shared_env, sqlite_env
from loadgen import BENCH_DIR, Load, Result, Workload, count_instances, measure
from processes import HOST, BenchError, free_port, server, url, wait_http
from report import NETCALC_ERROR, POSTGRES_ERROR, log_notes, report

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
BACKENDS = (SQLITE, POSTGRESQL)
"""The `--backends` names, in the order they are measured."""

SCALED_OUT = 2
"""How many instances the scaled-out PostgreSQL rows run."""

CONNECTIONS_PER_PROCESS = 20
"""PostgreSQL connections one netcalc process may hold: netcalc.db's pool of
10 plus SQLAlchemy's default overflow of 10."""


@dataclass(frozen=True)
class Options:
    """The command-line settings of one run."""

    load: Load
    workers: int
    backends: tuple[str, ...]
    output: Path | None


@dataclass
class Section:
    """What measuring one part of the run adds to the report."""

    results: list[Result] = field(default_factory=list)
    setup: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the report; return the exit status."""
    options = _parse(argv)
    # Turned into an exception so that the cleanup below runs on SIGTERM too.
    signal.signal(signal.SIGTERM, _raise_exit)
    try:
        text = run(options)
    except BenchError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted; servers stopped.", file=sys.stderr)
        return 130
    print(text)
    if options.output:
        options.output.write_text(text + "\n")
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
    add("--backends", type=_backends, default=",".join(BACKENDS), help="databases")
    add("--output", type=Path, help="also write the Markdown report to this file")
    args = parser.parse_args(argv)
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads: wrk needs one each.")
    if POSTGRESQL in args.backends and args.connections < SCALED_OUT:
        parser.error(
            f"--connections must be at least {SCALED_OUT} with PostgreSQL: each "
            "of its scaled-out instances needs a connection of its own."
        )
    load = Load(args.duration, args.warmup, args.connections, args.threads)
    return Options(load, args.workers, args.backends, args.output)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer.")
    return value


def _backends(text: str) -> tuple[str, ...]:
    names = {name.strip().lower() for name in text.split(",") if name.strip()}
    unknown = sorted(names - set(BACKENDS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"{text!r} names no backend or an unknown one; give a comma-separated "
            f"list of {', '.join(BACKENDS)}."
        )
    return tuple(name for name in BACKENDS if name in names)


def run(options: Options) -> str:
    """Measure the floor, then netcalc on each backend; the Markdown report."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError("wrk is not installed; install the Debian package 'wrk'.")
    if POSTGRESQL in options.backends:
        datastores.check_installed()
    # Work already running competes with wrk and the servers for the CPUs.
    busy = (
        f"1-minute load average before the run: {os.getloadavg()[0]:.2f}; "
        "other work on the machine lowers every row."
    )
    with tempfile.TemporaryDirectory(prefix="netcalc-bench-") as name:
        scratch = Path(name)
        floor = _bench_floor(options, scratch)
        sections = [
            _bench_sqlite(options, scratch)
            if backend == SQLITE
            else _bench_postgres(options, scratch)
            for backend in options.backends
        ]
    return report(
        options.load,
        options.workers,
        [floor, *(r for s in sections for r in s.results)],
        [busy, *(line for s in sections for line in s.setup)],
        [note for s in sections for note in s.notes],
        wrk,
    )


def _bench_floor(options: Options, scratch: Path) -> Result:
    port = free_port()
    command = [
        *(sys.executable, "-m", "uvicorn", "floor:app", "--app-dir", str(BENCH_DIR)),
        *("--host", HOST, "--port", str(port), "--workers", str(options.workers)),
        *("--loop", "uvloop", "--http", "httptools", "--no-access-log"),
        *("--no-server-header", "--log-level", "warning", "--timeout-keep-alive", "30"),
    ]
    log = scratch / "floor.log"
    with server(command, dict(os.environ), log) as process:
        address = url(port, "/")
        wait_http(address, process, log)
        floor = Workload(
            'floor: bare ASGI {"status":"OK"}', (address,), "common.lua", "none"
        )
        return measure(floor, options.load)


def _bench_sqlite(options: Options, scratch: Path) -> Section:
    """netcalc on one SQLite file, one instance: every workload."""
    env = sqlite_env(scratch)
    logs = scratch / "sqlite-logs"
    with deploy("SQLite", env, 1, options.workers, logs) as deployment:
        results = [measure(w, options.load) for w in deployment.workloads(True)]
    where = datastores.filesystem(scratch)
    return Section(
        results,
        [f"SQLite: one file on {where}, WAL, synchronous=NORMAL (netcalc's pragmas)."],
        log_notes("netcalc log, SQLite", deployment.logs, NETCALC_ERROR),
    )


def _bench_postgres(options: Options, scratch: Path) -> Section:
    """netcalc on PostgreSQL and Redis with one instance, then scaled out."""
    section = Section()
    # Every instance's pool may fill at once, plus room for the setup CLI.
    needed = SCALED_OUT * options.workers * CONNECTIONS_PER_PROCESS + 20
    secret_key = secrets.token_urlsafe(48)
    with (
        datastores.postgres(scratch / "postgres", max(100, needed)) as cluster,
        datastores.redis(scratch / "redis") as redis_url,
    ):
        section.setup.append(f"{cluster.describe()}.")
        for count in (1, SCALED_OUT):
            # A fresh database each, so the second run reads no rows of the first.
            database_url = cluster.create_database(f"netcalc_{count}")
            env = shared_env(database_url, redis_url, secret_key)
            backend, logs = "PostgreSQL + Redis", scratch / f"postgresql-{count}-logs"
            with deploy(backend, env, count, options.workers, logs) as deployment:
                section.results += [
                    measure(w, options.load) for w in deployment.workloads(False)
                ]
            label = f"netcalc logs, PostgreSQL, {count_instances(count)}"
            section.notes += log_notes(label, deployment.logs, NETCALC_ERROR)
    section.setup.append(
        f"Redis {datastores.redis_version()}, persistence off. The {SCALED_OUT}-"
        "instance rows share one database, one Redis and one NETCALC_SECRET_KEY; "
        "each instance count gets a fresh database."
    )
    postgres_log = [scratch / "postgres" / "postgres.log"]
    section.notes += log_notes("PostgreSQL log", postgres_log, POSTGRES_ERROR)
    return section


if __name__ == "__main__":
    sys.exit(main())
