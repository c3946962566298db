"""Guard any Starlette or FastAPI service with netcalc access tokens.

The guard verifies tokens offline with the issuer's published keys (RFC
7517), cached for as long as the issuer's `Cache-Control: max-age` allows,
so a withdrawn key stops verifying once that time is up, and fetched again
at once when a token names a key id it has not seen, as after a key
rotation. While the issuer cannot be reached, the last key set it served
goes on verifying. It checks the algorithm
against the key, the signature, `iss`, `aud`, `exp` and `iat`, and the
scope a route needs. With introspection credentials it also asks the issuer
whether the token is still active (RFC 7662), so a revocation bites at once.

FastAPI::

    guard = TokenGuard("https://auth.example.com", audience="netcalc")

    @app.get("/reports")
    async def reports(claims: Annotated[dict, Depends(guard.require("subnets:read"))]):
        return {"client": claims["client_id"]}

Starlette::

    async def reports(request):
        claims = await guard.authenticate(request, scope="subnets:read")

Refusals are `starlette.exceptions.HTTPException` with status 401 or 403 and
the `WWW-Authenticate` challenge of RFC 6750 §3. When the guard cannot tell,
it answers 503: the issuer could not be reached, or it refused the guard's
own introspection credentials, which is logged as an error and not asked
again for REFUSED_PAUSE seconds, so a service with stale credentials does
not run up its host's failure count at the issuer.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from starlette.exceptions import HTTPException
from starlette.requests import Request

__all__ = ["Introspection", "TokenGuard"]

_FORBIDDEN_HEADERS = frozenset({"jku", "jwk", "x5u", "x5c", "crit"})
_TOKEN_TYPES = ("at+jwt", "application/at+jwt")
_REFETCH_INTERVAL = 5.0
"""Least seconds between key fetches caused by unknown key ids, and between
attempts while the issuer cannot be reached."""

KEY_SET_MAX_AGE = 300.0
"""Seconds a key set is trusted when the issuer's answer names no max-age."""

_LONGEST_MAX_AGE = 86400.0
"""The longest a key set is trusted, whatever the issuer's answer says."""

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*(\d+)", re.IGNORECASE)

_NOT_KEPT = re.compile(r"(?:^|,)\s*no-(?:store|cache)\b", re.IGNORECASE)
"""Cache-Control directives that ask for the key set to be fetched again each
time; the guard asks at most every _REFETCH_INTERVAL seconds."""

_REFUSALS = frozenset({400, 401, 429})
"""Introspection answers about the guard's own credentials: unauthorized_client
(a disabled account), invalid_client, and throttling after such failures."""

REFUSED_PAUSE = 10.0
"""Seconds the guard waits before presenting introspection credentials the
issuer refused once more."""

logger = logging.getLogger("netcalc.resource_server")


@dataclass(frozen=True)
class Introspection:
    """Client credentials the guard uses to ask the issuer about tokens.

    They must belong to the same netcalc account as the tokens, since the
    issuer only tells a client about its own account's tokens.
    """

    client_id: str
    client_secret: str


class TokenGuard:
    """Verifies bearer tokens issued by one netcalc issuer for one audience."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        introspection: Introspection | None = None,
        algorithms: tuple[str, ...] = ("ES256", "EdDSA", "RS256"),
        leeway: int = 30,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self._base = issuer.rstrip("/")
        self._introspection = introspection
        self._algorithms = algorithms
        self._leeway = leeway
        self._http = http or httpx.AsyncClient(timeout=5.0)
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._keys_expire_at = float("-inf")
        self._next_fetch_at = float("-inf")
        self._fetching: asyncio.Future[None] | None = None
        self._refused_until = float("-inf")

    async def aclose(self) -> None:
        """Close the HTTP client the guard made for itself."""
        await self._http.aclose()

    async def _key(self, kid: str) -> jwt.PyJWK | None:
        now = time.monotonic()
        known = kid in self._keys
        if now >= self._keys_expire_at or (not known and now >= self._next_fetch_at):
            try:
                await self._fetched_keys()
            except HTTPException:
                # The issuer is away: a key it served before goes on verifying.
                if not known:
                    raise
        return self._keys.get(kid)

    async def _fetched_keys(self) -> None:
        """Fetch the key set once for every request that finds it stale."""
        if self._fetching is None:
            self._fetching = asyncio.ensure_future(self._fetch_keys())
            self._fetching.add_done_callback(self._fetched)
        await asyncio.shield(self._fetching)

    def _fetched(self, fetching: asyncio.Future[None]) -> None:
        self._fetching = None
        if not fetching.cancelled():
            # Marks its error as seen: the requests still waiting raise it.
            fetching.exception()

    async def _fetch_keys(self) -> None:
        self._next_fetch_at = time.monotonic() + _REFETCH_INTERVAL
        try:
            response = await self._http.get(f"{self._base}/.well-known/jwks.json")
            response.raise_for_status()
            key_set = _key_set(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWTError):
            if self._keys:
                logger.warning(
                    "the issuer's key set could not be fetched again; verifying "
                    "with the one fetched before, and asking again in %.0f s",
                    _REFETCH_INTERVAL,
                )
                self._keys_expire_at = self._next_fetch_at
            raise _unavailable() from None
        self._keys = {key.key_id: key for key in key_set.keys if key.key_id}
        max_age = _max_age(response.headers.get("cache-control", ""))
        self._keys_expire_at = time.monotonic() + max_age

    async def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid, active token; HTTPException 401 otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _invalid("The token is not a JWT.") from None
        key = await self._checked_key(header)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[header["alg"]],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise _invalid(f"The token was refused: {exc}.") from None
        if claims["iat"] > self._clock() + self._leeway:
            raise _invalid("The token was issued in the future.")
        if self._introspection and not await self._active(token, self._introspection):
            raise _invalid(
                "The issuer reports the token inactive: revoked, expired by "
                "the issuer's clock, from credentials or an account switched "
                "off, or of another account than the introspection credentials."
            )
        return claims

    async def _checked_key(self, header: dict[str, Any]) -> jwt.PyJWK:
        kid, alg, typ = header.get("kid"), header.get("alg"), header.get("typ")
        if _FORBIDDEN_HEADERS & header.keys() or not isinstance(kid, str):
            raise _invalid("The token header is not acceptable.")
        if not isinstance(typ, str) or typ.lower() not in _TOKEN_TYPES:
            raise _invalid("The token is not an access token.")
        key = await self._key(kid)
        if key is None or alg not in self._algorithms or alg != key.algorithm_name:
            raise _invalid("The token is not signed by a known key.")
        return key

    async def _active(self, token: str, introspection: Introspection) -> bool:
        if time.monotonic() < self._refused_until:
            raise _credentials_refused()
        try:
            response = await self._http.post(
                f"{self._base}/oauth2/introspect",
                data={"token": token},
                auth=(introspection.client_id, introspection.client_secret),
            )
        except httpx.HTTPError:
            raise _unavailable() from None
        if response.status_code in _REFUSALS:
            self._pause(introspection, response.status_code)
            raise _credentials_refused()
        if response.is_error:
            raise _unavailable()
        return response.json().get("active") is True

    def _pause(self, introspection: Introspection, status: int) -> None:
        # Calls already on their way when the first refusal came back are
        # refused too; one error a pause is enough to say why.
        now = time.monotonic()
        if now >= self._refused_until:
            logger.error(
                "the issuer %s answered %d to the introspection credentials of "
                "client %s (revoked, rotated, of a disabled account, mistyped, "
                "or throttled after such failures); tokens are answered 503 "
                "and the credentials presented again in %.0f s",
                self.issuer,
                status,
                introspection.client_id,
                REFUSED_PAUSE,
            )
        self._refused_until = now + REFUSED_PAUSE

    async def authenticate(
        self, request: Request, scope: str | None = None
    ) -> dict[str, Any]:
        """Verify the request's bearer token and, if given, its scope."""
        parts = request.headers.get("authorization", "").split()
        if len(parts) != 2 or parts[0].lower() != "bearer":
            raise HTTPException(
                401, "A bearer token is required.", {"WWW-Authenticate": "Bearer"}
            )
        claims = await self.verify(parts[1])
        if scope is not None and scope not in str(claims.get("scope", "")).split():
            challenge = f'Bearer error="insufficient_scope", scope="{scope}"'
            raise HTTPException(
                403,
                f"The '{scope}' scope is required.",
                {"WWW-Authenticate": challenge},
            )
        return claims

    def require(
        self, scope: str | None = None
    ) -> Callable[[Request], Awaitable[dict[str, Any]]]:
        """A FastAPI dependency giving the claims of a valid token with `scope`."""

        async def dependency(request: Request) -> dict[str, Any]:
            return await self.authenticate(request, scope)

        return dependency


def _key_set(document: Any) -> jwt.PyJWKSet:
    """The key set of a JWKS document (RFC 7517 §5); ValueError if it is
    not one."""
    if not isinstance(document, dict):
        raise ValueError("the key set is not a JSON object")
    return jwt.PyJWKSet.from_dict(document)


def _max_age(cache_control: str) -> float:
    """How long the key set may be kept, by the answer's Cache-Control."""
    if _NOT_KEPT.search(cache_control):
        return _REFETCH_INTERVAL
    found = _MAX_AGE.search(cache_control)
    if found is None:
        return KEY_SET_MAX_AGE
    return min(max(float(found.group(1)), _REFETCH_INTERVAL), _LONGEST_MAX_AGE)


def _invalid(description: str) -> HTTPException:
    return HTTPException(
        401, description, {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    )


def _unavailable() -> HTTPException:
    # The guard fails closed: no keys or no answer means no access.
    return HTTPException(503, "The token issuer cannot be reached; retry later.")


def _credentials_refused() -> HTTPException:
    return HTTPException(
        503, "The token issuer refused this service's credentials; retry later."
    )
