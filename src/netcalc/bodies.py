"""Request bodies: media types, and strict JSON with no field given twice.

No I/O here; the routes read the bytes and hand them over.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

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
    # Built whole, and the pairs walked only when a name repeats, to name
    # it: every token request's body comes through here, and a loop in
    # Python over its fields cost several times building the dict.
    fields = dict(pairs)
    if len(fields) < len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise InvalidRequest(
                    f"The field {quoted(name)} is given more than once."
                )
            seen.add(name)
    return fields


def _refuse_constant(name: str) -> Any:
    # Python's decoder takes NaN, Infinity and -Infinity, which JSON lacks.
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(
    object_pairs_hook=reject_duplicates, parse_constant=_refuse_constant
)
"""Built once: `json.loads` with a hook builds a new decoder on every call."""


def _encoding(body: bytes) -> str:
    """The body's encoding as json.loads reads bytes: UTF-8, or UTF-16/32
    told by the first bytes."""
    # json.detect_encoding looks among the first bytes for a byte order
    # mark or a NUL. Two ASCII bytes other than NUL are neither, and open
    # every JSON object of two bytes or more written in UTF-8.
    head = body[:2]
    if len(head) == 2 and head.isascii() and 0 not in head:
        return "utf-8"
    return json.detect_encoding(body)


def parse_json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or InvalidRequest saying what is wrong."""
    document = _flat_strings(body)
    if document is not None:
        return document
    try:
        text = body.decode(_encoding(body), "surrogatepass")
        document = _DECODER.decode(text)
    except (ValueError, RecursionError):
        raise InvalidRequest("The body is not valid JSON.") from None
    if not isinstance(document, dict):
        raise InvalidRequest("The body must be a JSON object.")
    return document


def _flat_strings(body: bytes) -> dict[str, str] | None:
    """The body, when it is a UTF-8 object of string fields each given once,
    as orjson reads it; None for any other body, left to the json module.

    A token request is such an object, and orjson reads it in a third of
    the json module's time. Where the two readers differ, the json module
    decides: orjson refuses byte order marks, UTF-16 and lone surrogates,
    which the json module reads, and turns integers past 64 bits into
    floats, which never pass for strings. orjson keeps the last of a
    repeated name; but every name in the body, at any depth, is followed
    by a colon of its own, so a body with no more colons than its object's
    fields repeats none and nests no object.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(document) is not dict or body.count(b":") != len(document):
        return None
    for value in document.values():
        if type(value) is not str:
            return None
    return document
