"""Helpers shared by the tests: settings, account management, a live server."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine

from netcalc.accounts import service
from netcalc.db import create_engine
from netcalc.runtime import secret_hash_key
from netcalc.serving import served_url
from netcalc.settings import Settings

T = TypeVar("T")

TEST_SECRET_KEY = "test-server-secret-0123456789abcdef-0123456789"
PASSWORD = "correct horse battery"


def make_settings(folder: Path, **overrides: Any) -> Settings:
    """Settings for an SQLite file in `folder`, with a fixed server secret."""
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{folder / 'netcalc.db'}",
        "secret_key": TEST_SECRET_KEY,
        "issuer": "http://testserver",
    }
    return Settings(**(values | overrides))


class Console:
    """What an account holder does through the CLI or console, in process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.hash_key = secret_hash_key(settings.server_secret())

    def _run(self, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
        async def run() -> T:
            engine = create_engine(self.settings.database_url)
            try:
                return await work(engine)
            finally:
                await engine.dispose()

        return asyncio.run(run())

    def account(self, email: str) -> str:
        """Create an account and return its id."""
        return self._run(lambda e: service.create_account(e, email, PASSWORD))

    def credentials(
        self, account_id: str, scopes: tuple[str, ...] = (), ttl: int | None = None
    ) -> service.IssuedSecret:
        """Generate credentials for an account."""
        return self._run(
            lambda e: service.create_credentials(
                e,
                self.hash_key,
                account_id,
                name="test",
                scopes=scopes,
                token_ttl=ttl,
                max_ttl=self.settings.token_ttl_max,
            )
        )

    def revoke(self, client_id: str) -> None:
        """Revoke credentials."""
        self._run(lambda e: service.revoke_credentials(e, client_id))

    def rotate(self, client_id: str, grace: int) -> service.IssuedSecret:
        """Rotate a secret with a grace period."""
        return self._run(
            lambda e: service.rotate_credentials(
                e, self.hash_key, client_id, grace=grace
            )
        )

    def run(self, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
        """Run any coroutine against the database."""
        return self._run(work)


def token_body(issued: service.IssuedSecret, **extra: str) -> dict[str, str]:
    """The JSON body of a token request for these credentials."""
    return {
        "client_id": issued.client_id,
        "client_secret": issued.client_secret,
        "grant_type": "client_credentials",
    } | extra


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """`netcalc serve` in a subprocess, with its own data folder."""

    def __init__(
        self, folder: Path, workers: int = 1, host: str = "127.0.0.1", **env: str
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.workers = workers
        self.host = host
        self.port = free_port()
        self.env = (
            os.environ
            | {
                "NETCALC_DATABASE_URL": f"sqlite:///{folder / 'netcalc.db'}",
                "NETCALC_SECRET_KEY_FILE": str(folder / "secret.key"),
                "NETCALC_ISSUER": self.url,
            }
            | env
        )
        self.log_path = folder / "server.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return served_url(self.host, self.port)

    @property
    def pid(self) -> int:
        """The server's process id; with one worker it serves the requests."""
        assert self._process is not None, "the server is not running"
        return self._process.pid

    @property
    def running(self) -> bool:
        """Whether the server was started and has not exited since."""
        return self._process is not None and self._process.poll() is None

    def cli(
        self, *args: str, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the `netcalc` CLI against this server's database."""
        return subprocess.run(
            [sys.executable, "-m", "netcalc", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.folder,
            timeout=60,
            check=False,
        )

    def start(self) -> None:
        """Start serving and wait until /healthz answers."""
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "netcalc",
                    "serve",
                    "--host",
                    self.host,
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                ],
                env=self.env,
                cwd=self.folder,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not become healthy:\n{self.log()}")

    def stop(self) -> None:
        """Stop the server gracefully, killing it if it will not stop."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=5)
        self._process = None

    def kill(self) -> None:
        """End the server at once with SIGKILL, as a crash would."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=5)
            self._process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class ThreadedServer:
    """An ASGI app under uvicorn on a thread of this process."""

    def __init__(self, config: uvicorn.Config) -> None:
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run)

    def start(self) -> None:
        """Start serving; returns once uvicorn listens."""
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            assert self._thread.is_alive(), "uvicorn exited"
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=20)
