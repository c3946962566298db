"""The keys one instance holds in memory, kept in step with the database."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine

from netcalc.auth.keys import KeySealer, SigningKey, create_key, load_keys
from netcalc.db import utcnow

if TYPE_CHECKING:
    from netcalc.auth.tokens import AccessToken, TokenPolicy

_UNKNOWN_KID_REFRESH_SECONDS = 5.0
"""Least time between reloads caused by tokens naming an unknown key id."""

VERIFIED_TOKENS_KEPT = 2048
"""How many verified tokens an instance remembers; a few MiB at most."""


class VerifiedTokens:
    """Tokens whose signature one of our keys verified, and what they say.

    A client sends the same token with every call until it expires, and
    checking its signature costs more than the rest of the call. What a
    token says is kept once its signature and claims were checked against
    a policy; its times and liveness are checked on every call. When full,
    the oldest entry goes first.
    """

    def __init__(self, capacity: int = VERIFIED_TOKENS_KEPT) -> None:
        self._capacity = capacity
        self._tokens: dict[str, tuple[TokenPolicy, AccessToken]] = {}

    def get(self, token: str, policy: TokenPolicy) -> AccessToken | None:
        """The token as verified before under this same policy, if it was."""
        kept = self._tokens.get(token)
        if kept is None or kept[0] is not policy:
            return None
        return kept[1]

    def forget_all(self) -> None:
        """Check every token again, as when a key that signed some left."""
        self._tokens.clear()

    def remember(self, token: str, policy: TokenPolicy, access: AccessToken) -> None:
        """Note that `token` is signed by our key and valid under `policy`."""
        if len(self._tokens) >= self._capacity:
            del self._tokens[next(iter(self._tokens))]
        self._tokens[token] = (policy, access)


class KeyRing:
    """The current signing key and every key still published, by key id."""

    def __init__(self, engine: AsyncEngine, sealer: KeySealer, alg: str) -> None:
        self._engine = engine
        self._sealer = sealer
        self._alg = alg
        self._keys: list[SigningKey] = []
        self._by_kid: dict[str, SigningKey] = {}
        self._last_refresh = 0.0
        self._signing: SigningKey | None = None
        self._choose_again_at = math.inf
        self.verified = VerifiedTokens()

    async def start(self) -> None:
        """Load the keys, making a first one of the configured kind if needed."""
        await self.refresh()
        if self._signing is None:
            await create_key(self._engine, self._sealer, self._alg)
            await self.refresh()

    async def refresh(self) -> None:
        """Reload from the database, picking up rotations by any instance."""
        keys = await load_keys(self._engine, self._sealer)
        by_kid = {key.kid: key for key in keys}
        if self._by_kid.keys() - by_kid.keys():
            # A key left the set: the tokens it signed are refused from now
            # on, those verified before included.
            self.verified.forget_all()
        self._keys = keys
        self._by_kid = by_kid
        self._last_refresh = time.monotonic()
        self._choose()

    def _choose(self) -> None:
        """Sign with the oldest key due to retire, else the newest key.

        After a rotation that waits, the old key signs until its retirement
        while the new one is already published, so that every instance
        and every cache of the key set holds the new key before a token
        names it. That holds when the rotation changes the algorithm too:
        the keys say which algorithm signs, not this instance's setting.
        """
        live = self._unretired()
        retiring = [key for key in live if key.retired_at is not None]
        if retiring:
            self._signing = min(retiring, key=lambda key: key.created_at)
        else:
            self._signing = live[0] if live else None
        retires = self._signing.retired_at if self._signing else None
        self._choose_again_at = retires.timestamp() if retires else math.inf

    @property
    def next_alg(self) -> str | None:
        """The algorithm of the newest key still to sign, once any pending
        switch is done; None before the first key."""
        live = self._unretired()
        return live[0].alg if live else None

    def _unretired(self) -> list[SigningKey]:
        """The keys that sign now or will, newest first."""
        now = utcnow()
        return [
            key for key in self._keys if key.retired_at is None or key.retired_at > now
        ]

    def published_algs(self) -> list[str]:
        """The algorithms of the published keys, oldest first."""
        now = utcnow()
        algs = [key.alg for key in self._keys if key.is_published(now)]
        return list(dict.fromkeys(reversed(algs)))

    @property
    def current(self) -> SigningKey:
        """The key new tokens are signed with."""
        # Read per token: a float comparison, not a datetime, until a switch.
        if time.time() >= self._choose_again_at:
            self._choose()
        if self._signing is None:
            raise RuntimeError("no current signing key; run 'netcalc keys rotate'")
        return self._signing

    async def find(self, kid: str) -> SigningKey | None:
        """The published key with this id, reloading once if it is new to us."""
        key = self._by_kid.get(kid)
        if key is not None:
            return key
        if time.monotonic() - self._last_refresh < _UNKNOWN_KID_REFRESH_SECONDS:
            return None
        await self.refresh()
        return self._by_kid.get(kid)

    def jwks(self) -> dict[str, Any]:
        """The public key set of RFC 7517 §5."""
        now = utcnow()
        return {"keys": [k.public_jwk for k in self._keys if k.is_published(now)]}
