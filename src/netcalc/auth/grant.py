"""The client credentials grant (RFC 6749 §4.4), free of HTTP.

Given a token request whose shape is already checked, authenticate the
client, decide the scopes and sign the token. The checks run in the order of
CONTRACT §1: throttle, lookup, secret, revocation, then what may be granted.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from netcalc.auth.client_secrets import is_client_secret, secret_matches
from netcalc.auth.keyring import KeyRing
from netcalc.auth.scopes import grant_scopes, parse_scope
from netcalc.auth.signatures import TurnSigner
from netcalc.auth.store import ClientRecord
from netcalc.auth.throttle import FailureThrottle
from netcalc.auth.token_request import ClientAuthentication, TokenRequest
from netcalc.auth.tokens import TokenPolicy, issue_token
from netcalc.auth.usage import UsageRecorder
from netcalc.db import utcnow
from netcalc.errors import (
    CredentialsNotFound,
    GrantError,
    InvalidCredentials,
    InvalidGrant,
    RevokedCredentials,
)

ClientFinder = Callable[[str], Awaitable[ClientRecord | None]]


@dataclass(slots=True)
class GrantedToken:
    """An access token just issued, with what the response reports of it;
    not frozen, as ClientAuthentication is not (netcalc.auth.token_request)."""

    access_token: str
    expires_in: int
    scopes: tuple[str, ...]
    client_id: str
    jti: str


class ClientCredentialsGrant:
    """Issues access tokens to clients that prove their credentials."""

    def __init__(
        self,
        *,
        find_client: ClientFinder,
        throttle: FailureThrottle,
        keys: KeyRing,
        policy: TokenPolicy,
        secret_hash_key: bytes,
        default_ttl: int,
        usage: UsageRecorder,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._find_client = find_client
        self._throttle = throttle
        self._keys = keys
        self._policy = policy
        self._hash_key = secret_hash_key
        self._default_ttl = default_ttl
        self._usage = usage
        self._clock = clock
        self._signer = TurnSigner()

    async def authenticate(
        self, presented: ClientAuthentication, address: str
    ) -> ClientRecord:
        """The client's stored record, once its secret is proven (RFC 6749 §2.3).

        Throttled and counted like the token endpoint, so introspection and
        revocation offer no side door for guessing secrets.
        """
        try:
            client = await self._check_secret(presented)
        except GrantError:
            await self._throttle.failed(presented.client_id, address)
            raise
        # Checked after the secret, not before, so concurrent failures that
        # crossed a limit meanwhile still refuse this caller: a throttled
        # caller never learns whether its secret was right.
        await self._throttle.check(presented.client_id, address)
        return client

    async def grant(self, request: TokenRequest, address: str) -> GrantedToken:
        """Authenticate the client and issue its token, or raise a GrantError."""
        client = await self.authenticate(request.client, address)
        if client.account_disabled:
            raise InvalidGrant("The account of these credentials is disabled.")
        scopes = grant_scopes(parse_scope(request.scope), client.scopes)
        ttl = client.token_ttl or self._default_ttl
        token, jti = await issue_token(
            self._keys.current,
            self._policy,
            self._signer,
            client_id=client.client_id,
            account_id=client.account_id,
            scopes=scopes,
            ttl=ttl,
            now=int(self._clock()),
        )
        self._usage.used(client.client_id)
        return GrantedToken(token, ttl, scopes, client.client_id, jti)

    async def _check_secret(self, presented: ClientAuthentication) -> ClientRecord:
        client = None
        if presented.id_is_ours:
            client = await self._find_client(presented.client_id)
        if client is None:
            raise CredentialsNotFound()
        if not self._secret_matches(client, presented.client_secret):
            raise InvalidCredentials()
        if client.revoked:
            raise RevokedCredentials()
        return client

    def _secret_matches(self, client: ClientRecord, secret: str) -> bool:
        # The checksum refuses mistyped secrets before any hashing.
        if not is_client_secret(secret):
            return False
        if secret_matches(self._hash_key, secret, client.secret_hash):
            return True
        grace_ends = client.previous_secret_expires_at
        return (
            grace_ends is not None
            and grace_ends > utcnow()
            and secret_matches(self._hash_key, secret, client.previous_secret_hash)
        )
