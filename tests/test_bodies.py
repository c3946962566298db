"""Strict JSON bodies: read in every encoding json.loads reads, no field twice."""

from __future__ import annotations

import json

import pytest

from netcalc.bodies import parse_json_object, reject_duplicates
from netcalc.errors import InvalidRequest

DOCUMENT = {"client_id": "nci_0123456789abcdef0123456789abcdef", "scope": "caf\u00e9"}


@pytest.mark.parametrize(
    "encoding",
    [
        "utf-8",
        "utf-8-sig",
        "utf-16",
        "utf-16-le",
        "utf-16-be",
        "utf-32",
        "utf-32-le",
        "utf-32-be",
    ],
)
def test_bodies_are_decoded_as_json_loads_decodes_them(encoding: str) -> None:
    """UTF-8, or UTF-16/32 told by a byte order mark or the NULs, as RFC 8259
    §8.1 and json.loads read them."""
    body = json.dumps(DOCUMENT, ensure_ascii=False).encode(encoding)
    assert parse_json_object(body) == json.loads(body) == DOCUMENT


@pytest.mark.parametrize(
    "body", [b"{", b"{}", b" {}", b'{"a":"b"}'], ids=["one", "two", "three", "four"]
)
def test_short_bodies_read_as_json_loads_reads_them(body: bytes) -> None:
    """Bodies too short for the encoding's usual clues parse or are refused
    as json.loads decides."""
    try:
        expected = json.loads(body)
    except ValueError:
        with pytest.raises(InvalidRequest):
            parse_json_object(body)
    else:
        assert parse_json_object(body) == expected


def test_the_first_repeated_field_is_named() -> None:
    """The refusal names the field whose second appearance comes first."""
    with pytest.raises(InvalidRequest) as refused:
        parse_json_object(b'{"a": 1, "b": 2, "b": 3, "a": 4}')
    assert refused.value.message == "The field 'b' is given more than once."


def test_pairs_without_repeats_keep_their_order() -> None:
    """Fields given once each come back in the order they were sent."""
    pairs = [("grant_type", "client_credentials"), ("client_id", "a"), ("scope", "")]
    assert list(reject_duplicates(pairs).items()) == pairs
