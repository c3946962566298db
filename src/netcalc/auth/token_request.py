"""Reading a token request: media type, body, and client authentication.

Everything here is plain parsing with no I/O and no framework imports, so the
checks of CONTRACT §1 run in their stated order and can be tested directly.
"""

from __future__ import annotations

from binascii import a2b_base64
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote_plus

from netcalc.auth.client_secrets import is_client_id
from netcalc.bodies import FORM, JSON, media_type, parse_json_object, reject_duplicates
from netcalc.errors import (
    InvalidGrantType,
    InvalidRequest,
    MissingCredentials,
    MissingGrantType,
    MissingHeader,
)

GRANT_TYPE = "client_credentials"
"""The only grant netcalc issues tokens for (RFC 6749 §4.4)."""

TOKEN_FIELDS = ("client_id", "client_secret", "grant_type", "scope")
"""The fields of a token request (RFC 6749 §4.4.2)."""


# The two classes here and GrantedToken are built on every token request.
# They are not frozen: a frozen dataclass sets each field through
# object.__setattr__, and building one cost three times as much.


@dataclass(slots=True)
class ClientAuthentication:
    """The credentials a client presented (RFC 6749 §2.3.1), not yet checked."""

    client_id: str
    # Kept out of the repr, which a traceback or a log line may show.
    client_secret: str = field(repr=False)
    used_basic: bool
    id_is_ours: bool = field(init=False)
    """True when the id has the shape of the ids netcalc issues; asked
    before the credentials are looked up and again for the log line."""

    def __post_init__(self) -> None:
        # Set here, not cached on first use: every request asks, and a
        # cached_property takes a lock each time it fills itself.
        self.id_is_ours = is_client_id(self.client_id)


@dataclass(slots=True)
class TokenRequest:
    """A token request whose shape has been checked, before any lookup."""

    client: ClientAuthentication
    grant_type: str
    scope: str | None

    @property
    def client_id(self) -> str:
        return self.client.client_id


def parse_body(
    content_type: str | None, body: bytes, names: tuple[str, ...] = TOKEN_FIELDS
) -> dict[str, str]:
    """The named fields of a JSON or form body; other fields are ignored.

    Raises MissingHeader for an absent or unreadable media type, and
    InvalidRequest for a body that does not parse, a field given twice, or a
    named field that is not a string. A JSON null counts as absent.
    """
    kind = media_type(content_type)
    if kind == JSON:
        return _json_fields(body, names)
    if kind == FORM:
        return _form_fields(body, names)
    raise MissingHeader()


def oauth_form_fields(
    content_type: str | None, body: bytes, names: tuple[str, ...] = TOKEN_FIELDS
) -> dict[str, str]:
    """The named fields of the form body of an RFC 6749 endpoint.

    A field sent without a value counts as not sent (RFC 6749 §3.2), so an
    empty `client_secret=` beside Basic authentication is no second method.
    Raises MissingHeader for any other media type, JSON too, and
    InvalidRequest as `parse_body` does.
    """
    # The exact media type is compared first, as most clients send it bare.
    if content_type != FORM and media_type(content_type) != FORM:
        raise MissingHeader("Send the body as application/x-www-form-urlencoded.")
    fields = _every_form_field(body)
    # A loop, not a comprehension, which would cost a function call.
    kept = {}
    for name in names:
        value = fields.get(name)
        if value:
            kept[name] = value
    return kept


def _json_fields(body: bytes, names: tuple[str, ...]) -> dict[str, str]:
    document = parse_json_object(body)
    fields: dict[str, str] = {}
    for name in names:
        value = document.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidRequest(f"The field {name!r} must be a string.")
        fields[name] = value
    return fields


def _form_fields(body: bytes, names: tuple[str, ...]) -> dict[str, str]:
    fields = _every_form_field(body)
    return {name: fields[name] for name in names if name in fields}


def _every_form_field(body: bytes) -> dict[str, str]:
    """Every field of a form body, read as parse_qsl reads it; a field given
    twice is refused."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise InvalidRequest("The form body is not valid UTF-8.") from None
    # parse_qsl unquotes each name and value through several calls, which
    # change nothing in a body without `%` or `+`, as token requests mostly
    # are. Looked for in the text: `in` on bytes first tries its operand as
    # an int, raising and clearing a TypeError each time.
    if "%" in text or "+" in text:
        return _unquoted_form_fields(text)
    fields: dict[str, str] = {}
    for pair in text.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            if name in fields:
                # Refused by the general reading, which names the field.
                return _unquoted_form_fields(text)
            fields[name] = value
    return fields


def _unquoted_form_fields(text: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict")
    except ValueError:
        raise InvalidRequest("The form body is not valid UTF-8.") from None
    return reject_duplicates(pairs)


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """The client id and secret of an `Authorization: Basic` header.

    RFC 6749 §2.3.1: both are form-url-encoded before the base64 step, so
    they are decoded again after it. Other schemes are not client
    authentication and are ignored.
    """
    if authorization is None:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        # What base64.b64decode(validate=True) runs, less its Python steps;
        # a str that is not ASCII raises ValueError here as there.
        decoded = a2b_base64(encoded.strip(), strict_mode=True).decode()
        client_id, separator, secret = decoded.partition(":")
        if not separator:
            raise ValueError("no colon")
        if "%" in decoded or "+" in decoded:
            return (
                unquote_plus(client_id, errors="strict"),
                unquote_plus(secret, errors="strict"),
            )
    except ValueError:
        raise InvalidRequest("The Basic authorization header is malformed.") from None
    # With no escape and no plus sign, form decoding changes nothing.
    return client_id, secret


def authenticate_client(
    fields: dict[str, str], authorization: str | None
) -> ClientAuthentication:
    """The client's id and secret, from the Basic header or the body.

    Raises InvalidRequest when both carry credentials (RFC 6749 §2.3) and
    MissingCredentials when either part is absent or empty.
    """
    basic = basic_credentials(authorization)
    if basic is not None:
        fields = _merge_basic(fields, basic)
    client_id = fields.get("client_id")
    client_secret = fields.get("client_secret")
    if not client_id or not client_secret:
        raise MissingCredentials()
    return ClientAuthentication(client_id, client_secret, basic is not None)


def token_request_of(
    fields: dict[str, str], client: ClientAuthentication
) -> TokenRequest:
    """The token request of a client whose credentials are read, once its
    grant_type is checked; the last step of CONTRACT §1's reading order,
    after parse_body and authenticate_client."""
    grant_type = fields.get("grant_type")
    if grant_type is None:
        raise MissingGrantType()
    if grant_type != GRANT_TYPE:
        raise InvalidGrantType()
    return TokenRequest(client, grant_type, fields.get("scope"))


def _merge_basic(fields: dict[str, str], basic: tuple[str, str]) -> dict[str, str]:
    # RFC 6749 §2.3: one authentication method per request. Some clients
    # repeat the same client_id in the body, which authenticates nothing.
    client_id, client_secret = basic
    body_id = fields.get("client_id")
    if "client_secret" in fields or body_id not in (None, client_id):
        raise InvalidRequest(
            "Send the client credentials in the Authorization header "
            "or in the body, not both."
        )
    return dict(fields, client_id=client_id, client_secret=client_secret)
