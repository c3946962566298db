"""Throttling of failed client authentication (CONTRACT §1).

Failures are counted in a moving window per client id and per remote
address, with the `limits` package, so a Redis storage can later share the
counts between instances. Only failures count: a busy, honest client is
never slowed by its own successes or by anyone else's failures.
"""

from __future__ import annotations

import math
import time
from hashlib import sha256

from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from netcalc.errors import TooManyRequests


def _client_key(client_id: str) -> str:
    # A digest keeps attacker-chosen ids from growing the counter keys.
    return "client:" + sha256(client_id.encode(errors="replace")).hexdigest()[:32]


class FailureThrottle:
    """Counts authentication failures and refuses callers over the limit."""

    def __init__(
        self,
        per_client: RateLimitItem,
        per_address: RateLimitItem,
        storage: Storage | None = None,
    ) -> None:
        self._per_client = per_client
        self._per_address = per_address
        self._limiter = MovingWindowRateLimiter(storage or MemoryStorage())

    def _keys(self, client_id: str, address: str) -> list[tuple[RateLimitItem, str]]:
        return [
            (self._per_client, _client_key(client_id)),
            (self._per_address, "address:" + address),
        ]

    async def _refusal(self, limit: RateLimitItem, key: str) -> TooManyRequests:
        stats = await self._limiter.get_window_stats(limit, key)
        return TooManyRequests(math.ceil(stats.reset_time - time.time()))

    async def check(self, client_id: str, address: str) -> None:
        """Raise TooManyRequests when either count is already at its limit."""
        for limit, key in self._keys(client_id, address):
            if not await self._limiter.test(limit, key):
                raise await self._refusal(limit, key)

    async def failed(self, client_id: str, address: str) -> None:
        """Count one failure, raising TooManyRequests if it is over a limit.

        Each count is taken atomically before the failure is answered, so
        concurrent guesses cannot all pass one earlier check together.
        """
        over = [
            (limit, key)
            for limit, key in self._keys(client_id, address)
            if not await self._limiter.hit(limit, key)
        ]
        if over:
            raise await self._refusal(*over[0])
