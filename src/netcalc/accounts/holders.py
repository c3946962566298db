"""Who is asking: the console session of a request and its signed-in holder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request

from netcalc.accounts.forms import Form, check_csrf, read_form
from netcalc.accounts.pages import SignInRequired
from netcalc.accounts.sent_forms import SentForm
from netcalc.accounts.sessions import COOKIE_NAME, ConsoleSession
from netcalc.errors import CsrfRejected
from netcalc.runtime import runtime_of


@dataclass(frozen=True)
class Holder:
    """The signed-in account holder making this request."""

    account_id: str
    email: str
    csrf_token: str

    def chrome(self) -> dict[str, Any]:
        """What every signed-in page shows around its content."""
        return {"account_email": self.email, "csrf_token": self.csrf_token}


async def session_of(request: Request) -> ConsoleSession | None:
    """The session the request's cookie names, if it is valid."""
    cookie = request.cookies.get(COOKIE_NAME)
    return await runtime_of(request).console.sessions.find(cookie)


def holder_of(session: ConsoleSession | None) -> Holder:
    """The signed-in holder of `session`; SignInRequired for a visitor."""
    if session is None or session.account_id is None:
        raise SignInRequired()
    return Holder(session.account_id, session.email or "", session.csrf_token)


async def posted(request: Request) -> tuple[ConsoleSession, Form]:
    """The session and form of a POST whose CSRF token is the session's."""
    session = await session_of(request)
    if session is None:
        raise CsrfRejected()
    form = await read_form(request, runtime_of(request).settings.body_limit)
    check_csrf(form, session.csrf_token)
    return session, form


async def posted_by_holder(request: Request) -> tuple[Holder, Form]:
    """The holder and form of a POST whose CSRF token is the session's."""
    session, form = await posted(request)
    return holder_of(session), form


async def posted_once(request: Request) -> tuple[Holder, Form, SentForm]:
    """The holder and form of a single-use form's POST, and the post to record.

    The CSRF token is checked first, then the form id's shape.
    """
    session, form = await posted(request)
    return holder_of(session), form, SentForm.of(session, form)
