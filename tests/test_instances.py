"""Several `netcalc serve` instances sharing one PostgreSQL and one Redis."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.services import PostgresServer, RedisServer
from tests.support import PASSWORD, TEST_SECRET_KEY, ServerProcess

pytestmark = pytest.mark.server


def start_pair(
    tmp_path: Path, database_url: str, redis_url: str | None, **env: str
) -> tuple[ServerProcess, ServerProcess]:
    """Two instances on one database, configured as an operator would."""
    shared = {
        "NETCALC_DATABASE_URL": database_url,
        "NETCALC_SECRET_KEY": TEST_SECRET_KEY,
        "NETCALC_ISSUER": "http://netcalc.test",
    } | env
    if redis_url:
        shared["NETCALC_REDIS_URL"] = redis_url
    first = ServerProcess(tmp_path / "a", **shared)
    second = ServerProcess(tmp_path / "b", **shared)
    first.start()
    try:
        second.start()
    except Exception:
        first.stop()
        raise
    return first, second


@pytest.fixture(params=["redis", "listen-notify"])
def pair(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    postgres: PostgresServer,
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two instances whose revocations travel by Redis, or by LISTEN/NOTIFY."""
    redis_url = None
    if request.param == "redis":
        redis_url = request.getfixturevalue("redis").url
    first, second = start_pair(tmp_path, postgres.new_database(), redis_url)
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


def credentials(server: ServerProcess, email: str) -> dict[str, Any]:
    made = server.cli("accounts", "create", email, "--password-stdin", stdin=PASSWORD)
    assert made.returncode == 0, made.stderr
    created = server.cli("credentials", "create", "--account", email, "--json")
    assert created.returncode == 0, created.stderr
    result: dict[str, Any] = json.loads(created.stdout)
    return result


def token_request(issued: dict[str, Any], secret: str | None = None) -> dict[str, str]:
    return {
        "client_id": issued["client_id"],
        "client_secret": secret or issued["client_secret"],
        "grant_type": "client_credentials",
    }


def get_token(server: ServerProcess, issued: dict[str, Any]) -> str:
    response = httpx.post(server.url + "/api/auth/token", json=token_request(issued))
    assert response.status_code == 200, response.text
    return str(response.json()["token"]["access_token"])


def subnets_status(server: ServerProcess, token: str) -> int:
    response = httpx.get(
        server.url + "/api/account/subnets",
        headers={"Authorization": f"Bearer {token}"},
    )
    return response.status_code


def seconds_until_refused(server: ServerProcess, token: str, limit: float) -> float:
    """Poll until the server refuses the token; returns how long that took."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if subnets_status(server, token) == 401:
            return time.monotonic() - started
        time.sleep(0.01)
    return float("inf")


def test_token_from_one_instance_works_on_the_other(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    """Both instances sign with the same key and trust each other's tokens."""
    first, second = pair
    issued = credentials(first, "shared@example.com")
    assert subnets_status(second, get_token(first, issued)) == 200
    assert subnets_status(first, get_token(second, issued)) == 200
    first_keys = httpx.get(first.url + "/.well-known/jwks.json").json()
    assert first_keys == httpx.get(second.url + "/.well-known/jwks.json").json()


def test_revocation_reaches_the_other_instance_within_a_second(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    """Credentials revoked through one instance are refused by the other."""
    first, second = pair
    issued = credentials(first, "revoke@example.com")
    token = get_token(first, issued)
    assert subnets_status(second, token) == 200
    assert first.cli("credentials", "revoke", issued["client_id"]).returncode == 0
    took = seconds_until_refused(second, token, limit=5)
    print(f"credentials revocation reached the other instance in {took * 1000:.1f} ms")
    assert took < 1.0


def test_token_revocation_reaches_the_other_instance(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    """A token revoked at one instance's /oauth2/revoke is refused by the other."""
    first, second = pair
    issued = credentials(first, "token@example.com")
    token, spared = get_token(first, issued), get_token(first, issued)
    revoked = httpx.post(
        first.url + "/oauth2/revoke",
        data={"token": token},
        auth=(issued["client_id"], issued["client_secret"]),
    )
    assert revoked.status_code == 200
    assert subnets_status(first, token) == 401
    took = seconds_until_refused(second, token, limit=5)
    print(f"token revocation reached the other instance in {took * 1000:.1f} ms")
    assert took < 1.0
    assert subnets_status(second, spared) == 200


def test_failed_attempts_on_both_instances_count_toward_one_limit(
    tmp_path: Path, postgres: PostgresServer, redis: RedisServer
) -> None:
    """With Redis, failures at either instance fill the same per-client limit."""
    first, second = start_pair(
        tmp_path,
        postgres.new_database(),
        redis.url,
        NETCALC_FAILED_AUTH_PER_CLIENT="4/minute",
    )
    try:
        issued = credentials(first, "limit@example.com")
        wrong = token_request(issued, "ncs_" + "A" * 49)
        for server in (first, second, first, second):
            response = httpx.post(server.url + "/api/auth/token", json=wrong)
            assert response.json()["status"] == "INVALID_CREDENTIALS"
        for server in (first, second):
            response = httpx.post(
                server.url + "/api/auth/token", json=token_request(issued)
            )
            assert response.status_code == 429
            assert int(response.headers["retry-after"]) >= 1
    finally:
        first.stop()
        second.stop()


def test_sigkill_under_load_loses_nothing(
    tmp_path: Path, postgres: PostgresServer, redis: RedisServer
) -> None:
    """Killing one instance mid-load loses no credentials; the other serves on."""
    first, second = start_pair(tmp_path, postgres.new_database(), redis.url)
    try:
        made = [credentials(first, f"load{index}@example.com") for index in range(3)]
        stop = threading.Event()
        outcomes: list[int] = []

        def load() -> None:
            with httpx.Client(timeout=5) as client:
                deadline = time.monotonic() + 20
                while not stop.is_set() and time.monotonic() < deadline:
                    for issued in made:
                        try:
                            response = client.post(
                                first.url + "/api/auth/token",
                                json=token_request(issued),
                            )
                            outcomes.append(response.status_code)
                        except httpx.TransportError:
                            outcomes.append(0)

        worker = threading.Thread(target=load)
        worker.start()
        time.sleep(1.0)
        later = credentials(second, "during@example.com")
        first.kill()
        time.sleep(0.5)
        stop.set()
        worker.join(timeout=30)

        assert outcomes.count(200) > 0
        assert set(outcomes) <= {200, 0}
        for issued in [*made, later]:
            assert subnets_status(second, get_token(second, issued)) == 200
    finally:
        first.stop()
        second.stop()


def test_workers_on_postgresql(tmp_path: Path, postgres: PostgresServer) -> None:
    """`serve --workers 2` runs on PostgreSQL, and revocation reaches both workers."""
    server = ServerProcess(
        tmp_path / "workers",
        workers=2,
        NETCALC_DATABASE_URL=postgres.new_database(),
        NETCALC_SECRET_KEY=TEST_SECRET_KEY,
    )
    server.start()
    try:
        issued = credentials(server, "workers@example.com")
        token = get_token(server, issued)
        assert server.cli("credentials", "revoke", issued["client_id"]).returncode == 0
        time.sleep(1.0)
        statuses = {subnets_status(server, token) for _ in range(20)}
        assert statuses == {401}
    finally:
        server.stop()
