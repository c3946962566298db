"""The console's HTML forms: reading them, and the CSRF token they echo.

Bodies are read with the same size limit as the API's and parsed here, so
the console needs no multipart parser. Only url-encoded forms are read: a
browser sends every console form that way, and anything else is refused as
a cross-site attempt.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.requests import Request

from netcalc.bodies import FORM, media_type
from netcalc.errors import CsrfRejected, InvalidRequest, UsageError
from netcalc.http_body import header, read_body

CSRF_FIELD = "csrf_token"
"""The hidden field every console form carries."""


class Form:
    """The fields of one posted form; a name may repeat, as checkboxes do."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._fields: dict[str, list[str]] = {}
        for name, value in pairs:
            self._fields.setdefault(name, []).append(value)

    def get(self, name: str) -> str:
        """The field's first value, or an empty string."""
        return self._fields.get(name, [""])[0]

    def get_all(self, name: str) -> list[str]:
        """Every value given for the field."""
        return list(self._fields.get(name, []))


async def read_form(request: Request, limit: int) -> Form:
    """The url-encoded form of a console POST."""
    if media_type(header(request, b"content-type")) != FORM:
        raise CsrfRejected()
    body = await read_body(request, limit)
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("The form is not valid UTF-8.") from None
    return Form(pairs)


def check_csrf(form: Form, expected: str | None) -> None:
    """Refuse a form whose CSRF token is not the session's."""
    given = form.get(CSRF_FIELD).encode()
    if expected is None or not hmac.compare_digest(given, expected.encode()):
        raise CsrfRejected()


@dataclass(frozen=True)
class CredentialsRequest:
    """What the generate form asks for, as typed."""

    name: str
    scopes: tuple[str, ...]
    token_ttl: str

    @classmethod
    def from_form(cls, form: Form) -> CredentialsRequest:
        """The generate form's values; unknown scopes are kept to be refused."""
        scopes = tuple(dict.fromkeys(form.get_all("scope")))
        return cls(form.get("name").strip(), scopes, form.get("token_ttl").strip())

    def lifetime(self, max_ttl: int) -> int | None:
        """The token lifetime in seconds, or None for the server's default."""
        text = self.token_ttl
        if not text:
            return None
        if not (text.isascii() and text.isdecimal()):
            raise UsageError("A token lifetime must be a whole number of seconds.")
        # Leading zeros change no number; past them, a number too long is
        # refused before int(), which is slow on thousands of digits.
        digits = text.lstrip("0") or "0"
        if len(digits) > len(str(max_ttl)):
            raise UsageError(f"A token lifetime must be 1 to {max_ttl} seconds.")
        return int(digits)


EMPTY_CREDENTIALS = CredentialsRequest("", (), "")
"""The generate form before anything is typed."""
