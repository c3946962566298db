"""Throttling of failed client authentication (CONTRACT §1).

Failures are counted in a moving window per client id and per remote
address, with the `limits` package, so a Redis storage can later share the
counts between instances. Only failures count: a busy, honest client is
never slowed by its own successes or by anyone else's failures.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._per_client = per_client
        self._per_address = per_address
        storage = storage or MemoryStorage()
        self._limiter = MovingWindowRateLimiter(storage)
        # When the counts live in this process, a key with no failure here
        # within its window cannot be over its limit. Knowing that saves
        # asking the storage on every success, which cost more than the rest
        # of the check. Shared counts include other instances' failures.
        self._local = isinstance(storage, MemoryStorage)
        self._last_failures = _LastFailures(clock)

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
        if self._local and not self._last_failures.any_within_window():
            # The usual case: no failure here for a whole window, so no key
            # needs hashing or looking up.
            return
        for limit, key in self._keys(client_id, address):
            if self._local and not self._last_failures.within_window(key):
                continue
            if not await self._limiter.test(limit, key):
                raise await self._refusal(limit, key)

    async def failed(self, client_id: str, address: str) -> None:
        """Count one failure, raising TooManyRequests if it is over a limit.

        Each count is taken atomically before the failure is answered, so
        concurrent guesses cannot all pass one earlier check together.
        """
        keys = self._keys(client_id, address)
        if self._local:
            for limit, key in keys:
                self._last_failures.note(key, limit)
        over = [
            (limit, key)
            for limit, key in keys
            if not await self._limiter.hit(limit, key)
        ]
        if over:
            raise await self._refusal(*over[0])


class _LastFailures:
    """When each key last failed here, forgotten once no window holds it."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._until: dict[str, float] = {}
        self._latest = -math.inf
        self._prune_at = _PRUNE_SIZE

    def note(self, key: str, limit: RateLimitItem) -> None:
        until = self._clock() + limit.get_expiry()
        self._until[key] = until
        self._latest = max(self._latest, until)
        if len(self._until) >= self._prune_at:
            self._prune()

    def __len__(self) -> int:
        return len(self._until)

    def any_within_window(self) -> bool:
        """True if any key failed here less than its limit's window ago."""
        return self._latest > self._clock()

    def within_window(self, key: str) -> bool:
        """True if `key` failed here less than its limit's window ago."""
        return self._until.get(key, -math.inf) > self._clock()

    def _prune(self) -> None:
        # Addresses and ids are the caller's choice: without pruning, a
        # stream of new ones would grow this without bound.
        now = self._clock()
        self._until = {key: until for key, until in self._until.items() if until > now}
        self._prune_at = max(_PRUNE_SIZE, 2 * len(self._until))


_PRUNE_SIZE = 1024
"""How many keys are kept before the expired ones are dropped."""
