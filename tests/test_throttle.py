"""The failure throttle's memory of recent failures, on a clock the test moves."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
import redis as redis_client
from limits import parse

from netcalc.auth.counts import SharedCounts
from netcalc.auth.throttle import FailureThrottle, SharedFailures, _LastFailures
from netcalc.errors import TooManyRequests
from tests.services import RedisServer
from tests.support import free_port


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


class Instance:
    """One instance's throttle, with its counts and failure marks in Redis."""

    def __init__(self, url: str, per_client: str = "2/minute") -> None:
        self.counts = SharedCounts(url)
        self.marks = SharedFailures(self.counts)
        self.throttle = FailureThrottle(
            parse(per_client),
            parse("100/minute"),
            self.counts,
            shared_failures=self.marks,
        )

    async def close(self) -> None:
        await self.throttle.close()
        await self.counts.close()


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
    instance = Instance(redis.url)
    before = _script_runs(shared_redis)

    async def scenario() -> None:
        for _ in range(5):
            await instance.throttle.check("nci_a", "192.0.2.1")
        await instance.close()

    asyncio.run(scenario())
    assert _script_runs(shared_redis) == before
    assert _marks(shared_redis) == []
    assert shared_redis.exists(SharedFailures.ANY) == 0


def test_a_failure_at_one_instance_throttles_a_success_at_another(
    redis: RedisServer, shared_redis: redis_client.Redis
) -> None:
    """The other instance has no failure of its own to remember, yet it
    refuses the caller once the shared count is full."""
    first, second = Instance(redis.url), Instance(redis.url)

    async def scenario() -> None:
        await first.throttle.failed("nci_a", "192.0.2.1")
        await second.throttle.check("nci_a", "192.0.2.1")
        await first.throttle.failed("nci_a", "192.0.2.1")
        with pytest.raises(TooManyRequests):
            await second.throttle.check("nci_a", "192.0.2.1")
        await first.close()
        await second.close()

    asyncio.run(scenario())


def test_a_failing_client_sends_only_its_own_keys_to_the_counts(
    redis: RedisServer, shared_redis: redis_client.Redis
) -> None:
    """Another client at another address is checked by its marks alone,
    however often one client fails; the same address is counted."""
    first, second = Instance(redis.url), Instance(redis.url)

    async def scenario() -> tuple[int, int]:
        await first.throttle.failed("nci_a", "192.0.2.1")
        before = _script_runs(shared_redis)
        await second.throttle.check("nci_b", "192.0.2.2")
        elsewhere = _script_runs(shared_redis) - before
        before = _script_runs(shared_redis)
        await second.throttle.check("nci_b", "192.0.2.1")
        same_address = _script_runs(shared_redis) - before
        await first.close()
        await second.close()
        return elsewhere, same_address

    assert asyncio.run(scenario()) == (0, 1)


def test_each_failure_mark_lasts_its_own_window(
    redis: RedisServer, shared_redis: redis_client.Redis
) -> None:
    instance = Instance(redis.url, per_client="5/second")
    marks = instance.marks

    async def scenario() -> None:
        await instance.throttle.failed("nci_a", "192.0.2.1")
        client_key, address_key = _marks(shared_redis)
        # Each outlasts its window a little: the count is taken after it.
        assert 5_000 < shared_redis.pttl(client_key) <= 6_000
        assert 60_000 < shared_redis.pttl(address_key) <= 65_000
        # The mark for any key lasts as long as the longest of them.
        assert 60_000 < shared_redis.pttl(SharedFailures.ANY) <= 65_000
        await marks.mark([("k", 1)])
        assert await marks.marked(["k", "other"]) == {"k"}
        shared_redis.pexpire(SharedFailures.PREFIX + "k", 1)
        await asyncio.sleep(0.05)
        assert await marks.marked(["k", "other"]) == set()
        await instance.close()

    asyncio.run(scenario())


def _marks(server: redis_client.Redis) -> list[bytes]:
    """The failure marks in Redis, the client id's before the address's."""
    return sorted(
        server.keys(SharedFailures.PREFIX + "*"), key=lambda key: b"address" in key
    )


def _calls(server: redis_client.Redis, command: str) -> int:
    stats = server.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def test_checks_read_only_the_mark_for_any_key_while_none_is_set(
    redis: RedisServer, shared_redis: redis_client.Redis
) -> None:
    instance = Instance(redis.url)
    shared_redis.set(SharedFailures.PREFIX + "k", b"1", ex=60)
    before = _calls(shared_redis, "mget")

    async def scenario() -> frozenset[str]:
        try:
            return await instance.marks.marked(["k"])
        finally:
            await instance.close()

    assert asyncio.run(scenario()) == set()
    assert _calls(shared_redis, "mget") == before


def test_while_some_key_failed_a_check_reads_its_marks_in_one_round_trip(
    redis: RedisServer, shared_redis: redis_client.Redis
) -> None:
    """Once the mark for any key was found, checks read it again with their
    own marks; once it is gone, they read only it again."""
    instance = Instance(redis.url)
    shared_redis.set(SharedFailures.ANY, b"1", ex=60)
    shared_redis.set(SharedFailures.PREFIX + "k", b"1", ex=60)

    def reads() -> tuple[int, int]:
        return _calls(shared_redis, "exists"), _calls(shared_redis, "mget")

    async def scenario() -> list[tuple[frozenset[str], tuple[int, int]]]:
        answers = []
        try:
            for _ in range(3):
                before = reads()
                found = await instance.marks.marked(["k"])
                after = reads()
                answers.append((found, (after[0] - before[0], after[1] - before[1])))
                shared_redis.delete(SharedFailures.ANY, SharedFailures.PREFIX + "k")
        finally:
            await instance.close()
        return answers

    assert asyncio.run(scenario()) == [
        ({"k"}, (1, 1)),
        (set(), (0, 1)),
        (set(), (1, 0)),
    ]


def test_checks_that_begin_together_share_one_read(
    redis: RedisServer, shared_redis: redis_client.Redis
) -> None:
    """Ten checks begun together send one read, which asks for every key
    and answers each check about its own."""
    instance = Instance(redis.url)
    shared_redis.set(SharedFailures.ANY, b"1", ex=60)
    shared_redis.set(SharedFailures.PREFIX + "k3", b"1", ex=60)
    before = _calls(shared_redis, "exists"), _calls(shared_redis, "mget")

    async def scenario() -> list[frozenset[str]]:
        marks = instance.marks
        try:
            asked = (marks.marked([f"k{n}", "shared"]) for n in range(10))
            return [
                found & {f"k{n}"}
                for n, found in enumerate(await asyncio.gather(*asked))
            ]
        finally:
            await instance.close()

    assert asyncio.run(scenario()) == [set()] * 3 + [{"k3"}] + [set()] * 6
    after = _calls(shared_redis, "exists"), _calls(shared_redis, "mget")
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)


def test_a_check_that_begins_after_a_mark_sees_it_while_an_older_read_is_out(
    redis: RedisServer, shared_redis: redis_client.Redis
) -> None:
    """The read already on its way answered for the time before the mark;
    a check begun after the mark waits for a read of its own."""
    instance, other_instance = Instance(redis.url), Instance(redis.url)
    marks = instance.marks
    answered = asyncio.Event()
    read_keys = marks._redis.mget

    async def answer_late(keys: list[str]) -> list[bytes | None]:
        found = await read_keys(keys)
        await answered.wait()
        return found

    marks._redis.mget = answer_late  # type: ignore[method-assign]
    # Some key failed before: checks read the marks of their own keys.
    shared_redis.set(SharedFailures.ANY, b"1", ex=60)

    async def scenario() -> tuple[bool, bool]:
        earlier = asyncio.create_task(marks.marked(["k"]))
        await asyncio.sleep(0.05)
        await other_instance.marks.mark([("k", 60)])
        later = asyncio.create_task(marks.marked(["k"]))
        await asyncio.sleep(0.05)
        answered.set()
        try:
            return "k" in await earlier, "k" in await later
        finally:
            await instance.close()
            await other_instance.close()

    assert asyncio.run(scenario()) == (False, True)


def test_a_cancelled_check_leaves_the_others_their_answer(
    redis: RedisServer, shared_redis: redis_client.Redis
) -> None:
    instance = Instance(redis.url)
    marks = instance.marks

    async def scenario() -> frozenset[str]:
        cancelled = asyncio.create_task(marks.marked(["k"]))
        kept = asyncio.create_task(marks.marked(["k"]))
        await asyncio.sleep(0)
        cancelled.cancel()
        try:
            return await kept
        finally:
            await instance.close()

    shared_redis.set(SharedFailures.ANY, b"1", ex=60)
    shared_redis.set(SharedFailures.PREFIX + "k", b"1", ex=60)
    assert asyncio.run(scenario()) == {"k"}


def test_checks_queued_behind_a_failed_read_are_answered_with_it() -> None:
    """When Redis does not answer, the checks that waited for the next read
    get the same answer, to look at the counts, rather than wait as long
    again; Redis is then taken for down."""
    instance = Instance(f"redis://127.0.0.1:{free_port()}/0")
    marks = instance.marks
    reads: list[str] = []
    release = asyncio.Event()
    read_key = marks._redis.exists

    async def read_when_released(key: str) -> int:
        reads.append(key)
        await release.wait()
        return await read_key(key)

    marks._redis.exists = read_when_released  # type: ignore[method-assign]

    async def scenario() -> list[BaseException | frozenset[str]]:
        earlier = asyncio.create_task(marks.marked(["a"]))
        await asyncio.sleep(0.05)
        queued = asyncio.create_task(marks.marked(["b"]))
        await asyncio.sleep(0.05)
        release.set()
        try:
            return await asyncio.gather(earlier, queued, return_exceptions=True)
        finally:
            await instance.close()

    assert asyncio.run(scenario()) == [{"a"}, {"b"}]
    assert len(reads) == 1
    assert not instance.counts.shared


def test_failures_are_counted_in_memory_while_redis_fails() -> None:
    """Without an answer from Redis the limits still hold, counted here, and
    other callers still pass."""
    instance = Instance(f"redis://127.0.0.1:{free_port()}/0")
    throttle = instance.throttle

    async def scenario() -> None:
        try:
            await throttle.check("nci_a", "192.0.2.1")
            await throttle.failed("nci_a", "192.0.2.1")
            await throttle.failed("nci_a", "192.0.2.1")
            with pytest.raises(TooManyRequests):
                await throttle.check("nci_a", "192.0.2.1")
            with pytest.raises(TooManyRequests):
                await throttle.failed("nci_a", "192.0.2.1")
            await throttle.check("nci_b", "192.0.2.1")
        finally:
            await instance.close()

    asyncio.run(scenario())
    assert not instance.counts.shared


def test_redis_is_not_asked_again_until_it_answers_a_ping(
    redis: RedisServer, shared_redis: redis_client.Redis
) -> None:
    """Once a call to Redis failed, checks and failures are counted here
    without a word to Redis; once it answers a ping, they go to it again."""
    instance = Instance(redis.url, per_client="5/minute")
    throttle = instance.throttle

    async def scenario() -> tuple[int, int]:
        try:
            instance.counts.failed(redis_client.ConnectionError("gone for a moment"))
            before = _all_calls(shared_redis)
            for _ in range(3):
                await throttle.failed("nci_a", "192.0.2.1")
                await throttle.check("nci_a", "192.0.2.1")
            while_down = _all_calls(shared_redis) - before
            assert await instance.counts.reachable()
            scripts = _script_runs(shared_redis)
            await throttle.failed("nci_a", "192.0.2.1")
            return while_down, _script_runs(shared_redis) - scripts
        finally:
            await instance.close()

    # Back in Redis: one count for the client id, one for the address.
    assert asyncio.run(scenario()) == (0, 2)
    assert len(_marks(shared_redis)) == 2


def _all_calls(server: redis_client.Redis) -> int:
    """Commands Redis has run, but for the INFO calls that count them."""
    stats = server.info("commandstats")
    return sum(
        int(counts.get("calls", 0))
        for name, counts in stats.items()
        if name != "cmdstat_info"
    )


def test_an_outage_is_logged_when_it_begins_and_when_it_ends(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """However many calls fail, one warning says the counts went to memory,
    and one line says when Redis answers again."""
    counts = SharedCounts(own_redis.url, retry_seconds=0.05)
    throttle = FailureThrottle(parse("100/minute"), parse("100/minute"), counts)

    async def scenario() -> None:
        try:
            await throttle.failed("nci_a", "192.0.2.1")
            own_redis.stop()
            for _ in range(20):
                await throttle.failed("nci_a", "192.0.2.1")
                await throttle.check("nci_a", "192.0.2.1")
            own_redis.start()
            for _ in range(100):
                if counts.shared:
                    break
                await asyncio.sleep(0.05)
            await throttle.failed("nci_a", "192.0.2.1")
        finally:
            await counts.close()

    with caplog.at_level(logging.INFO, logger="netcalc.auth"):
        asyncio.run(scenario())
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in lines] == [logging.WARNING, logging.INFO]
    assert "memory" in lines[0][1]
    assert lines[1][1] == "Redis answers again; failure counts are shared again"
