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
        local = not self._counts.shared
        if local and not self._last_failures.any_within_window():
            # The usual case: no failure for a whole window, so no key needs
            # hashing or looking up.
            return
        for limit, key in await self._recently_failed(client_id, address, local):
            if not await self._counts.test(limit, key):
                raise await self._refusal(limit, key)

    async def _recently_failed(
        self, client_id: str, address: str, local: bool
    ) -> list[tuple[RateLimitItem, str]]:
        """The caller's keys that failed within their window: no other key
        can be at its limit."""
        keys = self._keys(client_id, address)
        if local:
            within = self._last_failures.within_window
            failed = frozenset(key for _, key in keys if within(key))
        elif self._shared_failures is not None:
            failed = await self._shared_failures.marked([key for _, key in keys])
        else:
            return keys
        return [(limit, key) for limit, key in keys if key in failed]

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
            await self._shared_failures.mark(
                [(key, limit.get_expiry()) for limit, key in keys]
            )
        over = [
            (limit, key)
            for limit, key in keys
            if not await self._counts.hit(limit, key)
        ]
        if over:
            raise await self._refusal(*over[0])

    async def close(self) -> None:
        """Forget the shared failure marks' read in flight, if any."""
        if self._shared_failures is not None:
            await self._shared_failures.close()


MARK_MARGIN_SECONDS = 5
"""How much longer than its window a failure mark lasts. The mark is set
before the failure is counted, so without a margin it would be gone a
moment before that count leaves the window."""


class SharedFailures:
    """Which throttle keys failed at any instance within their window.

    Each failure sets, in Redis, a mark for each of its keys and one for
    any key, each expiring a little after its window. Reading marks is one
    round trip; testing both moving windows cost two script runs, most of a
    token request on PostgreSQL. While no key failed, a check reads only the
    mark for any key; once one did, it reads the marks of its own keys, with
    the mark for any key in the same read, so a client that keeps failing
    somewhere sends no other client's check to the scripts. Checks that
    begin while a read is on its way share the next one, which asks for all
    their keys at once and is sent after all of them began, so none misses
    a mark made before it. A failure of Redis is reported to the counts,
    which then stop asking it until it answers again.
    """

    ANY = "netcalc:throttle:recent-failure"
    PREFIX = "netcalc:throttle:failed:"

    def __init__(self, counts: SharedCounts) -> None:
        self._counts = counts
        self._redis = counts.client
        self._any = FreshRead(self._read_any)
        self._asked: set[str] = set()
        self._marks = FreshRead(self._read_marks)
        self._any_was_set = False

    async def mark(self, windows: list[tuple[str, int]]) -> None:
        """Note a failure of each key now; its mark lasts its window, in
        seconds, and MARK_MARGIN_SECONDS from now, and the mark for any key
        as long as the longest of them."""
        lasting = [(key, seconds + MARK_MARGIN_SECONDS) for key, seconds in windows]
        try:
            async with self._redis.pipeline(transaction=False) as pipeline:
                for key, seconds in lasting:
                    pipeline.set(self.PREFIX + key, b"1", ex=seconds)
                longest = max(seconds for _, seconds in lasting)
                pipeline.set(self.ANY, b"1", ex=longest)
                await pipeline.execute()
        except REDIS_FAILURES as error:
            self._counts.failed(error)

    async def marked(self, keys: list[str]) -> frozenset[str]:
        """Which of `keys` failed at some instance within their window; all
        of them when Redis cannot tell: the counts, in memory from then on,
        can."""
        try:
            if not self._any_was_set and not await self._any.answer():
                return frozenset()
            self._asked.update(keys)
            return await self._marks.answer()
        except REDIS_FAILURES as error:
            self._counts.failed(error)
            return frozenset(keys)

    async def _read_any(self) -> bool:
        self._any_was_set = bool(await self._redis.exists(self.ANY))
        return self._any_was_set

    async def _read_marks(self) -> frozenset[str]:
        # Taken as the read is sent, before it waits: every check that
        # joined this read has asked for its keys by now.
        keys, self._asked = list(self._asked), set()
        any_mark, *values = await self._redis.mget(
            [self.ANY, *(self.PREFIX + key for key in keys)]
        )
        self._any_was_set = any_mark is not None
        return frozenset(
            key for key, value in zip(keys, values, strict=True) if value is not None
        )

    async def close(self) -> None:
        # The counts own the client.
        self._any.forget()
        self._marks.forget()
        self._asked.clear()


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
