"""Strict JSON bodies: read in every encoding json.loads reads, no field twice."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

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


def _json_module_reading(body: bytes) -> tuple[str, Any]:
    """What the json module alone makes of a body, as parse_json_object
    read every body before orjson read the flat ones: the object, or the
    refusal's message."""

    def refuse_constant(name: str) -> Any:
        raise ValueError(name)

    try:
        text = body.decode(json.detect_encoding(body), "surrogatepass")
        document = json.loads(
            text, object_pairs_hook=reject_duplicates, parse_constant=refuse_constant
        )
    except (ValueError, RecursionError):
        return ("refused", "The body is not valid JSON.")
    except InvalidRequest as refusal:
        return ("refused", refusal.message)
    if not isinstance(document, dict):
        return ("refused", "The body must be a JSON object.")
    return ("read", repr(document))


def _reading(body: bytes) -> tuple[str, Any]:
    # Compared by repr: 2**64 == 2.0**64 in Python, but not in an answer.
    try:
        return ("read", repr(parse_json_object(body)))
    except InvalidRequest as refusal:
        return ("refused", refusal.message)


_NAMES = st.sampled_from(["client_id", "client_secret", "scope", "a:b", 'q"'])
_VALUES = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["x:y", '"', "\\", "\ud800", "é", "\u0000"]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
    st.booleans(),
    st.lists(st.text(max_size=3), max_size=2),
    st.dictionaries(_NAMES, st.text(max_size=3), max_size=2),
)


@st.composite
def _object_texts(draw: st.DrawFn) -> bytes:
    """JSON object texts with names that may repeat, values of every kind,
    colons and quotes inside strings, odd spacing and several encodings."""
    pairs = draw(st.lists(st.tuples(_NAMES, _VALUES), max_size=5))
    colon = draw(st.sampled_from([":", " : ", ":\n"]))
    comma = draw(st.sampled_from([",", " , "]))
    ascii_only = draw(st.booleans())
    members = [
        json.dumps(name) + colon + json.dumps(value, ensure_ascii=ascii_only)
        for name, value in pairs
    ]
    text = "{" + comma.join(members) + "}"
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16"]))
    return text.encode(encoding, "surrogatepass")


@given(body=st.one_of(_object_texts(), st.binary(max_size=40)))
@example(body=b'{"a": 18446744073709551616}')
@example(body=b'{"a": 1, "b": true}')
@example(body=b'{"client_id": "x", "client_id": "y"}')
@example(body=b'{"a": "x", "b": {"a": "y"}}')
@example(body=b'{"a": "\\ud800"}')
@example(body=b'{"a": "b"} x')
def test_bodies_read_as_the_json_module_reads_them(body: bytes) -> None:
    """Every body, read by orjson or not, parses or is refused exactly as
    the json module with the duplicate check decides."""
    assert _reading(body) == _json_module_reading(body)
