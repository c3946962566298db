"""Throwaway PostgreSQL and Redis servers for the benchmark, on loopback ports.

Both run from the installed binaries in the run's scratch folder and stop
when their `with` block ends. PostgreSQL keeps its default durability (fsync,
synchronous_commit and full_page_writes on), unlike the test suite's cluster
in `tests/services.py`, so that its figures resemble a production server's.
Redis holds only rate-limit counters and revocation messages, which netcalc
does not need to survive a restart, so its persistence is off.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from processes import HOST, BenchError, free_port, run_command, server, wait_until

POSTGRES_USER = "postgres"
"""The system user that owns the cluster when the benchmark runs as root."""

POSTGRES_SECONDS = 120.0
"""How long initdb, pg_ctl or a client command may run."""

SETTINGS_QUERY = (
    "SELECT 'PostgreSQL ' || current_setting('server_version') || ': ' || "
    "string_agg(n || '=' || current_setting(n), ', ' ORDER BY i) "
    "FROM unnest(ARRAY['fsync', 'synchronous_commit', 'full_page_writes', "
    "'wal_sync_method', 'shared_buffers', 'max_connections']) "
    "WITH ORDINALITY AS shown(n, i)"
)
"""The settings the report quotes, as the running server has them."""


@dataclass(frozen=True)
class Postgres:
    """A running cluster of our own, trusting connections from loopback."""

    bin: Path
    folder: Path
    port: int

    def url(self, database: str) -> str:
        """The NETCALC_DATABASE_URL of `database` on this cluster."""
        return f"postgresql://{POSTGRES_USER}@{HOST}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database; its URL."""
        run_command(
            [str(self.bin / "createdb"), *self._client_args(), name],
            None,
            POSTGRES_SECONDS,
        )
        return self.url(name)

    def describe(self) -> str:
        """The version and durability settings, then where the data lives."""
        settings = run_command(
            [str(self.bin / "psql"), *self._client_args(), "-AtXc", SETTINGS_QUERY],
            None,
            POSTGRES_SECONDS,
        ).strip()
        return f"{settings}; data on {filesystem(self.folder)}"

    def _client_args(self) -> list[str]:
        return ["-h", HOST, "-p", str(self.port), "-U", POSTGRES_USER]


@contextlib.contextmanager
def postgres(folder: Path, max_connections: int) -> Iterator[Postgres]:
    """Create, start and at the end stop a cluster in `folder`.

    Raises:
        BenchError: PostgreSQL is not installed, or would not start.
    """
    folder.mkdir()
    cluster = Postgres(postgres_bin(), folder, free_port())
    prefix = _as_postgres(folder)
    data = str(folder / "data")
    options = (
        f"-p {cluster.port} -k {folder} -c listen_addresses={HOST} "
        f"-c max_connections={max_connections}"
    )
    try:
        initdb = [str(cluster.bin / "initdb"), "-D", data, "-U", POSTGRES_USER]
        # Trust is safe here: the cluster listens on loopback and its own
        # socket folder only, and it is deleted at the end of the run.
        initdb += ["--auth=trust", "--no-locale", "-E", "UTF8"]
        run_command([*prefix, *initdb], None, POSTGRES_SECONDS)
        start = ["-o", options, "-l", str(folder / "postgres.log"), "start"]
        run_command([*prefix, *_pg_ctl(cluster, *start)], None, POSTGRES_SECONDS)
        yield cluster
    finally:
        _stop_postgres(prefix, cluster)


def check_installed() -> None:
    """Fail before any measuring when PostgreSQL or Redis is missing."""
    postgres_bin()
    redis_binary()


def postgres_bin() -> Path:
    """The folder of the newest installed PostgreSQL's programs."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise BenchError(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); "
            "install the Debian package 'postgresql', or run with --backends sqlite."
        )
    return Path(found[-1]).parent


def redis_binary() -> str:
    """The path of redis-server."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise BenchError(
            "Redis is not installed (no redis-server on PATH); install the Debian "
            "package 'redis-server', or run with --backends sqlite."
        )
    return binary


def _as_postgres(folder: Path) -> list[str]:
    # initdb and postgres refuse to run as root; run them as the system's
    # postgres user, which then owns the cluster's folder.
    if os.geteuid() != 0:
        return []
    try:
        record = pwd.getpwnam(POSTGRES_USER)
    except KeyError:
        raise BenchError(
            f"Running as root, but there is no {POSTGRES_USER!r} user to run "
            "PostgreSQL as; install the Debian package 'postgresql'."
        ) from None
    os.chown(folder, record.pw_uid, record.pw_gid)
    # That user must also be able to pass through the scratch folder above,
    # which tempfile makes private to us; listing it stays refused.
    folder.parent.chmod(folder.parent.stat().st_mode | 0o001)
    return ["runuser", "-u", POSTGRES_USER, "--"]


def _pg_ctl(cluster: Postgres, *args: str) -> list[str]:
    data = str(cluster.folder / "data")
    return [str(cluster.bin / "pg_ctl"), "-D", data, "-w", "-t", "60", *args]


def _stop_postgres(prefix: list[str], cluster: Postgres) -> None:
    """Stop the cluster if it runs: fast, then immediate, then SIGKILL."""
    pid_file = cluster.folder / "data" / "postmaster.pid"
    for mode in ("fast", "immediate"):
        if not pid_file.exists():
            return
        try:
            stop = _pg_ctl(cluster, "-m", mode, "stop")
            run_command([*prefix, *stop], None, POSTGRES_SECONDS)
        except BenchError as error:
            print(f"Stopping PostgreSQL ({mode}) failed: {error}", file=sys.stderr)
    # The first line of postmaster.pid is the PID of the postmaster we
    # started; its backends exit on their own once it is gone.
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int(pid_file.read_text().splitlines()[0])
        print(f"Killing PostgreSQL postmaster {pid}.", file=sys.stderr)
        os.kill(pid, signal.SIGKILL)


def filesystem(path: Path) -> str:
    """The type and device of the file system holding `path`, from /proc."""
    target = str(path.resolve())
    best = ("", "an unknown file system")
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            device, mount, kind = line.split()[:3]
            inside = target == mount or target.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) > len(best[0]):
                best = (mount, f"{kind} ({device})")
    return best[1]


@contextlib.contextmanager
def redis(folder: Path) -> Iterator[str]:
    """Start Redis with persistence off for the block; its URL.

    Raises:
        BenchError: redis-server is not installed, or would not start.
    """
    folder.mkdir()
    port = free_port()
    command = [
        redis_binary(),
        "--port",
        str(port),
        "--bind",
        HOST,
        "--dir",
        str(folder),
    ]
    command += ["--save", "", "--appendonly", "no"]
    log = folder / "redis.log"
    with server(command, dict(os.environ), log) as process:
        wait_until(lambda: _pong(port), process, log, "Redis answering PING")
        yield f"redis://{HOST}:{port}/0"


def _pong(port: int) -> bool:
    with socket.create_connection((HOST, port), timeout=1) as connection:
        connection.sendall(b"PING\r\n")
        return connection.recv(64).startswith(b"+PONG")


def redis_version() -> str:
    """The installed redis-server's version, such as '7.0.15'."""
    output = run_command([redis_binary(), "--version"], None, POSTGRES_SECONDS)
    found = re.search(r"v=(\S+)", output)
    return found.group(1) if found else "(unknown version)"
