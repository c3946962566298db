"""The failure throttle's memory of recent failures, on a clock the test moves."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis as redis_client
from limits import parse
from limits.aio.storage import RedisStorage

from netcalc.auth.throttle import FailureThrottle, SharedFailures, _LastFailures
from netcalc.errors import TooManyRequests
from tests.services import RedisServer


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_failure_is_remembered_for_its_window_only() -> None:
    """A key counts as recently failed until its limit's window has passed."""
    clock = Clock()
    failures = _LastFailures(clock)
    failures.note("address:192.0.2.1", parse("5/minute"))
    clock.now += 59
    assert failures.within_window("address:192.0.2.1")
    assert not failures.within_window("address:192.0.2.2")
    clock.now += 2
    assert not failures.within_window("address:192.0.2.1")


def test_any_failure_counts_until_the_last_window_ends() -> None:
    """With failures of keys whose windows differ, some failure is recent
    until the window that ends last has passed."""
    clock = Clock()
    failures = _LastFailures(clock)
    assert not failures.any_within_window()
    failures.note("client:long", parse("5/hour"))
    clock.now += 30
    failures.note("address:192.0.2.1", parse("5/minute"))
    clock.now += 3000
    assert failures.any_within_window()
    assert not failures.within_window("address:192.0.2.1")
    clock.now += 600
    assert not failures.any_within_window()


def test_expired_failures_are_forgotten() -> None:
    """Failures from ever new addresses do not grow the memory without bound."""
    clock = Clock()
    failures = _LastFailures(clock)
    for minute in range(20):
        for n in range(500):
            failures.note(f"address:{minute}.{n}", parse("5/minute"))
        clock.now += 61
    assert len(failures) < 2 * 1024


def test_a_success_after_failures_is_still_refused() -> None:
    """The shortcut for keys without failures never skips one that failed."""
    throttle = FailureThrottle(parse("2/minute"), parse("100/minute"))

    async def scenario() -> None:
        await throttle.check("nci_a", "192.0.2.1")
        await throttle.failed("nci_a", "192.0.2.1")
        await throttle.check("nci_a", "192.0.2.1")
        await throttle.failed("nci_a", "192.0.2.1")
        with pytest.raises(TooManyRequests):
            await throttle.check("nci_a", "192.0.2.1")
        await throttle.check("nci_b", "192.0.2.1")

    asyncio.run(scenario())


def test_failures_past_their_window_no_longer_refuse() -> None:
    """Once the last failure's window has passed, the caller is let through
    again, though its failures are still in memory."""
    clock = Clock()
    throttle = FailureThrottle(parse("1/minute"), parse("100/minute"), clock=clock)

    async def scenario() -> None:
        await throttle.failed("nci_a", "192.0.2.1")
        with pytest.raises(TooManyRequests):
            await throttle.failed("nci_a", "192.0.2.1")
        with pytest.raises(TooManyRequests):
            await throttle.check("nci_a", "192.0.2.1")
        clock.now += 61
        await throttle.check("nci_a", "192.0.2.1")

    asyncio.run(scenario())


def _script_runs(server: redis_client.Redis) -> int:
    """How many Lua scripts Redis has run: each moving-window test is one."""
    stats = server.info("commandstats")
    return sum(stats.get(name, {}).get("calls", 0) for name in _SCRIPT_COMMANDS)


_SCRIPT_COMMANDS = ("cmdstat_evalsha", "cmdstat_eval")


def _shared_throttle(url: str, per_client: str = "2/minute") -> FailureThrottle:
    """One instance's throttle, with its counts and failure mark in Redis."""
    return FailureThrottle(
        parse(per_client),
        parse("100/minute"),
        RedisStorage("async+" + url, implementation="redispy"),
        shared_failures=SharedFailures(url),
    )


@pytest.fixture
def shared_redis(redis: RedisServer) -> Iterator[redis_client.Redis]:
    server = redis_client.Redis.from_url(redis.url)
    server.flushdb()
    yield server
    server.close()


def test_shared_checks_skip_the_counts_while_no_instance_failed(
    redis: RedisServer, shared_redis: redis_client.Redis
) -> None:
    """Without a recent failure anywhere, a check reads one key and runs no
    moving-window script."""
    throttle = _shared_throttle(redis.url)
    before = _script_runs(shared_redis)

    async def scenario() -> None:
        for _ in range(5):
            await throttle.check("nci_a", "192.0.2.1")
        await throttle.close()

    asyncio.run(scenario())
    assert _script_runs(shared_redis) == before
    assert shared_redis.exists(SharedFailures.KEY) == 0


def test_a_failure_at_one_instance_throttles_a_success_at_another(
    redis: RedisServer, shared_redis: redis_client.Redis
) -> None:
    """The other instance has no failure of its own to remember, yet it
    refuses the caller once the shared count is full."""
    first, second = _shared_throttle(redis.url), _shared_throttle(redis.url)

    async def scenario() -> None:
        await first.failed("nci_a", "192.0.2.1")
        await second.check("nci_a", "192.0.2.1")
        await first.failed("nci_a", "192.0.2.1")
        with pytest.raises(TooManyRequests):
            await second.check("nci_a", "192.0.2.1")
        before = _script_runs(shared_redis)
        await second.check("nci_b", "192.0.2.2")
        # A recent failure anywhere makes every check count again.
        assert _script_runs(shared_redis) > before
        await first.close()
        await second.close()

    asyncio.run(scenario())


def test_the_failure_mark_lasts_a_window_after_the_last_failure(
    redis: RedisServer, shared_redis: redis_client.Redis
) -> None:
    throttle = _shared_throttle(redis.url, per_client="5/second")
    marks = SharedFailures(redis.url)

    async def scenario() -> None:
        await throttle.failed("nci_a", "192.0.2.1")
        # The longer of the two windows: the per-address minute.
        assert 55_000 < shared_redis.pttl(SharedFailures.KEY) <= 60_000
        await marks.mark(1)
        assert await marks.any_within_window()
        await asyncio.sleep(1.1)
        assert not await marks.any_within_window()
        await throttle.close()
        await marks.close()

    asyncio.run(scenario())
