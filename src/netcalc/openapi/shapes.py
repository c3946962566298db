"""JSON schemas of the success bodies, as the routes build them.

CONTRACT.md names their fields; the standard endpoints follow RFC 6749
§5.1, RFC 7662 §2.2, RFC 7517 §5 and RFC 8414 §2.
"""

from __future__ import annotations

from typing import Any

from netcalc.dotted_fields import DOTTED_FIELDS

Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
IPV4: Schema = {"type": "string", "format": "ipv4"}
PREFIX_LENGTH: Schema = {"type": "integer", "minimum": 0, "maximum": 32}


def obj(
    required: dict[str, Schema], optional: dict[str, Schema] | None = None
) -> Schema:
    """An object with the `required` properties and the `optional` ones."""
    return {
        "type": "object",
        "properties": required | (optional or {}),
        "required": list(required),
    }


def ok_body(**fields: Schema) -> Schema:
    """A NetworkCalc-style success: `status` OK beside the given fields."""
    return obj({"status": {"type": "string", "enum": ["OK"]}} | fields)


TOKEN = ok_body(
    token=obj(
        {
            "access_token": STRING,
            "token_type": {"type": "string", "enum": ["bearer"]},
            "expires_in": INTEGER,
        },
        {"scope": STRING},
    )
)
"""`POST /api/auth/token` (CONTRACT §1); `scope` only when one was asked for."""

_SUBNET = obj(
    {
        "id": STRING,
        "name": STRING,
        "network_address": IPV4,
        "subnet_bits": PREFIX_LENGTH,
        "cidr_notation": STRING,
        "created_at": {"type": "string", "format": "date-time"},
    }
)

SUBNETS = ok_body(subnets={"type": "array", "items": _SUBNET})
"""The caller's saved subnets, oldest first (CONTRACT §3)."""

ONE_SUBNET = ok_body(
    subnets={"type": "array", "items": _SUBNET, "minItems": 1, "maxItems": 1}
)
"""One saved subnet, as a list of one."""

SAVED_SUBNET = ok_body(subnet=_SUBNET)
"""The subnet just saved."""

DONE = ok_body()
"""A success that carries nothing but `status`."""

_BINARY = {"type": "string", "pattern": "^[01]{8}(\\.[01]{8}){3}$"}

# Every field is optional: `?fields=` keeps only the ones asked for.
_ADDRESS = obj(
    {},
    {
        "cidr_notation": STRING,
        "subnet_bits": PREFIX_LENGTH,
        "assignable_hosts": {"type": "integer", "minimum": 1},
        "binary": obj({name: _BINARY for name in DOTTED_FIELDS}),
    }
    | {name: IPV4 for name in DOTTED_FIELDS},
)

_SUBNET_ANSWER = {
    "meta": obj(
        {
            "permalink": {"type": "string", "format": "uri"},
            "next_address": {"type": ["string", "null"], "format": "ipv4"},
        }
    ),
    "address": _ADDRESS,
}

CALCULATION = {
    "oneOf": [
        ok_body(**_SUBNET_ANSWER),
        ok_body(addresses={"type": "array", "items": obj(_SUBNET_ANSWER)}),
    ]
}
"""One subnet described, or each of a bracketed list (CONTRACT §4)."""

OAUTH_TOKEN = obj(
    {
        "access_token": STRING,
        "token_type": {"type": "string", "enum": ["Bearer"]},
        "expires_in": INTEGER,
        "scope": STRING,
    }
)
"""The successful token response of RFC 6749 §5.1."""

INTROSPECTION = obj(
    {"active": {"type": "boolean"}},
    {
        "scope": STRING,
        "client_id": STRING,
        "token_type": STRING,
        "exp": INTEGER,
        "iat": INTEGER,
        "sub": STRING,
        "aud": STRING,
        "iss": STRING,
        "jti": STRING,
        "account_id": STRING,
    },
)
"""RFC 7662 §2.2: `active`, and the token's claims only when it is active."""

KEY_SET = obj({"keys": {"type": "array", "items": obj({"kty": STRING})}})
"""The public signing keys (RFC 7517 §5)."""

METADATA = obj(
    {name: STRING for name in ("issuer", "token_endpoint", "jwks_uri")},
    {
        "introspection_endpoint": STRING,
        "revocation_endpoint": STRING,
        "grant_types_supported": {"type": "array", "items": STRING},
    },
)
"""Authorization server metadata (RFC 8414 §2)."""
