"""Throwaway PostgreSQL and Redis servers for the tests, on loopback ports.

They run from the installed binaries in the test session's own folders and
are stopped when the session ends. Where a binary is missing the tests that
need it skip, except under CI=true, where a missing service is a failure.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import NoReturn

import pytest

from tests.support import free_port

POSTGRES_USER = "postgres"


def unavailable(reason: str) -> NoReturn:
    """Skip the test for a missing service, or fail under CI."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must install it (see .ci/run).")
    pytest.skip(reason)


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _as_postgres(folder: Path) -> list[str]:
    # initdb and postgres refuse to run as root; run them as the system's
    # postgres user, which owns the throwaway data folder.
    if os.geteuid() != 0:
        return []
    record = pwd.getpwnam(POSTGRES_USER)
    os.chown(folder, record.pw_uid, record.pw_gid)
    return ["runuser", "-u", POSTGRES_USER, "--"]


class PostgresServer:
    """A PostgreSQL cluster of its own, trusting local connections."""

    def __init__(self, folder: Path) -> None:
        binaries = _postgres_bin()
        if binaries is None:
            unavailable("PostgreSQL is not installed (no initdb found)")
        self.bin = binaries
        self.folder = folder
        self.port = free_port()
        self.data = folder / "data"
        self._databases = 0

    def start(self) -> None:
        """Start the cluster, creating it the first time: stopped, it starts
        again with its databases, as after an outage."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o777)
        prefix = _as_postgres(self.folder)
        if not self.data.exists():
            self._create(prefix)
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=300"
        )
        subprocess.run(
            [
                *prefix,
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-o",
                options,
                "-l",
                str(self.folder / "postgres.log"),
                "-w",
                "start",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def _create(self, prefix: list[str]) -> None:
        subprocess.run(
            [
                *prefix,
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def stop(self) -> None:
        prefix = _as_postgres(self.folder)
        subprocess.run(
            [
                *prefix,
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """Create an empty database and return its URL."""
        self._databases += 1
        name = f"netcalc_{os.getpid()}_{self._databases}"
        subprocess.run(
            [
                str(self.bin / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                name,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        return self.url(name)


class RedisServer:
    """A Redis server of its own, with persistence off."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("Redis is not installed (no redis-server found)")
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            probe = subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"],
                capture_output=True,
                text=True,
                check=False,
                timeout=5,
            )
            if probe.stdout.strip() == "PONG":
                return
            time.sleep(0.1)
        raise RuntimeError("redis-server did not answer PING")

    def flush(self) -> None:
        subprocess.run(
            ["redis-cli", "-p", str(self.port), "flushall"],
            capture_output=True,
            check=True,
            timeout=10,
        )

    def stop(self) -> None:
        if self._process is not None:
            # A paused server would take the signal to end only once resumed.
            self._process.send_signal(signal.SIGCONT)
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None

    def pause(self) -> None:
        """Stop the server answering, as a frozen host would: connections
        are still taken, and nothing comes back on them."""
        assert self._process is not None, "the server is not running"
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server answer again."""
        assert self._process is not None, "the server is not running"
        self._process.send_signal(signal.SIGCONT)
