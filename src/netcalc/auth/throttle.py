"""Throttling of failed client authentication (CONTRACT §1).

Failures are counted in a moving window per client id and per remote
address, with the `limits` package, in this process's memory or in Redis,
where every instance shares them (`netcalc.auth.counts`). Only failures
count: a busy, honest client is never slowed by its own successes or by
anyone else's failures.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from hashlib import sha256

from limits import RateLimitItem

from netcalc.auth.counts import REDIS_FAILURES, LocalCounts, SharedCounts
from netcalc.errors import TooManyRequests
from netcalc.fresh_reads import FreshRead


def _client_key(client_id: str) -> str:
    # A digest keeps attacker-chosen ids from growing the counter keys.
    return "client:" + sha256(client_id.encode(errors="replace")).hexdigest()[:32]


class FailureThrottle:
    """Counts authentication failures and refuses callers over the limit."""

    def __init__(
        self,
        per_client: RateLimitItem,
        per_address: RateLimitItem,
        counts: LocalCounts | None = None,
        clock: Callable[[], float] = time.time,
        shared_failures: SharedFailures | None = None,
    ) -> None:
        self._per_client = per_client
        self._per_address = per_address
        self._counts = counts or LocalCounts()
        # While the counts are in this process, a key with no failure here
        # within its window cannot be over its limit. Knowing that saves
        # asking the counts on every success, which cost more than the rest
        # of the check. Shared counts include other instances' failures.
        self._last_failures = _LastFailures(clock)
        # Shared counts can skip the storage the same way when every
        # instance marks its failures where the others look.
        self._shared_failures = shared_failures
        self._window = max(per_client.get_expiry(), per_address.get_expiry())

    def _keys(self, client_id: str, address: str) -> list[tuple[RateLimitItem, str]]:
        return [
            (self._per_client, _client_key(client_id)),
            (self._per_address, "address:" + address),
        ]

    async def _refusal(self, limit: RateLimitItem, key: str) -> TooManyRequests:
        reset_time = await self._counts.reset_time(limit, key)
        return TooManyRequests(math.ceil(reset_time - time.time()))

    async def check(self, client_id: str, address: str) -> None:
        """Raise TooManyRequests when either count is already at its limit."""
        if not await self._any_recent_failure():
            # The usual case: no failure for a whole window, so no key needs
            # hashing or looking up.
            return
        local = not self._counts.shared
        for limit, key in self._keys(client_id, address):
            if local and not self._last_failures.within_window(key):
                continue
            if not await self._counts.test(limit, key):
                raise await self._refusal(limit, key)

    async def failed(self, client_id: str, address: str) -> None:
        """Count one failure, raising TooManyRequests if it is over a limit.

        Each count is taken atomically before the failure is answered, so
        concurrent guesses cannot all pass one earlier check together.
        """
        keys = self._keys(client_id, address)
        # Noted with shared counts too: should Redis fail, counting goes on
        # in memory, where a check skips the keys not noted.
        for limit, key in keys:
            self._last_failures.note(key, limit)
        if self._counts.shared and self._shared_failures is not None:
            # Marked before counting: a check that finds no mark ran before
            # this failure counted.
            await self._shared_failures.mark(self._window)
        over = [
            (limit, key)
            for limit, key in keys
            if not await self._counts.hit(limit, key)
        ]
        if over:
            raise await self._refusal(*over[0])

    async def _any_recent_failure(self) -> bool:
        if not self._counts.shared:
            return self._last_failures.any_within_window()
        if self._shared_failures is not None:
            return await self._shared_failures.any_within_window()
        return True

    async def close(self) -> None:
        """Forget the shared failure mark's read in flight, if any."""
        if self._shared_failures is not None:
            await self._shared_failures.close()


class SharedFailures:
    """Whether any instance failed an authentication within the longest
    window, as one Redis key that expires a window after the last failure.

    Reading one key is a plain round trip; testing both moving windows cost
    two script runs, and it was most of a token request on PostgreSQL.
    Checks that begin while a read is on its way share the next one, which
    is sent after all of them began, so none misses a mark made before it.
    A failure of Redis is reported to the counts, which then stop asking it
    until it answers again.
    """

    KEY = "netcalc:throttle:recent-failure"

    def __init__(self, counts: SharedCounts) -> None:
        self._counts = counts
        self._redis = counts.client
        self._marked = FreshRead(self._read_mark)

    async def mark(self, window_seconds: int) -> None:
        """Note a failure now; the mark lasts a whole window from now."""
        try:
            await self._redis.set(self.KEY, b"1", ex=window_seconds)
        except REDIS_FAILURES as error:
            self._counts.failed(error)

    async def any_within_window(self) -> bool:
        """True while some instance's last failure is within the window, and
        when Redis cannot tell: the counts, in memory from then on, can."""
        try:
            return await self._marked.answer()
        except REDIS_FAILURES as error:
            self._counts.failed(error)
            return True

    async def _read_mark(self) -> bool:
        return bool(await self._redis.exists(self.KEY))

    async def close(self) -> None:
        # The counts own the client.
        self._marked.forget()


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
