"""Request bodies: media types, and strict JSON with no field given twice.

No I/O here; the routes read the bytes and hand them over.
"""

from __future__ import annotations

import json
from typing import Any

from netcalc.errors import InvalidRequest, quoted

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def media_type(content_type: str | None) -> str | None:
    """The bare media type of a Content-Type header, lower-cased."""
    if content_type is None:
        return None
    return content_type.split(";", 1)[0].strip().lower()


def reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build a dict from pairs, refusing a name that appears twice."""
    fields: dict[str, Any] = {}
    for name, value in pairs:
        if name in fields:
            raise InvalidRequest(f"The field {quoted(name)} is given more than once.")
        fields[name] = value
    return fields


def _refuse_constant(name: str) -> Any:
    # Python's decoder takes NaN, Infinity and -Infinity, which JSON lacks.
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(
    object_pairs_hook=reject_duplicates, parse_constant=_refuse_constant
)
"""Built once: `json.loads` with a hook builds a new decoder on every call."""


def parse_json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or InvalidRequest saying what is wrong."""
    try:
        # As json.loads reads bytes: UTF-8, or UTF-16/32 told by the first bytes.
        text = body.decode(json.detect_encoding(body), "surrogatepass")
        document = _DECODER.decode(text)
    except (ValueError, RecursionError):
        raise InvalidRequest("The body is not valid JSON.") from None
    if not isinstance(document, dict):
        raise InvalidRequest("The body must be a JSON object.")
    return document
