"""Reading token requests: body formats, Basic decoding and check order."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from collections.abc import Callable
from urllib.parse import parse_qsl, quote_plus, unquote_plus

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from netcalc.auth.token_request import (
    ClientAuthentication,
    TokenRequest,
    authenticate_client,
    basic_credentials,
    oauth_form_fields,
    parse_body,
    token_request_of,
)
from netcalc.bodies import media_type, reject_duplicates
from netcalc.errors import (
    InvalidGrantType,
    InvalidRequest,
    MissingCredentials,
    MissingHeader,
    NetcalcError,
)

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
GOOD = {
    "client_id": "id",
    "client_secret": "secret",
    "grant_type": "client_credentials",
}


def read_token_request(
    content_type: str | None, body: bytes, authorization: str | None
) -> TokenRequest:
    """A token request read in the steps and order the token endpoints take."""
    fields = parse_body(content_type, body)
    return token_request_of(fields, authenticate_client(fields, authorization))


def basic(client_id: str, secret: str) -> str:
    """An Authorization header encoded as RFC 6749 §2.3.1 asks."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    "client_id, secret",
    [
        ("plain", "secret"),
        ("with+plus", "p+l+u+s"),
        ("per%cent", "100%"),
        ("co:lon", "a:b:c"),
        ("has space", "two  spaces"),
        ("ünïcödé", "пароль密码🔑"),
    ],
    ids=["plain", "plus", "percent", "colon", "space", "non-ascii"],
)
def test_basic_credentials_are_form_decoded(client_id: str, secret: str) -> None:
    """Id and secret survive the form-encoding of RFC 6749 §2.3.1 exactly."""
    assert basic_credentials(basic(client_id, secret)) == (client_id, secret)


def test_basic_plus_decodes_to_space() -> None:
    """A literal '+' in the encoded header means a space, as form encoding says."""
    header = "Basic " + base64.b64encode(b"a+b:c+d").decode()
    assert basic_credentials(header) == ("a b", "c d")


@pytest.mark.parametrize(
    "header",
    [
        "Basic !!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
        "Basic " + base64.b64encode(b"a:%ZZ%ff").decode(),
    ],
    ids=["not-base64", "no-colon", "not-utf8", "bad-percent-utf8"],
)
def test_malformed_basic_header_is_invalid_request(header: str) -> None:
    """A Basic header that cannot be decoded is refused as malformed."""
    with pytest.raises(InvalidRequest):
        basic_credentials(header)


def test_other_schemes_are_not_client_authentication() -> None:
    """A Bearer header on the token endpoint is ignored, not misread."""
    assert basic_credentials("Bearer abc") is None


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON"],
    ids=["plain", "charset", "case"],
)
def test_json_media_types_accepted(content_type: str) -> None:
    """JSON is read whatever its parameters or letter case."""
    request = read_token_request(content_type, json.dumps(GOOD).encode(), None)
    assert request.client_id == "id"


def test_form_body_accepted() -> None:
    """A form body with the same fields reads the same."""
    body = b"client_id=id&client_secret=secret&grant_type=client_credentials"
    request = read_token_request(FORM, body, None)
    assert (request.client_id, request.client.client_secret) == ("id", "secret")


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "multipart/form-data"],
    ids=["absent", "text", "multipart"],
)
def test_missing_or_unknown_media_type(content_type: str | None) -> None:
    """No Content-Type, or one that is neither JSON nor form, is MISSING_HEADER."""
    with pytest.raises(MissingHeader):
        read_token_request(content_type, json.dumps(GOOD).encode(), None)


@pytest.mark.parametrize(
    "content_type, body",
    [
        (JSON, b"{not json"),
        (JSON, b"[1, 2]"),
        (JSON, b'"text"'),
        (JSON, b'{"client_id": 5, "client_secret": "s", "grant_type": "x"}'),
        (JSON, b'{"client_id": "a", "client_id": "b"}'),
        (JSON, b"[" * 5000 + b"]" * 5000),
        (FORM, b"client_id=a&client_id=b"),
        (FORM, b"client_id=%ff"),
        (JSON, b'{"scope": ["a"], "client_id": "a"}'),
    ],
    ids=[
        "unparseable",
        "array",
        "string",
        "number-field",
        "json-twice",
        "deep-nesting",
        "form-twice",
        "form-bad-utf8",
        "list-scope",
    ],
)
def test_invalid_request_bodies(content_type: str, body: bytes) -> None:
    """Unparseable bodies, non-objects, non-strings and repeats are INVALID_REQUEST."""
    with pytest.raises(InvalidRequest):
        read_token_request(content_type, body, None)


def test_credentials_in_header_and_body_refused() -> None:
    """Using Basic and body credentials at once is refused (RFC 6749 §2.3)."""
    with pytest.raises(InvalidRequest):
        read_token_request(JSON, json.dumps(GOOD).encode(), basic("id", "secret"))


def test_same_client_id_beside_basic_is_allowed() -> None:
    """A body that only repeats the Basic client_id authenticates nothing twice."""
    body = json.dumps({"client_id": "id", "grant_type": "client_credentials"})
    request = read_token_request(JSON, body.encode(), basic("id", "secret"))
    assert request.client.used_basic and request.client.client_secret == "secret"


@pytest.mark.parametrize(
    "fields",
    [
        {"client_secret": "s", "grant_type": "client_credentials"},
        {"client_id": "i", "grant_type": "client_credentials"},
        {"client_id": "", "client_secret": "s", "grant_type": "client_credentials"},
        {"client_id": None, "client_secret": "s", "grant_type": "client_credentials"},
        {},
    ],
    ids=["no-id", "no-secret", "empty-id", "null-id", "nothing"],
)
def test_missing_credentials(fields: dict[str, str | None]) -> None:
    """Absent, null or empty id or secret is MISSING_CREDENTIALS."""
    with pytest.raises(MissingCredentials):
        read_token_request(JSON, json.dumps(fields).encode(), None)


@pytest.mark.parametrize(
    "grant_type",
    [None, "", "password", "Client_Credentials", "client_credentials "],
    ids=["absent", "empty", "password", "case", "trailing-space"],
)
def test_invalid_grant_type(grant_type: str | None) -> None:
    """Anything but exactly client_credentials is INVALID_GRANT_TYPE."""
    fields = GOOD | {"grant_type": grant_type}
    with pytest.raises(InvalidGrantType):
        read_token_request(JSON, json.dumps(fields).encode(), None)


def test_missing_credentials_checked_before_grant_type() -> None:
    """With both wrong, the credentials are reported first, as the table orders."""
    with pytest.raises(MissingCredentials):
        read_token_request(JSON, b'{"grant_type": "password"}', None)


@given(st.binary(max_size=512), st.sampled_from([JSON, FORM, None, "text/x"]))
def test_arbitrary_bodies_raise_only_contract_errors(
    body: bytes, content_type: str | None
) -> None:
    """Any bytes in any media type give a request or a contract error, nothing else."""
    with contextlib.suppress(NetcalcError):
        read_token_request(content_type, body, None)


@given(st.text(max_size=200))
def test_arbitrary_authorization_headers(header: str) -> None:
    """Any Authorization text gives credentials, None, or INVALID_REQUEST."""
    with contextlib.suppress(InvalidRequest):
        basic_credentials(header)


def test_presented_credentials_show_no_secret_in_their_repr() -> None:
    """A traceback or a log line that shows the credentials shows the id."""
    secret = "ncs_" + "s" * 49
    shown = repr(ClientAuthentication("nci_0123", secret, used_basic=False))
    assert "nci_0123" in shown
    assert secret not in shown


# The readings below are the plain ones the token endpoints are held to:
# parse_qsl, base64.b64decode and unquote_plus applied as the RFCs word it,
# with no shortcut. The endpoints' own readings must agree with them on
# every body and header, in result or in the error raised.


def _plain_form_fields(body: bytes, names: tuple[str, ...]) -> dict[str, str]:
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("The form body is not valid UTF-8.") from None
    fields = reject_duplicates(pairs)
    return {name: fields[name] for name in names if name in fields}


def _plain_oauth_form_fields(
    content_type: str | None, body: bytes, names: tuple[str, ...]
) -> dict[str, str]:
    if media_type(content_type) != FORM:
        raise MissingHeader("Send the body as application/x-www-form-urlencoded.")
    fields = _plain_form_fields(body, names)
    return {name: value for name, value in fields.items() if value}


def _plain_basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if authorization is None:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        client_id, separator, secret = decoded.partition(":")
        if not separator:
            raise ValueError("no colon")
        return (
            unquote_plus(client_id, errors="strict"),
            unquote_plus(secret, errors="strict"),
        )
    except (binascii.Error, ValueError):
        raise InvalidRequest("The Basic authorization header is malformed.") from None


def _plain_authentication(
    fields: dict[str, str], authorization: str | None
) -> tuple[str, str, bool]:
    basic = _plain_basic_credentials(authorization)
    if basic is not None:
        client_id, client_secret = basic
        body_id = fields.get("client_id")
        if "client_secret" in fields or body_id not in (None, client_id):
            raise InvalidRequest(
                "Send the client credentials in the Authorization header "
                "or in the body, not both."
            )
        fields = fields | {"client_id": client_id, "client_secret": client_secret}
    if not fields.get("client_id") or not fields.get("client_secret"):
        raise MissingCredentials()
    return fields["client_id"], fields["client_secret"], basic is not None


def _authentication(
    fields: dict[str, str], authorization: str | None
) -> tuple[str, str, bool]:
    client = authenticate_client(fields, authorization)
    return client.client_id, client.client_secret, client.used_basic


def outcome(read: Callable[..., object], *arguments: object) -> object:
    """What `read` returns, a dict as its items in order, or the class and
    message of the netcalc error it raises."""
    try:
        result = read(*arguments)
    except NetcalcError as error:
        return type(error), error.message
    if isinstance(result, dict):
        return list(result.items())
    return result


PLAIN_PIECES = st.sampled_from(
    ["a", "x", "client_credentials", "é", "漢", "🔑", " ", "+", ";", "\x00"]
).map(str.encode)
"""Text with no escape in it, plus signs and separators that are not `&` too."""

ESCAPES = st.sampled_from(
    ["%", "%2", "%20", "%2B", "%3D", "%26", "%zz", "%C3%A9", "%ff", "%C3"]
).map(str.encode)
"""Percent-escapes, good, broken and of bytes that are not UTF-8."""

BROKEN_UTF8 = st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf"])

TEXT_PIECES = st.one_of(
    st.lists(PLAIN_PIECES, max_size=4),
    st.lists(st.one_of(PLAIN_PIECES, ESCAPES, BROKEN_UTF8), max_size=4),
).map(b"".join)

FORM_FIELDS = st.tuples(
    st.one_of(
        st.sampled_from([b"client_id", b"client_secret", b"scope", b"", b"a b"]),
        TEXT_PIECES,
    ),
    st.sampled_from([b"=", b"", b"=="]),
    TEXT_PIECES,
).map(b"".join)

FORM_BODIES = st.one_of(
    st.tuples(
        st.lists(FORM_FIELDS, max_size=5),
        st.sampled_from([b"&", b"&&", b";", b"&;"]),
    ).map(lambda parts: parts[1].join(parts[0])),
    st.lists(
        st.one_of(PLAIN_PIECES, ESCAPES, BROKEN_UTF8, st.sampled_from([b"=", b"&"])),
        max_size=24,
    ).map(b"".join),
    st.binary(max_size=64),
)
"""Bodies of fields, bodies of loose pieces, and any bytes."""

FORM_TYPES = st.sampled_from(
    [FORM, f"{FORM}; charset=utf-8", FORM.upper(), f" {FORM} ", JSON, None, "text/x"]
)

FIELD_NAMES = st.sampled_from(
    [
        ("client_id", "client_secret", "grant_type", "scope"),
        ("client_id", "client_secret", "token", "token_type_hint"),
        ("client_id", "", "a b", "a+b", "scope"),
    ]
)


@settings(max_examples=1000)
@given(FORM_TYPES, FORM_BODIES, FIELD_NAMES)
@example(FORM, b"grant_type=client_credentials", ("grant_type",))
@example(FORM, b"scope=a&scope=b", ("grant_type",))
@example(FORM, b"client_id=a+b&scope=%7e", ("client_id", "scope"))
@example(FORM, b"client_id=a+b", ("client_id",))
@example(FORM, b"a=1;b=2&&=&c", ("a", "b", "a=1;b", "", "c"))
def test_oauth_form_fields_read_as_parse_qsl_reads_them(
    content_type: str | None, body: bytes, names: tuple[str, ...]
) -> None:
    """The RFC 6749 endpoints read a form's named, non-empty fields, in order,
    and refuse its errors exactly as parse_qsl with strict UTF-8 does."""
    expected = outcome(_plain_oauth_form_fields, content_type, body, names)
    assert outcome(oauth_form_fields, content_type, body, names) == expected


@settings(max_examples=1000)
@given(FORM_BODIES, FIELD_NAMES)
@example(b"client_id=&client_id=", ("client_id",))
@example(b"scope=", ("scope",))
@example(b"a=1&&", ("", "a"))
def test_form_bodies_read_as_parse_qsl_reads_them(
    body: bytes, names: tuple[str, ...]
) -> None:
    """parse_body reads a form's named fields, empty ones kept, and refuses its
    errors exactly as parse_qsl with strict UTF-8 does."""
    expected = outcome(_plain_form_fields, body, names)
    assert outcome(parse_body, FORM, body, names) == expected


BASIC_PAIRS = st.tuples(
    TEXT_PIECES, st.sampled_from([b":", b"", b"::"]), TEXT_PIECES
).map(b"".join)

BASIC_PAYLOADS = st.one_of(
    BASIC_PAIRS.map(lambda pair: base64.b64encode(pair).decode()),
    # Padding cut or added, and characters base64 does not know, spliced in.
    st.tuples(
        BASIC_PAIRS.map(lambda pair: base64.b64encode(pair).decode()),
        st.sampled_from(["", "=", "==", "===", "!", " ", "-", "_", "é", "\n"]),
        st.integers(min_value=-4, max_value=4),
    ).map(lambda parts: parts[0][: len(parts[0]) + parts[2]] + parts[1]),
    st.text(max_size=24),
)

BASIC_HEADERS = st.one_of(
    st.none(),
    st.tuples(
        st.sampled_from(["", " ", "\t", "\u00a0"]),
        st.sampled_from(["Basic", "basic", "BASIC", "bAsIc", "Bearer", "Basics", ""]),
        st.sampled_from([" ", "  ", "\t", ""]),
        BASIC_PAYLOADS,
        st.sampled_from(["", " ", "\t ", "\u00a0"]),
    ).map("".join),
    st.text(max_size=40),
)


@settings(max_examples=2000)
@given(BASIC_HEADERS)
@example("Basic " + base64.b64encode(b"nci_0123:ncs_secret").decode())
@example("Basic " + base64.b64encode(b"a%3Ab+c:%2B%25").decode())
@example("basic   " + base64.b64encode(b"id:s").decode() + "  ")
@example("Basic " + base64.b64encode(b"id:s").decode()[:-1])
@example("Basic " + base64.b64encode(b"\xc3\xa9:\xc3\xa9").decode())
def test_basic_credentials_decode_as_b64decode_and_unquote_plus(
    authorization: str | None,
) -> None:
    """A Basic header gives the id and secret, None, or the malformed-header
    refusal exactly as strict base64 then unquote_plus on each part do."""
    expected = outcome(_plain_basic_credentials, authorization)
    assert outcome(basic_credentials, authorization) == expected


BODY_CREDENTIALS = st.dictionaries(
    st.sampled_from(["client_id", "client_secret", "grant_type"]),
    st.sampled_from(["", "id", "other", "secret"]),
)

BASIC_CREDENTIALS = st.one_of(
    st.none(),
    st.tuples(
        st.sampled_from(["", "id", "other", "i+d", "%69d"]),
        st.sampled_from(["", "secret", "s+%2B"]),
    ).map(lambda pair: "Basic " + base64.b64encode(":".join(pair).encode()).decode()),
)


@settings(max_examples=500)
@given(BODY_CREDENTIALS, BASIC_CREDENTIALS)
@example({"client_id": "id"}, "Basic " + base64.b64encode(b"id:secret").decode())
@example({"client_id": "other"}, "Basic " + base64.b64encode(b"id:secret").decode())
def test_basic_and_body_credentials_merge_as_plain_readings_do(
    fields: dict[str, str], authorization: str | None
) -> None:
    """Basic credentials join the body's fields, or are refused beside body
    credentials, exactly as a plain merge of the two readings does."""
    expected = outcome(_plain_authentication, fields, authorization)
    assert outcome(_authentication, fields, authorization) == expected
