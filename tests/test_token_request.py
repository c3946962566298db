"""Reading token requests: body formats, Basic decoding and check order."""

from __future__ import annotations

import base64
import contextlib
import json
from urllib.parse import quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netcalc.auth.token_request import (
    ClientAuthentication,
    TokenRequest,
    authenticate_client,
    basic_credentials,
    parse_body,
    token_request_of,
)
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
    fields = parse_body(content_type, body, allow_json=True)
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
