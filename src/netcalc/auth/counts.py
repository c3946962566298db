"""Where the throttles keep their moving-window counts: in this process's
memory, or in Redis, where every instance shares them.

The counts are a safety net against guessing, not a reason to refuse every
client. When Redis fails, or does not answer within REDIS_TIMEOUT_SECONDS,
counting goes on in memory, each instance on its own and from nothing, and
Redis is pinged in the background every REDIS_RETRY_SECONDS until it
answers: during an outage no request waits on Redis. The log says once
when the counts fall back to memory and once when they are shared again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger("netcalc.auth")

REDIS_TIMEOUT_SECONDS = 0.25
"""How long connecting to Redis, or one of its answers, may take before
Redis counts as failed. Redis on the same network answers in about a
millisecond, so this is far past a slow answer, and a Redis that takes
connections but answers nothing (paused, or its link silent) holds the
requests in flight no longer than this: its client's default is 5 seconds."""

REDIS_RETRY_SECONDS = 3.0
"""How long after Redis failed it is pinged, and again until it answers."""

REDIS_FAILURES = (RedisError, OSError)
"""What a call to Redis raises when Redis cannot serve it."""

T = TypeVar("T")

Question = Callable[[MovingWindowRateLimiter], Awaitable[T]]
"""A call to one limiter, asked of whichever holds the counts now."""


class LocalCounts:
    """Moving-window counts in this process's memory."""

    shared = False
    """True while the counts are the ones every instance shares: read on
    every token request, so a plain attribute."""

    def __init__(self) -> None:
        self._memory = MovingWindowRateLimiter(MemoryStorage())

    async def hit(self, limit: RateLimitItem, key: str) -> bool:
        """Count one event for `key`; False if it is over `limit`."""
        return await self._ask(lambda limiter: limiter.hit(limit, key))

    async def test(self, limit: RateLimitItem, key: str) -> bool:
        """True if one more event for `key` would be within `limit`."""
        return await self._ask(lambda limiter: limiter.test(limit, key))

    async def reset_time(self, limit: RateLimitItem, key: str) -> float:
        """When the oldest event counted for `key` leaves the window."""
        stats = await self._ask(lambda limiter: limiter.get_window_stats(limit, key))
        return stats.reset_time

    async def _ask(self, question: Question[T]) -> T:
        return await question(self._memory)


class SharedCounts(LocalCounts):
    """Counts in Redis, which every instance shares; in memory while Redis
    fails, starting from nothing.

    `shared` turns False at the first call to Redis that fails, and True
    again once Redis answers a ping, sent every `retry_seconds` meanwhile.
    """

    def __init__(self, url: str, retry_seconds: float = REDIS_RETRY_SECONDS) -> None:
        super().__init__()
        self.shared = True
        # For the pings, and for other keys kept beside the counts.
        self.client = Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        )
        storage = RedisStorage(
            "async+" + url,
            implementation="redispy",
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        )
        self._redis = MovingWindowRateLimiter(storage)
        self._retry_seconds = retry_seconds
        self._pings: asyncio.Task[None] | None = None

    def failed(self, error: Exception) -> None:
        """Note that a call to Redis failed: until Redis answers a ping, the
        counts are kept in memory."""
        if not self.shared:
            return
        self.shared = False
        logger.warning(
            "Redis failed (%s: %s); counting failures in this process's memory "
            "until it answers again",
            type(error).__name__,
            error,
        )
        if self._pings is None or self._pings.done():
            self._pings = asyncio.get_running_loop().create_task(self._ping())

    async def reachable(self) -> bool:
        """Whether Redis answers a ping now; a failure counts as any call's."""
        try:
            await self.client.ping()
        except REDIS_FAILURES as error:
            self.failed(error)
            return False
        if not self.shared:
            self.shared = True
            logger.info("Redis answers again; failure counts are shared again")
        return True

    async def close(self) -> None:
        """Stop pinging and let go of the connections."""
        if self._pings is not None:
            self._pings.cancel()
            await asyncio.gather(self._pings, return_exceptions=True)
            self._pings = None
        await self.client.aclose()

    async def _ping(self) -> None:
        while not self.shared:
            await asyncio.sleep(self._retry_seconds)
            await self.reachable()

    async def _ask(self, question: Question[T]) -> T:
        if self.shared:
            try:
                return await question(self._redis)
            except REDIS_FAILURES as error:
                self.failed(error)
        return await question(self._memory)
