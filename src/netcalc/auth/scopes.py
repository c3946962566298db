"""The scopes account APIs require, and how requested scopes are granted."""

from __future__ import annotations

from netcalc.errors import InvalidScope, quoted

SUBNETS_READ = "subnets:read"
SUBNETS_WRITE = "subnets:write"

ACCOUNT_SCOPES = (SUBNETS_READ, SUBNETS_WRITE)
"""Every scope an account API checks, in the order they are listed."""


def parse_scope(value: str | None) -> tuple[str, ...]:
    """Split a space-separated scope string (RFC 6749 §3.3)."""
    if not value:
        return ()
    return tuple(dict.fromkeys(token for token in value.split(" ") if token))


def check_known(scopes: tuple[str, ...]) -> tuple[str, ...]:
    """The scopes, if every one is a scope netcalc knows."""
    unknown = [scope for scope in scopes if scope not in ACCOUNT_SCOPES]
    if unknown:
        raise InvalidScope(f"Unknown scope {quoted(unknown[0])}.")
    return scopes


def grant_scopes(
    requested: tuple[str, ...], allowed: tuple[str, ...]
) -> tuple[str, ...]:
    """The scopes a token carries, given what was asked and what is allowed.

    Credentials without scopes may use every account scope. Asking for
    nothing grants everything allowed (RFC 6749 §3.3 lets the server choose).
    """
    permitted = allowed or ACCOUNT_SCOPES
    if not requested:
        return permitted
    check_known(requested)
    refused = [scope for scope in requested if scope not in permitted]
    if refused:
        raise InvalidScope(
            f"These credentials may not have scope {quoted(refused[0])}."
        )
    return requested
