"""JWT access tokens in the profile of RFC 9068: issue and verify.

Verification runs in two explicit steps: first the JOSE header and the
signature, with the algorithm taken from our key, never from the token; then
the claims, against a clock passed in so tests can move time.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jwt import PyJWS
from jwt.exceptions import PyJWTError

from netcalc.auth.keyring import KeyRing
from netcalc.auth.keys import SigningKey
from netcalc.errors import InvalidToken

TOKEN_TYPE = "at+jwt"
"""The `typ` header of RFC 9068 §2.1."""

_TOKEN_TYPES = (TOKEN_TYPE, "application/at+jwt")

_FORBIDDEN_HEADERS = frozenset({"jku", "jwk", "x5u", "x5c", "crit"})
"""Headers that would let a token choose its own key or semantics."""

_jws = PyJWS()


@dataclass(frozen=True)
class AccessToken:
    """The verified claims of an access token netcalc issued."""

    jti: str
    client_id: str
    account_id: str
    scopes: tuple[str, ...]
    issued_at: int
    expires_at: int
    claims: dict[str, Any]


@dataclass(frozen=True)
class TokenPolicy:
    """What a valid token must say: who issued it, for whom, and the leeway."""

    issuer: str
    audience: str
    leeway: int


def issue_token(
    key: SigningKey,
    policy: TokenPolicy,
    *,
    client_id: str,
    account_id: str,
    scopes: tuple[str, ...],
    ttl: int,
    now: int,
) -> tuple[str, str]:
    """Sign a new access token; returns the token and its `jti`."""
    jti = secrets.token_urlsafe(16)
    claims = {
        "iss": policy.issuer,
        "sub": client_id,
        "aud": policy.audience,
        "client_id": client_id,
        "account_id": account_id,
        "scope": " ".join(scopes),
        "iat": now,
        "exp": now + ttl,
        "jti": jti,
    }
    payload = json.dumps(claims, separators=(",", ":")).encode()
    token = _jws.encode(
        payload,
        key.private_key,
        algorithm=key.alg,
        headers={"typ": TOKEN_TYPE, "kid": key.kid},
    )
    return token, jti


async def verify_token(
    token: str, keys: KeyRing, policy: TokenPolicy, clock: Callable[[], float]
) -> AccessToken:
    """Check a token's signature, then its claims; raise InvalidToken if bad."""
    claims = await _verified_payload(token, keys)
    return _validated(claims, policy, int(clock()))


async def _verified_payload(token: str, keys: KeyRing) -> dict[str, Any]:
    try:
        header = _jws.get_unverified_header(token)
    except PyJWTError:
        raise InvalidToken("The access token is not a JWT.") from None
    kid = header.get("kid")
    if _FORBIDDEN_HEADERS & header.keys() or not isinstance(kid, str):
        raise InvalidToken()
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in _TOKEN_TYPES:
        raise InvalidToken()
    key = await keys.find(kid)
    if key is None or header.get("alg") != key.alg:
        raise InvalidToken()
    try:
        payload = _jws.decode(token, key.public_key, algorithms=[key.alg])
        claims = json.loads(payload)
    except (PyJWTError, ValueError):
        raise InvalidToken() from None
    if not isinstance(claims, dict):
        raise InvalidToken()
    return claims


def _validated(claims: dict[str, Any], policy: TokenPolicy, now: int) -> AccessToken:
    strings = ("iss", "aud", "client_id", "account_id", "scope", "jti")
    numbers = ("iat", "exp")
    if not all(isinstance(claims.get(name), str) for name in strings):
        raise InvalidToken()
    if not all(type(claims.get(name)) is int for name in numbers):
        raise InvalidToken()
    if claims["iss"] != policy.issuer or claims["aud"] != policy.audience:
        raise InvalidToken()
    if claims["exp"] <= now - policy.leeway:
        raise InvalidToken("The access token has expired.")
    if claims["iat"] > now + policy.leeway:
        raise InvalidToken("The access token was issued in the future.")
    not_before = claims.get("nbf", claims["iat"])
    if type(not_before) is not int or not_before > now + policy.leeway:
        raise InvalidToken("The access token is not valid yet.")
    return AccessToken(
        jti=claims["jti"],
        client_id=claims["client_id"],
        account_id=claims["account_id"],
        scopes=tuple(claims["scope"].split()),
        issued_at=claims["iat"],
        expires_at=claims["exp"],
        claims=claims,
    )
