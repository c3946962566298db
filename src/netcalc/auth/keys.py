"""Signing keys: made, sealed, stored, rotated and published (RFC 7517).

Private keys live in the database sealed with a Fernet key derived from the
server secret, so every instance signs with the same current key. A retired
key stays published until the last token it could have signed has expired.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from hashlib import sha256
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from sqlalchemy import Select, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from netcalc.audit import CLI_ACTOR, record
from netcalc.auth.derive import derive_key
from netcalc.auth.tables import signing_keys
from netcalc.db import utcnow
from netcalc.errors import UsageError

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey

_JWK_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}
_JWK_MEMBERS_RSA = ("e", "kty", "n")

KEY_SET_MAX_AGE = 300
"""Seconds a resource server may cache the published key set (JWKS)."""

_ES256 = ec.ECDSA(hashes.SHA256())
_P256_BYTES = 32


@dataclass(frozen=True)
class SigningKey:
    """One key pair: the private half signs, the public half verifies."""

    kid: str
    alg: str
    private_key: PrivateKey
    public_jwk: dict[str, Any]
    created_at: datetime
    retired_at: datetime | None
    """When it stops signing: set at a rotation, at once or later."""
    published_until: datetime | None

    @cached_property
    def public_key(self) -> Any:
        """The public half, as the cryptography object PyJWT verifies with."""
        return self.private_key.public_key()

    def sign(self, signing_input: bytes) -> bytes:
        """The JWS signature of `signing_input` (RFC 7518 §3.3, §3.4, RFC 8037).

        Signs with cryptography directly: PyJWT's wrapper around the same
        call cost a sixth of the signature again on every token.
        """
        key = self.private_key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            # JWS wants r and s side by side, not the DER that OpenSSL gives.
            r, s = decode_dss_signature(key.sign(signing_input, _ES256))
            return r.to_bytes(_P256_BYTES, "big") + s.to_bytes(_P256_BYTES, "big")
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(signing_input)
        return key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())

    def is_published(self, now: datetime) -> bool:
        """True while tokens this key signed may still be unexpired."""
        return self.published_until is None or self.published_until > now


def _generate(alg: str) -> PrivateKey:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _public_jwk(key: PrivateKey) -> dict[str, Any]:
    public = key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        return dict(ECAlgorithm.to_jwk(public, as_dict=True))
    if isinstance(public, ed25519.Ed25519PublicKey):
        return dict(OKPAlgorithm.to_jwk(public, as_dict=True))
    return dict(RSAAlgorithm.to_jwk(public, as_dict=True))


def thumbprint(jwk: dict[str, Any]) -> str:
    """The RFC 7638 JWK thumbprint, used as the key id."""
    members = _JWK_MEMBERS.get(jwk["kty"], _JWK_MEMBERS_RSA)
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"))
    digest = sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class KeySealer:
    """Seals private keys for storage with a key derived from the server secret."""

    def __init__(self, server_secret: bytes) -> None:
        key = derive_key(server_secret, "netcalc signing key sealing")
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, key: PrivateKey) -> str:
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return self._fernet.encrypt(pem).decode()

    def open(self, sealed: str) -> PrivateKey:
        """The private key `sealed` holds.

        Raises:
            UsageError: this server secret did not seal it, as when one
                instance of a deployment was given another secret.
        """
        try:
            pem = self._fernet.decrypt(sealed.encode())
        except InvalidToken:
            raise UsageError(
                "The server secret does not open the signing keys stored in "
                "this database: set NETCALC_SECRET_KEY (or the file "
                "NETCALC_SECRET_KEY_FILE names) to the secret it was first "
                "served with, the same on every instance."
            ) from None
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(
            key,
            ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey,
        ):
            raise TypeError(f"unsupported signing key type {type(key).__name__}")
        return key


async def create_key(engine: AsyncEngine, sealer: KeySealer, alg: str) -> str:
    """Make and store a new key pair; it signs once no older key of its
    algorithm is still due to."""
    private_key = _generate(alg)
    jwk = _public_jwk(private_key)
    kid = thumbprint(jwk)
    jwk |= {"kid": kid, "alg": alg, "use": "sig"}
    async with engine.begin() as connection:
        await connection.execute(
            signing_keys.insert().values(
                kid=kid,
                alg=alg,
                public_jwk=json.dumps(jwk),
                private_key=sealer.seal(private_key),
                created_at=utcnow(),
            )
        )
    return kid


async def rotate_keys(
    engine: AsyncEngine,
    sealer: KeySealer,
    alg: str,
    max_token_ttl: int,
    *,
    switch_after: int = 0,
    withdraw: bool = False,
    actor: str = CLI_ACTOR,
) -> str:
    """Make a new key, published at once, and retire the current keys
    `switch_after` seconds from now; the new key signs from then on.

    A retired key stays published for `max_token_ttl` seconds after its
    retirement, the longest any token it signed can live. A key already due
    to retire later is retired at the new time instead, so a rotation with
    no wait ends every older key's signing at once. `withdraw` also ends
    the publication of every older key now, for keys that may have leaked:
    whoever holds one could sign tokens of any lifetime.
    """
    switch = utcnow() + timedelta(seconds=switch_after)
    async with engine.begin() as connection:
        await connection.execute(
            update(signing_keys)
            .where(
                or_(
                    signing_keys.c.retired_at.is_(None),
                    signing_keys.c.retired_at > switch,
                )
            )
            .values(
                retired_at=switch,
                published_until=switch + timedelta(seconds=max_token_ttl),
            )
        )
        if withdraw:
            await connection.execute(
                update(signing_keys)
                .where(signing_keys.c.published_until > switch)
                .values(published_until=switch)
            )
    kid = await create_key(engine, sealer, alg)
    details = {"alg": alg, "signs_from": switch.isoformat(), "withdrawn": withdraw}
    await record(engine, "keys.rotated", actor=actor, subject=kid, details=details)
    return kid


def _published() -> Select[Any]:
    """Every key still published, newest first."""
    return (
        select(signing_keys)
        .where(
            or_(
                signing_keys.c.published_until.is_(None),
                signing_keys.c.published_until > utcnow(),
            )
        )
        .order_by(signing_keys.c.created_at.desc())
    )


async def any_key_published(engine: AsyncEngine) -> bool:
    """Whether the database holds a key that servers still publish."""
    async with engine.connect() as connection:
        return (await connection.execute(_published().limit(1))).first() is not None


async def load_keys(engine: AsyncEngine, sealer: KeySealer) -> list[SigningKey]:
    """Every key still published, newest first."""
    async with engine.connect() as connection:
        rows = (await connection.execute(_published())).mappings().all()
    return [
        SigningKey(
            kid=row["kid"],
            alg=row["alg"],
            private_key=sealer.open(row["private_key"]),
            public_jwk=json.loads(row["public_jwk"]),
            created_at=row["created_at"],
            retired_at=row["retired_at"],
            published_until=row["published_until"],
        )
        for row in rows
    ]
