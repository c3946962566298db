"""netcalc under test: its settings, its scratch account, its running instances.

A deployment is one or more `netcalc serve` processes sharing one database
(and, on PostgreSQL, one Redis and one server secret), with an account whose
client credentials, bearer token and one saved subnet the workloads use.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from loadgen import TOKEN, Load, Result, Workload, measure
from processes import (
    HOST,
    BenchError,
    basic_credentials,
    form_post,
    free_port,
    http,
    run_command,
    server,
    url,
    wait_http,
)

EMAIL = "bench@example.com"
"""The account the benchmark creates in each scratch database."""

SUBNET = {"network_address": "10.0.0.0", "subnet_bits": 24, "name": "bench"}
"""The one subnet saved, so the account API answers with a non-empty list."""

CLI_SECONDS = 120.0
"""How long one `netcalc` setup command may run."""

ROUTES = (
    ("POST /api/auth/token", "/api/auth/token", "token.lua", TOKEN),
    ("GET /api/account/subnets", "/api/account/subnets", "account.lua", ""),
    ("GET /api/ip/10.0.0.0/24", "/api/ip/10.0.0.0/24", "common.lua", ""),
)
"""Row name, path, wrk script and kind of the token endpoint, account API and
calculator."""

OAUTH_ROUTES = (
    ("POST /oauth2/token (form, Basic)", "/oauth2/token", "form_token.lua", TOKEN),
    ("POST /oauth2/introspect (Basic)", "/oauth2/introspect", "introspect.lua", ""),
    ("mix: 1 /oauth2/token per 100 account calls", "/", "mix.lua", ""),
)
"""The RFC endpoints' rows, measured in the side-by-side section."""

NETCALC = str(Path(sys.executable).with_name("netcalc"))
"""The netcalc command of the virtualenv running this benchmark."""


@dataclass(frozen=True)
class Deployment:
    """Running netcalc instances and what a client needs to call them."""

    backend: str
    workers: int
    ports: tuple[int, ...]
    pids: tuple[int, ...]
    logs: tuple[Path, ...]
    token_body: str
    token: str

    def workloads(self, calculator: bool) -> list[Workload]:
        """The token endpoint and account API rows, and the calculator's."""
        return self._workloads(ROUTES if calculator else ROUTES[:2])

    def oauth_workloads(self) -> list[Workload]:
        """The RFC token endpoint, introspection and the token-and-calls mix."""
        return self._workloads(OAUTH_ROUTES)

    def soak_workload(self) -> Workload:
        """Tokens fetched and used, as `soak.lua` sends them."""
        name = "soak: a new token per 100 account calls"
        return self._workloads(((name, "/", "soak.lua", ""),))[0]

    def measure(self, workload: Workload, load: Load) -> Result:
        """Measure one workload, with the peak memory of these instances."""
        return measure(workload, load, self.pids)

    def _workloads(
        self, routes: tuple[tuple[str, str, str, str], ...]
    ) -> list[Workload]:
        env = {
            "BENCH_TOKEN_BODY": self.token_body,
            "BENCH_TOKEN": self.token,
            "BENCH_BASIC": self.basic,
        }
        return [
            Workload(
                name,
                self._urls(path),
                script,
                self.backend,
                env,
                self.workers,
                kind=kind,
            )
            for name, path, script, kind in routes
        ]

    @property
    def basic(self) -> str:
        """The client's HTTP Basic credentials."""
        body = json.loads(self.token_body)
        return basic_credentials(body["client_id"], body["client_secret"])

    def _urls(self, path: str) -> tuple[str, ...]:
        return tuple(url(port, path) for port in self.ports)


SHARED_ISSUER = "http://netcalc.bench.invalid"
"""The one issuer every instance names; no request goes there."""


def sqlite_env(scratch: Path) -> dict[str, str]:
    """Settings for an SQLite file and a secret key file in `scratch`."""
    return _clean_env() | {
        "NETCALC_DATABASE_URL": f"sqlite:///{scratch / 'bench.db'}",
        "NETCALC_SECRET_KEY_FILE": str(scratch / "secret.key"),
    }


def shared_env(database_url: str, redis_url: str, secret_key: str) -> dict[str, str]:
    """Settings for instances sharing a database, a Redis, a secret and,
    as behind one load balancer, the issuer's URL."""
    return _clean_env() | {
        "NETCALC_DATABASE_URL": database_url,
        "NETCALC_REDIS_URL": redis_url,
        "NETCALC_SECRET_KEY": secret_key,
        "NETCALC_ISSUER": SHARED_ISSUER,
    }


def _clean_env() -> dict[str, str]:
    # Settings inherited from the caller's shell would make runs differ and
    # could point the benchmark at a real database: start from none.
    return {k: v for k, v in os.environ.items() if not k.startswith("NETCALC_")}


@contextlib.contextmanager
def deploy(
    backend: str, env: dict[str, str], count: int, workers: int, logs: Path
) -> Iterator[Deployment]:
    """Serve `count` instances for the block's length, ready to be measured.

    They start one after another, so that only the first creates the
    signing key, and the token the first grants is checked on the others.
    Their logs go to `logs`, a new folder.
    """
    body = json.dumps(create_credentials(env))
    logs.mkdir()
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        pids: list[int] = []
        paths: list[Path] = []
        for number in range(1, count + 1):
            port, log = free_port(), logs / f"netcalc-{number}.log"
            command = [NETCALC, "serve", "--host", HOST, "--port", str(port)]
            command += ["--workers", str(workers)]
            process = stack.enter_context(server(command, env, log))
            wait_http(url(port, "/healthz"), process, log)
            ports.append(port)
            pids.append(process.pid)
            paths.append(log)
        token = grant_and_save(ports[0], body)
        for port in ports[1:]:
            _check_token(port, token)
        deployment = Deployment(
            backend, workers, tuple(ports), tuple(pids), tuple(paths), body, token
        )
        _check_oauth(ports[0], deployment.basic, token)
        yield deployment


def create_credentials(env: dict[str, str]) -> dict[str, str]:
    """Create the database, the account and the credentials through the CLI;
    the grant's body."""
    run_command([NETCALC, "migrate"], env, CLI_SECONDS)
    password = secrets.token_urlsafe(24)
    create = [NETCALC, "accounts", "create", EMAIL, "--password-stdin"]
    run_command(create, env, CLI_SECONDS, stdin=password + "\n")
    issue = [NETCALC, "credentials", "create", "--account", EMAIL, "--json"]
    created = json.loads(run_command(issue, env, CLI_SECONDS))
    return {
        "client_id": created["client_id"],
        "client_secret": created["client_secret"],
        "grant_type": "client_credentials",
    }


def grant_and_save(port: int, body: str) -> str:
    """Get a token and save the bench subnet with it; the token."""
    status, answer = http("POST", url(port, "/api/auth/token"), body)
    if status != 200:
        raise BenchError(f"The token request answered {status}: {answer}.")
    token: str = answer["token"]["access_token"]
    status, answer = http(
        "POST", url(port, "/api/account/subnets"), json.dumps(SUBNET), token
    )
    if status != 200:
        raise BenchError(f"Saving the bench subnet answered {status}: {answer}.")
    return token


def _check_token(port: int, token: str) -> None:
    """Fail unless another instance accepts the token and sees the subnet."""
    status, answer = http("GET", url(port, "/api/account/subnets"), token=token)
    if status != 200:
        raise BenchError(
            f"The instance on port {port} refused the token another instance "
            f"granted ({status}: {answer}); check that they share the database "
            "and NETCALC_SECRET_KEY."
        )


def _check_oauth(port: int, basic: str, token: str) -> None:
    """Fail unless the RFC token endpoint grants and introspection says active."""
    status, answer = form_post(
        url(port, "/oauth2/token"), "grant_type=client_credentials", basic
    )
    if status != 200 or "access_token" not in answer:
        raise BenchError(f"POST /oauth2/token answered {status}: {sorted(answer)}.")
    status, answer = form_post(url(port, "/oauth2/introspect"), f"token={token}", basic)
    if status != 200 or answer.get("active") is not True:
        raise BenchError(
            f"POST /oauth2/introspect answered {status} without active=true: "
            f"{sorted(answer)}."
        )
