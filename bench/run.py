"""Load-test netcalc and its peers on loopback with wrk; print a Markdown table.

Run it as `make bench` or `.venv/bin/python bench/run.py [--duration 10]`.
It measures the bare floor app (`bench/floor.py`), then netcalc on a scratch
SQLite file, then netcalc on a throwaway PostgreSQL and Redis with one
instance and with two. Then, side by side with WORKERS processes each:
the floor, netcalc on SQLite, and unless `--no-peers`, the peers'
token endpoints (`peer_servers.py`); with `--soak-minutes`, last, the soak
(`soak.py`). Every server listens on a free port of 127.0.0.1; every one
it starts is stopped, and the scratch folder removed, however the run ends.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import datastores
import instructions
import peer_install
from instances import deploy, shared_env, sqlite_env
from loadgen import (
    FLOOR,
    SIGNING_FLOOR,
    Load,
    Result,
    Section,
    Workload,
    count_instances,
    measure,
    median_result,
)
from peer_servers import WORKERS, bench_peers
from processes import BenchError, bare_app_command, free_port, server, url, wait_http
from report import NETCALC_ERROR, POSTGRES_ERROR, log_notes, report
from soak import soak

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
BACKENDS = (SQLITE, POSTGRESQL)
"""The `--backends` names, in the order they are measured."""

SCALED_OUT = 2
"""How many instances the scaled-out PostgreSQL rows run."""

SIDE_BY_SIDE_ROUNDS = 5
"""How many times the side-by-side floor and netcalc rows are measured. On
this shared machine one round's share of the floor has ranged over ten
points or more, so a median of three still moved by several from run to
run."""

CONNECTIONS_PER_PROCESS = 28
"""PostgreSQL connections one netcalc process may hold: netcalc.db's engine
pool of 10 plus SQLAlchemy's default overflow of 10, and the 8 of the hot
reads' own connections (netcalc.db.POSTGRES_READ_CONNECTIONS)."""


@dataclass(frozen=True)
class Options:
    """The command-line settings of one run."""

    load: Load
    workers: int
    backends: tuple[str, ...]
    peers: bool
    instructions: bool
    soak_minutes: int
    notes: tuple[str, ...]
    output: Path | None


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
    add(
        "--peers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="install (once, cached under /tmp) and measure the peers",
    )
    add(
        "--instructions",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="count each request's instructions under callgrind (needs valgrind)",
    )
    add(
        "--soak-minutes",
        type=int,
        default=0,
        help="then run the soak this long, reading memory each minute (0: no soak)",
    )
    add(
        "--note",
        action="append",
        default=[],
        help="a line for the report about this run, such as what else was running",
    )
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
    if args.soak_minutes < 0:
        parser.error("--soak-minutes must be 0 (no soak) or more.")
    return Options(
        load,
        args.workers,
        args.backends,
        args.peers,
        args.instructions,
        args.soak_minutes,
        tuple(args.note),
        args.output,
    )


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
    if options.instructions:
        instructions.check_installed()
    # Installed first, so that no install competes with a measurement.
    installed = _install_peers() if options.peers else None
    # Work already running competes with wrk and the servers for the CPUs.
    busy = (
        f"1-minute load average just before the measurements: "
        f"{os.getloadavg()[0]:.2f} on {len(os.sched_getaffinity(0))} CPUs; other "
        "work on the machine lowers every row."
    )
    with tempfile.TemporaryDirectory(prefix="netcalc-bench-") as name:
        scratch = Path(name)
        floor = _bench_floor(options.load, options.workers, scratch / "floor.log")
        sections = [
            _bench_sqlite(options, scratch)
            if backend == SQLITE
            else _bench_postgres(options, scratch)
            for backend in options.backends
        ]
        sections.append(_bench_side_by_side(options, scratch))
        if installed is not None:
            sections.append(bench_peers(installed, options.load, scratch))
        counted = (
            instructions.count_instructions(scratch) if options.instructions else []
        )
        if options.soak_minutes:
            sections.append(soak(options.load, options.soak_minutes, scratch))
    return report(
        options.load,
        [floor, *(r for s in sections for r in s.results)],
        [busy, *options.notes, *(line for s in sections for line in s.setup)],
        [note for s in sections for note in s.notes],
        counted,
        wrk,
    )


def _install_peers() -> peer_install.Installed:
    try:
        return peer_install.install()
    except BenchError as error:
        raise BenchError(
            f"{error} Installing the peers failed; fix that, or measure netcalc "
            "alone with --no-peers."
        ) from error


def _bench_floor(load: Load, workers: int, log: Path) -> Result:
    with _floor(workers, log) as measure_floor:
        return measure_floor(load)


def _floor(
    workers: int, log: Path
) -> contextlib.AbstractContextManager[Callable[[Load], Result]]:
    """The floor app served for the block's length; yields its measurement."""
    floor = Workload(
        'floor: bare ASGI {"status":"OK"}',
        (),
        "common.lua",
        "none",
        workers=workers,
        server=FLOOR,
    )
    return _bare_app("floor:app", floor, log)


def _signing_floor(
    workers: int, log: Path, token_body: str
) -> contextlib.AbstractContextManager[Callable[[Load], Result]]:
    """The signing floor app served for the block's length, sent the same
    token requests as netcalc; yields its measurement."""
    signing_floor = Workload(
        "floor + signature: bare ASGI, a new ES256 token each",
        (),
        "token.lua",
        "none",
        env={"BENCH_TOKEN_BODY": token_body},
        workers=workers,
        server=SIGNING_FLOOR,
    )
    return _bare_app("signing_floor:app", signing_floor, log)


@contextlib.contextmanager
def _bare_app(
    target: str, workload: Workload, log: Path
) -> Iterator[Callable[[Load], Result]]:
    """The bench app `target` served on netcalc's stack for the block's
    length; yields the measurement of `workload` against it."""
    port = free_port()
    command = bare_app_command(target, port, workload.workers)
    with server(command, dict(os.environ), log) as process:
        address = url(port, "/")
        wait_http(address, process, log)
        served = replace(workload, urls=(address,))
        yield partial(measure, served, pids=(process.pid,))


def _bench_sqlite(options: Options, scratch: Path) -> Section:
    """netcalc on one SQLite file, one instance: every workload."""
    env = sqlite_env(scratch)
    logs = scratch / "sqlite-logs"
    with deploy("SQLite", env, 1, options.workers, logs) as deployment:
        results = [
            deployment.measure(w, options.load) for w in deployment.workloads(True)
        ]
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
                    deployment.measure(w, options.load)
                    for w in deployment.workloads(False)
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


def _bench_side_by_side(options: Options, scratch: Path) -> Section:
    """The floor and netcalc on SQLite with the peers' worker count.

    netcalc's token endpoints, account API, introspection and a mix of
    tokens and account calls, on a database of their own.
    """
    folder = scratch / "side-by-side"
    folder.mkdir()
    env = sqlite_env(folder)
    with (
        _floor(WORKERS, folder / "floor.log") as measure_floor,
        deploy("SQLite", env, 1, WORKERS, folder / "logs") as deployment,
        _signing_floor(
            WORKERS, folder / "signing-floor.log", deployment.token_body
        ) as measure_signing_floor,
    ):
        workloads = deployment.workloads(False) + deployment.oauth_workloads()
        # In turns, so that the machine's drift during the run reaches the
        # floors and each workload alike; each row is then a median.
        rounds = [
            [
                measure_floor(options.load),
                measure_signing_floor(options.load),
                *(deployment.measure(w, options.load) for w in workloads),
            ]
            for _ in range(SIDE_BY_SIDE_ROUNDS)
        ]
    floor, *results = [median_result(list(row)) for row in zip(*rounds, strict=True)]
    return Section(
        [floor, *results],
        [
            f"Side by side: the floor and netcalc also run with {WORKERS} workers, "
            "like every peer, so that each server uses both cores the same way; "
            "netcalc on a fresh SQLite file. So does the signing floor "
            "(`bench/signing_floor.py`): the floor app, sent netcalc's token "
            "requests, answering each with a new ES256 token from netcalc's own "
            "issuing code and doing nothing else. The mix sends one POST "
            "/oauth2/token per 100 GET /api/account/subnets in each wrk thread. "
            f"These rows are medians of {SIDE_BY_SIDE_ROUNDS} rounds, each "
            "measuring the floor, the signing floor, then every netcalc workload "
            "in turn (failures and socket errors are summed, peak RSS is the "
            "largest); the peers are measured once each."
        ],
        [
            _shares_by_round(rounds),
            *log_notes(
                f"netcalc log, SQLite, {WORKERS} workers",
                deployment.logs,
                NETCALC_ERROR,
            ),
        ],
    )


def _shares_by_round(rounds: list[list[Result]]) -> str:
    """Each workload's share of the floor, round by round, so that the
    spread behind a median row shows."""
    floors = [row[0].requests_per_second for row in rounds]
    shares = []
    for measured in zip(*(row[1:] for row in rounds), strict=True):
        percents = ", ".join(
            f"{result.requests_per_second / floor:.1%}"
            for result, floor in zip(measured, floors, strict=True)
        )
        shares.append(f"{measured[0].workload.name} {percents}")
    return (
        "Side by side, each round's share of that round's floor, in order: "
        + "; ".join(shares)
        + "."
    )


if __name__ == "__main__":
    sys.exit(main())
