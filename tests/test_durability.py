"""Crash safety: SIGKILL the server under load and lose nothing acknowledged.

Each round starts `netcalc serve`, issues tokens and revokes some of them
over HTTP while CLI processes create and revoke credentials (a few of
those are killed too), then kills the server with SIGKILL mid-load. After
each crash the SQLite file must pass its integrity check; after each
restart every acknowledged credential, credential revocation and token
revocation must hold. Acknowledged means HTTP 200 from the server, or exit
status 0 from the CLI.
"""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.services import PostgresServer
from tests.support import PASSWORD, ServerProcess

pytestmark = pytest.mark.server

ISSUERS = 3
"""Threads asking for tokens during each round."""

MANAGERS = 3
"""Threads running CLI commands during each round."""

CLI_KILL_RATE = 0.3
"""Share of CLI runs killed with SIGKILL at a random moment."""

EMAIL = "crash@example.com"

LOAD_ENV = {
    # Revoked credentials are asked for on purpose; nobody may be throttled.
    "NETCALC_FAILED_AUTH_PER_CLIENT": "100000/minute",
    "NETCALC_FAILED_AUTH_PER_ADDRESS": "100000/minute",
    # Write `last used` often, so that kills land inside server writes too.
    "NETCALC_USAGE_FLUSH_SECONDS": "0.2",
}


@dataclass
class Ledger:
    """What the server and the CLI acknowledged, and what broke the contract."""

    secrets: dict[str, str] = field(default_factory=dict)
    revoked_at: dict[str, float] = field(default_factory=dict)
    maybe_revoked: set[str] = field(default_factory=set)
    revoked_tokens: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def live_ids(self) -> list[str]:
        """Client ids whose revocation nobody has tried yet."""
        with self.lock:
            done = self.revoked_at.keys() | self.maybe_revoked
            return [cid for cid in self.secrets if cid not in done]

    def any_id(self, rng: random.Random) -> tuple[str, str]:
        """An acknowledged client id and its secret, revoked or not."""
        with self.lock:
            client_id = rng.choice(list(self.secrets))
            return client_id, self.secrets[client_id]


def run_cli(
    server: ServerProcess, rng: random.Random, *args: str
) -> subprocess.CompletedProcess[str] | None:
    """Run the CLI; None when this run was picked to be killed mid-way."""
    process = subprocess.Popen(
        [sys.executable, "-m", "netcalc", *args],
        env=server.env,
        cwd=server.folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if rng.random() < CLI_KILL_RATE:
        time.sleep(rng.uniform(0.0, 1.5))
        process.kill()
        process.communicate(timeout=30)
        return None
    stdout, stderr = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def create(server: ServerProcess, ledger: Ledger, rng: random.Random) -> None:
    """Create credentials; remember them once the CLI acknowledges."""
    done = run_cli(server, rng, "credentials", "create", "--account", EMAIL, "--json")
    if done is not None and done.returncode == 0:
        issued = json.loads(done.stdout)
        with ledger.lock:
            ledger.secrets[issued["client_id"]] = issued["client_secret"]


def revoke(server: ServerProcess, ledger: Ledger, rng: random.Random) -> None:
    """Revoke credentials; remember when the CLI acknowledged it."""
    live = ledger.live_ids()
    if not live:
        return
    client_id = rng.choice(live)
    with ledger.lock:
        ledger.maybe_revoked.add(client_id)
    done = run_cli(server, rng, "credentials", "revoke", client_id)
    if done is not None and done.returncode == 0:
        with ledger.lock:
            ledger.revoked_at[client_id] = time.monotonic()


def manage(
    server: ServerProcess, ledger: Ledger, stop: threading.Event, seed: int
) -> None:
    """Create and revoke credentials through the CLI until told to stop."""
    rng = random.Random(seed)
    while not stop.is_set():
        action = create if rng.random() < 0.5 else revoke
        action(server, ledger, rng)


def issue(
    server: ServerProcess, ledger: Ledger, stop: threading.Event, seed: int
) -> None:
    """Ask for tokens, revoke some, and flag a token for revoked credentials."""
    rng = random.Random(seed)
    with httpx.Client(base_url=server.url, timeout=5) as http:
        while not stop.is_set():
            client_id, secret = ledger.any_id(rng)
            started = time.monotonic()
            try:
                response = http.post("/api/auth/token", json=body(client_id, secret))
                if response.status_code == 200 and rng.random() < 0.25:
                    token = response.json()["token"]["access_token"]
                    revoke_token(http, ledger, client_id, secret, token)
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            with ledger.lock:
                revoked = ledger.revoked_at.get(client_id, started) < started
            if revoked and response.status_code == 200:
                ledger.violations.append(f"{client_id} got a token after revocation")


def revoke_token(
    http: httpx.Client, ledger: Ledger, client_id: str, secret: str, token: str
) -> None:
    """Revoke one access token (RFC 7009); remember it once acknowledged."""
    response = http.post(
        "/oauth2/revoke", data={"token": token}, auth=(client_id, secret)
    )
    if response.status_code == 200:
        with ledger.lock:
            ledger.revoked_tokens.append(token)


def body(client_id: str, secret: str) -> dict[str, str]:
    """A token request body."""
    return {
        "client_id": client_id,
        "client_secret": secret,
        "grant_type": "client_credentials",
    }


def check_store(server: ServerProcess) -> None:
    """The SQLite file passes its integrity and foreign key checks."""
    path = server.folder / "netcalc.db"
    if not path.exists():
        return
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
    connection.close()


def verify(server: ServerProcess, ledger: Ledger) -> None:
    """Every acknowledged credential, revocation and token revocation holds."""
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for client_id, secret in ledger.secrets.items():
            response = http.post("/api/auth/token", json=body(client_id, secret))
            status = response.json()["status"]
            if client_id in ledger.revoked_at:
                assert (response.status_code, status) == (401, "REVOKED_CREDENTIALS")
            elif client_id not in ledger.maybe_revoked:
                assert (response.status_code, status) == (200, "OK")
                token = response.json()["token"]["access_token"]
                assert subnets(http, token) == (200, "OK")
        for token in ledger.revoked_tokens:
            assert subnets(http, token) == (401, "INVALID_GRANT")


def subnets(http: httpx.Client, token: str) -> tuple[int, str]:
    """The HTTP status and `status` of an account API call with `token`."""
    response = http.get(
        "/api/account/subnets", headers={"Authorization": f"Bearer {token}"}
    )
    return response.status_code, response.json()["status"]


def crash_round(server: ServerProcess, ledger: Ledger, seed: int) -> None:
    """Start, verify, load, and kill the server mid-load."""
    server.start()
    verify(server, ledger)
    stop = threading.Event()
    workers = [(issue, ISSUERS), (manage, MANAGERS)]
    with ThreadPoolExecutor(max_workers=ISSUERS + MANAGERS) as pool:
        futures = [
            pool.submit(work, server, ledger, stop, seed * 100 + n)
            for work, count in workers
            for n in range(count)
        ]
        time.sleep(random.Random(seed).uniform(1.5, 3.0))
        server.kill()
        stop.set()
        for future in futures:
            future.result(timeout=90)
    check_store(server)


def seed_account(server: ServerProcess, ledger: Ledger) -> None:
    """An account with three credentials, made before any crash."""
    assert server.cli("migrate").returncode == 0
    made = server.cli("accounts", "create", EMAIL, "--password-stdin", stdin=PASSWORD)
    assert made.returncode == 0, made.stderr
    for _ in range(3):
        done = server.cli("credentials", "create", "--account", EMAIL, "--json")
        assert done.returncode == 0, done.stderr
        issued = json.loads(done.stdout)
        ledger.secrets[issued["client_id"]] = issued["client_secret"]


def crash_repeatedly(server: ServerProcess, rounds: int) -> Ledger:
    """Run `rounds` crash rounds, then restart once more and verify."""
    ledger = Ledger()
    seed_account(server, ledger)
    try:
        for number in range(rounds):
            crash_round(server, ledger, number + 1)
        server.start()
        verify(server, ledger)
    finally:
        server.stop()
    assert ledger.violations == []
    return ledger


def test_sigkill_under_load_loses_nothing_on_sqlite(tmp_path: Path) -> None:
    """HTTP 200 for every acknowledged credential, 401 for every acknowledged
    revocation, and an intact SQLite file, across five kill -9 rounds."""
    server = ServerProcess(tmp_path / "server", workers=1, **LOAD_ENV)
    ledger = crash_repeatedly(server, rounds=5)
    assert ledger.revoked_at, "no revocation was acknowledged; the test saw no load"
    assert ledger.revoked_tokens, "no token revocation was acknowledged"


def test_sigkill_under_load_loses_nothing_on_postgresql(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    """HTTP 200 for every acknowledged credential and 401 for every acknowledged
    revocation, across three kill -9 rounds on PostgreSQL."""
    url = postgres.new_database()
    server = ServerProcess(
        tmp_path / "server", workers=1, NETCALC_DATABASE_URL=url, **LOAD_ENV
    )
    crash_repeatedly(server, rounds=3)
