"""The served OpenAPI document, `/api/openapi.json`.

The routes read their own bodies and build their own answers, so FastAPI
can infer neither: each route is handed its request body (`request_bodies`)
and its answers (`answers`, built on `shapes`).
"""

from __future__ import annotations

from typing import Any

from netcalc.openapi import answers
from netcalc.openapi.request_bodies import (
    OAUTH_TOKEN_REQUEST,
    SUBNET,
    TOKEN_PARAMETER,
    TOKEN_REQUEST,
)

__all__ = [
    "OAUTH_TOKEN_REQUEST",
    "SUBNET",
    "TOKEN_PARAMETER",
    "TOKEN_REQUEST",
    "answers",
    "without_validation_errors",
]

_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def without_validation_errors(document: dict[str, Any]) -> dict[str, Any]:
    """`document` without the 422 answers FastAPI adds to routes taking
    parameters: netcalc answers a malformed request 400 INVALID_REQUEST
    (`netcalc.responses`), and declares it where a route can."""
    for operations in document["paths"].values():
        for operation in operations.values():
            operation["responses"].pop("422", None)
    components = document.get("components", {})
    schemas = components.get("schemas", {})
    for name in _VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    if not schemas:
        components.pop("schemas", None)
    if not components:
        document.pop("components", None)
    return document
