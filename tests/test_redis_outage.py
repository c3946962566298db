"""An instance whose Redis stops or pauses keeps answering token requests,
with its failure counts in memory until Redis is back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis as redis_client
from limits import parse
from starlette.testclient import TestClient

from netcalc.accounts.sessions import SignUpLimit
from netcalc.auth.counts import SharedCounts
from netcalc.auth.throttle import SharedFailures
from netcalc.errors import TooManySignUps
from netcalc.settings import Settings
from tests.services import RedisServer
from tests.support import Console, free_port, make_settings, token_body


@pytest.fixture
def settings(tmp_path: Path, own_redis: RedisServer) -> Settings:
    """Settings on an SQLite file, counting failures in this test's Redis."""
    return make_settings(
        tmp_path, redis_url=own_redis.url, failed_auth_per_client="3/minute"
    )


def test_tokens_are_granted_and_throttled_while_redis_is_stopped(
    client: TestClient, console: Console, own_redis: RedisServer
) -> None:
    """With Redis stopped, the token endpoints answer as usual, the limit
    still holds, counted in memory, and /readyz says Redis is missing; once
    Redis is back, failures are counted there again."""
    account = console.account("stopped@example.com")
    issued, other = console.credentials(account), console.credentials(account)
    assert client.get("/readyz").json() == {"status": "OK"}
    own_redis.stop()

    granted = client.post("/oauth2/token", data=token_body(other))
    assert granted.status_code == 200
    token = granted.json()["access_token"]
    asked = token_body(other, token=token)
    introspected = client.post("/oauth2/introspect", data=asked)
    assert introspected.status_code == 200
    assert introspected.json()["active"] is True

    assert client.post("/api/auth/token", json=token_body(issued)).status_code == 200
    wrong = token_body(issued, client_secret="not the secret")
    statuses = [
        client.post("/api/auth/token", json=wrong).json()["status"] for _ in range(4)
    ]
    assert statuses == ["INVALID_CREDENTIALS"] * 3 + ["TOO_MANY_REQUESTS"]
    assert client.post("/api/auth/token", json=token_body(issued)).status_code == 429
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "OK", "degraded": ["redis"]}

    own_redis.start()
    assert client.get("/readyz").json() == {"status": "OK"}
    wrong = token_body(other, client_secret="not the secret")
    assert client.post("/api/auth/token", json=wrong).status_code == 401
    shared = redis_client.Redis.from_url(own_redis.url)
    try:
        assert len(shared.keys(SharedFailures.PREFIX + "*")) == 2
        assert shared.keys("LIMITS*")
    finally:
        shared.close()


def test_tokens_are_granted_while_redis_is_paused(
    client: TestClient, console: Console, own_redis: RedisServer
) -> None:
    """A Redis that takes connections but answers nothing is given up on
    after a short wait: the right secret gets its token, a wrong one its
    refusal, and /readyz says Redis is missing."""
    issued = console.credentials(console.account("paused@example.com"))
    assert client.post("/api/auth/token", json=token_body(issued)).status_code == 200
    own_redis.pause()
    try:
        granted = client.post("/api/auth/token", json=token_body(issued))
        assert granted.status_code == 200
        wrong = token_body(issued, client_secret="not the secret")
        refused = client.post("/api/auth/token", json=wrong)
        assert refused.status_code == 401
        assert refused.json()["status"] == "INVALID_CREDENTIALS"
        ready = client.get("/readyz")
        assert ready.json() == {"status": "OK", "degraded": ["redis"]}
    finally:
        own_redis.resume()


def test_sign_ups_are_limited_in_memory_while_redis_is_stopped() -> None:
    """The console's sign-up limit holds while Redis does not answer."""
    counts = SharedCounts(f"redis://127.0.0.1:{free_port()}/0")
    limit = SignUpLimit(parse("1/hour"), counts)

    async def scenario() -> None:
        try:
            await limit.count("192.0.2.1")
            with pytest.raises(TooManySignUps):
                await limit.count("192.0.2.1")
        finally:
            await counts.close()

    asyncio.run(scenario())
