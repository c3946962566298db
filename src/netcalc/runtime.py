"""The long-lived parts of one running instance, built once at start."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request

from netcalc.accounts.sessions import ConsoleAuth
from netcalc.auth.counts import LocalCounts, SharedCounts
from netcalc.auth.derive import derive_key
from netcalc.auth.grant import ClientCredentialsGrant
from netcalc.auth.keyring import KeyRing
from netcalc.auth.keys import KeySealer, any_key_published
from netcalc.auth.revocations import Revocations, feed_for
from netcalc.auth.store import find_client
from netcalc.auth.throttle import FailureThrottle, SharedFailures
from netcalc.auth.tokens import TokenPolicy
from netcalc.auth.usage import UsageRecorder
from netcalc.db import Arrivals, Reads, create_engine, reads_for
from netcalc.errors import UsageError
from netcalc.settings import Settings

SECRET_HASH_PURPOSE = "netcalc client secret hash"


@dataclass
class Runtime:
    """Settings, database, keys and the grant, shared by every request."""

    settings: Settings
    engine: AsyncEngine
    keys: KeyRing
    policy: TokenPolicy
    throttle: FailureThrottle
    usage: UsageRecorder
    grant: ClientCredentialsGrant
    console: ConsoleAuth
    revocations: Revocations
    reads: Reads
    arrivals: Arrivals
    secret_hash_key: bytes
    shared_counts: SharedCounts | None

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        """Wire the parts together; nothing touches the database yet."""
        # Read once: without NETCALC_SECRET_KEY it comes from a file.
        secret = settings.server_secret()
        hash_key = derive_key(secret, SECRET_HASH_PURPOSE)
        engine = create_engine(settings.database_url)
        keys = KeyRing(engine, KeySealer(secret), settings.signing_alg)
        policy = TokenPolicy(
            settings.issuer, settings.audience, settings.clock_skew_seconds
        )
        # In Redis, every instance shares the counts; without it, or while
        # it fails, each keeps its own.
        shared = SharedCounts(settings.redis_url) if settings.redis_url else None
        counts = shared or LocalCounts()
        throttle = FailureThrottle(
            settings.client_limit,
            settings.address_limit,
            counts,
            shared_failures=SharedFailures(shared) if shared is not None else None,
        )
        usage = UsageRecorder(engine, settings.usage_flush_seconds)
        arrivals = Arrivals()
        reads = reads_for(engine, arrivals)
        grant = ClientCredentialsGrant(
            find_client=partial(find_client, reads),
            throttle=throttle,
            keys=keys,
            policy=policy,
            secret_hash_key=hash_key,
            default_ttl=settings.token_ttl,
            usage=usage,
            clock=time.time,
        )
        console = ConsoleAuth.build(settings, engine, secret, counts)
        revocations = Revocations(
            engine,
            reads,
            feed_for(settings.database_url),
            settings.revocation_resync_seconds,
        )
        return cls(
            settings,
            engine,
            keys,
            policy,
            throttle,
            usage,
            grant,
            console,
            revocations,
            reads,
            arrivals,
            hash_key,
            shared,
        )


def secret_hash_key(server_secret: bytes) -> bytes:
    """The key client secrets are hashed with, for code outside a Runtime."""
    return derive_key(server_secret, SECRET_HASH_PURPOSE)


@dataclass(frozen=True)
class ProvenSecret:
    """The server secret, and the started key ring whose keys it opened."""

    secret: bytes = field(repr=False)
    keys: KeyRing


async def proven_server_secret(settings: Settings, engine: AsyncEngine) -> ProvenSecret:
    """The server secret, once it opens every signing key servers publish.

    A command run with another secret than the servers' would hash client
    secrets that never work, or seal a key no server can open. Before the
    database holds any key, the first key is made with this secret, as
    `serve` would make it: from then on the database tells a wrong secret.
    The key ring that proved it comes back started, for `serve` to read.

    Raises:
        UsageError: no secret is set though the keys need one, or it is
            not the secret that sealed them.
    """
    unset = settings.secret_key is None and not settings.secret_key_file.exists()
    if unset and await any_key_published(engine):
        raise UsageError(
            "This database's signing keys were sealed with a server secret, "
            "and none is set: set NETCALC_SECRET_KEY (or put it in the file "
            f"NETCALC_SECRET_KEY_FILE names, now '{settings.secret_key_file}') "
            "to the secret the servers use."
        )
    secret = settings.server_secret()
    keys = KeyRing(engine, KeySealer(secret), settings.signing_alg)
    await keys.start()
    return ProvenSecret(secret, keys)


def runtime_of(request: Request) -> Runtime:
    """The Runtime of the app serving this request."""
    # A plain attribute of the app, found through the scope: Starlette's
    # `app.state` finds its entries through a Python __getattr__, and
    # `request.app` is a property, each a call of its own on every request.
    runtime: Runtime = request.scope["app"].runtime
    return runtime
