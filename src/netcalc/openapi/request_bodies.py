"""Request bodies for the served OpenAPI document, `/api/openapi.json`.

The routes read their bodies themselves, to keep the contract's order of
checks and a hard size limit, so FastAPI cannot infer them. They are
described here instead, for API clients and for schema-driven tests, and
handed to the routes as `openapi_extra`.
"""

from __future__ import annotations

from typing import Any

from netcalc.bodies import FORM, JSON

__all__ = ["OAUTH_TOKEN_REQUEST", "SUBNET", "TOKEN_PARAMETER", "TOKEN_REQUEST"]


def _strings(*names: str) -> dict[str, Any]:
    return {name: {"type": "string"} for name in names}


def _body(schema: dict[str, Any], *media_types: str) -> dict[str, Any]:
    content = {media_type: {"schema": schema} for media_type in media_types}
    return {"requestBody": {"required": True, "content": content}}


_TOKEN_FIELDS = {
    "type": "object",
    "properties": _strings("client_id", "client_secret", "scope")
    | {"grant_type": {"type": "string", "enum": ["client_credentials"]}},
    "required": ["grant_type"],
}

TOKEN_REQUEST = _body(_TOKEN_FIELDS, JSON, FORM)
"""`POST /api/auth/token`: JSON or a form (CONTRACT §1)."""

OAUTH_TOKEN_REQUEST = _body(_TOKEN_FIELDS, FORM)
"""`POST /oauth2/token`: a form (RFC 6749 §4.4.2)."""

TOKEN_PARAMETER = _body(
    {
        "type": "object",
        "properties": _strings(
            "token", "token_type_hint", "client_id", "client_secret"
        ),
        "required": ["token"],
    },
    FORM,
)
"""Introspection and revocation: a form (RFC 7662 §2.1, RFC 7009 §2.1)."""

SUBNET = _body(
    {
        "type": "object",
        "properties": {
            "network_address": {"type": "string", "format": "ipv4"},
            "subnet_bits": {"type": "integer", "minimum": 0, "maximum": 32},
            "name": {"type": "string"},
        },
        "required": ["network_address", "subnet_bits", "name"],
    },
    JSON,
)
"""`POST /api/account/subnets`: the subnet to save, as JSON."""
