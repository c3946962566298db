"""JWT access tokens in the profile of RFC 9068: issue and verify.

Verification runs in two explicit steps: first the JOSE header and the
signature, with the algorithm taken from our key, never from the token; then
the claims, against a clock passed in so tests can move time.
"""

from __future__ import annotations

import binascii
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from jwt.algorithms import get_default_algorithms
from jwt.utils import base64url_decode, base64url_encode

from netcalc.auth.keyring import KeyRing
from netcalc.auth.keys import SigningKey
from netcalc.auth.signatures import TurnSigner
from netcalc.errors import InvalidToken

TOKEN_TYPE = "at+jwt"
"""The `typ` header of RFC 9068 §2.1."""

_TOKEN_TYPES = (TOKEN_TYPE, "application/at+jwt")

_FORBIDDEN_HEADERS = frozenset({"jku", "jwk", "x5u", "x5c", "crit"})
"""Headers that would let a token choose its own key or semantics."""

_BASE64URL = re.compile(rb"[A-Za-z0-9_-]+")
"""A JWS segment: base64url without padding (RFC 7515 §2)."""

_ALGORITHMS = get_default_algorithms()
"""PyJWT's verifiers, by JOSE `alg` name."""

_URLSAFE = bytes.maketrans(b"+/", b"-_")
"""base64 to base64url: the two letters that differ (RFC 4648 §5)."""

_header_segments: dict[tuple[str, str], bytes] = {}
"""The encoded JOSE header of each key, built once: it never changes."""


@dataclass(frozen=True)
class AccessToken:
    """The verified claims of an access token netcalc issued."""

    jti: str
    client_id: str
    account_id: str
    scopes: tuple[str, ...]
    issued_at: int
    expires_at: int
    not_before: int
    claims: dict[str, Any]


@dataclass(frozen=True)
class TokenPolicy:
    """What a valid token must say: who issued it, for whom, and the leeway."""

    issuer: str
    audience: str
    leeway: int


async def issue_token(
    key: SigningKey,
    policy: TokenPolicy,
    signer: TurnSigner,
    *,
    client_id: str,
    account_id: str,
    scopes: tuple[str, ...],
    ttl: int,
    now: int,
) -> tuple[str, str]:
    """Sign a new access token; returns the token and its `jti`."""
    jti = _base64url(secrets.token_bytes(16)).decode()
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
    payload = orjson.dumps(claims)
    signing_input = _header_segment(key) + b"." + _base64url(payload)
    signature = await signer.sign(key, signing_input)
    return (signing_input + b"." + _base64url(signature)).decode(), jti


def _base64url(data: bytes) -> bytes:
    """`data` in base64url without padding (RFC 7515 §2), as PyJWT's
    base64url_encode writes it; each token encodes three values, and the
    base64 module's layers of calls cost more than the encoding."""
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=")


def _header_segment(key: SigningKey) -> bytes:
    segment = _header_segments.get((key.kid, key.alg))
    if segment is None:
        header = {"alg": key.alg, "kid": key.kid, "typ": TOKEN_TYPE}
        segment = base64url_encode(json.dumps(header, separators=(",", ":")).encode())
        _header_segments[(key.kid, key.alg)] = segment
    return segment


async def verify_token(
    token: str, keys: KeyRing, policy: TokenPolicy, clock: Callable[[], float]
) -> AccessToken:
    """Check a token's signature, its claims, then its times; raise InvalidToken
    if bad."""
    # The same bytes verify the same way every time: a token seen before is
    # neither checked nor parsed again, but its times are, on every call.
    access = keys.verified.get(token, policy)
    if access is None:
        claims = await _verify_signature(token, keys)
        access = _validated(claims, policy)
        keys.verified.remember(token, policy, access)
    _check_times(access, policy, int(clock()))
    return access


async def _verify_signature(token: str, keys: KeyRing) -> dict[str, Any]:
    try:
        header_segment, payload_segment, signature = _segments(token)
        header = json.loads(base64url_decode(header_segment))
    except (ValueError, RecursionError):
        # RecursionError: a header of arrays nested a thousand deep.
        raise InvalidToken("The access token is not a well-formed JWT.") from None
    if not isinstance(header, dict):
        raise InvalidToken("The access token is not a well-formed JWT.")
    key = await _key_for(header, keys)
    signing_input = header_segment + b"." + payload_segment
    if not _ALGORITHMS[key.alg].verify(signing_input, key.public_key, signature):
        raise InvalidToken()
    try:
        claims = json.loads(base64url_decode(payload_segment))
    except ValueError:
        raise InvalidToken() from None
    if not isinstance(claims, dict):
        raise InvalidToken()
    return claims


def _segments(token: str) -> tuple[bytes, bytes, bytes]:
    """The header and payload segments and the decoded signature (RFC 7515 §7.1).

    Each segment must be base64url exactly as netcalc writes it, without
    padding or stray characters: a lenient decoder would let one token be
    spelled many ways, each a new entry among the remembered tokens.
    """
    parts = token.encode().split(b".")
    if len(parts) != 3 or not all(_BASE64URL.fullmatch(part) for part in parts):
        raise ValueError("not three base64url segments")
    header, payload, signature = parts
    decoded = base64url_decode(signature)
    if base64url_encode(decoded) != signature:
        raise ValueError("the signature is not in its canonical form")
    return header, payload, decoded


async def _key_for(header: dict[str, Any], keys: KeyRing) -> SigningKey:
    """Our key the header names, refusing headers that pick their own."""
    kid = header.get("kid")
    if _FORBIDDEN_HEADERS & header.keys() or not isinstance(kid, str):
        raise InvalidToken()
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in _TOKEN_TYPES:
        raise InvalidToken()
    key = await keys.find(kid)
    # The algorithm is our key's, never the token's choice.
    if key is None or header.get("alg") != key.alg:
        raise InvalidToken()
    return key


def _validated(claims: dict[str, Any], policy: TokenPolicy) -> AccessToken:
    """The token the claims describe, if they have the types and the issuer
    and audience netcalc writes."""
    strings = ("iss", "aud", "client_id", "account_id", "scope", "jti")
    numbers = ("iat", "exp")
    if not all(isinstance(claims.get(name), str) for name in strings):
        raise InvalidToken()
    if not all(type(claims.get(name)) is int for name in numbers):
        raise InvalidToken()
    not_before = claims.get("nbf", claims["iat"])
    if type(not_before) is not int:
        raise InvalidToken()
    if claims["iss"] != policy.issuer or claims["aud"] != policy.audience:
        raise InvalidToken()
    return AccessToken(
        jti=claims["jti"],
        client_id=claims["client_id"],
        account_id=claims["account_id"],
        scopes=tuple(claims["scope"].split()),
        issued_at=claims["iat"],
        expires_at=claims["exp"],
        not_before=not_before,
        claims=claims,
    )


def _check_times(access: AccessToken, policy: TokenPolicy, now: int) -> None:
    if access.expires_at <= now - policy.leeway:
        raise InvalidToken("The access token has expired.")
    if access.issued_at > now + policy.leeway:
        raise InvalidToken("The access token was issued in the future.")
    if access.not_before > now + policy.leeway:
        raise InvalidToken("The access token is not valid yet.")
