"""The console's side of the audit trail: the Activity page and sign-in events.

A holder sees only their own account's events, newest first. Sign-ins and
sign-outs are recorded here, since only the console has them; every other
change records its event in `netcalc.accounts.service`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import Response

from netcalc.accounts.pages import PageRoute, SignInRequired, render
from netcalc.accounts.service import normalise_email
from netcalc.accounts.sessions import COOKIE_NAME, ConsoleSession
from netcalc.audit import Event, list_events, record
from netcalc.errors import UsageError
from netcalc.runtime import runtime_of

activity_router = APIRouter(route_class=PageRoute, include_in_schema=False)

PAGE_SIZE = 100
"""How many of its newest events an account's Activity page shows."""

NOT_AN_EMAIL = "(not an email address)"
"""The subject of a failed sign-in whose email field held something else.

People type passwords into the email field; what is not shaped like an
email is never written down.
"""

EVENT_TITLES: dict[Event, str] = {
    "account.created": "Account created",
    "account.disabled": "Account disabled",
    "account.enabled": "Account enabled",
    "account.password_set": "Password set",
    "credentials.created": "Credentials generated",
    "credentials.rotated": "Secret rotated",
    "credentials.revoked": "Credentials revoked",
    "token.revoked": "Access token revoked",
    "keys.rotated": "Signing key rotated",
    "signin.succeeded": "Signed in",
    "signin.failed": "Failed sign-in",
    "signout": "Signed out",
}
"""How the Activity page names each kind of event."""


def console_actor(email: str) -> str:
    """The actor of a change an account holder makes in the console."""
    return f"console:{email}"


VISITOR_ACTOR = "console:visitor"
"""The actor of a refused sign-in: someone not signed in, whatever email
they typed."""


async def signed_in(
    engine: AsyncEngine, account_id: str, email: str, address: str
) -> None:
    """Record a sign-in that opened a session."""
    await record(
        engine,
        "signin.succeeded",
        actor=console_actor(email),
        account_id=account_id,
        subject=email,
        address=address,
    )


async def sign_in_refused(
    engine: AsyncEngine,
    attempted: str,
    address: str,
    account: Mapping[str, Any] | None,
    reason: str,
) -> None:
    """Record a refused sign-in; an unknown email belongs to no account's trail."""
    if account is not None:
        subject, account_id = str(account["email"]), str(account["id"])
    else:
        subject, account_id = _plausible(attempted), None
    await record(
        engine,
        "signin.failed",
        actor=VISITOR_ACTOR,
        account_id=account_id,
        subject=subject,
        address=address,
        details={"reason": reason},
    )


def _plausible(attempted: str) -> str:
    try:
        return normalise_email(attempted)
    except UsageError:
        return NOT_AN_EMAIL


async def signed_out(
    engine: AsyncEngine, session: ConsoleSession, address: str
) -> None:
    """Record the end of a signed-in session; a visitor's ends unrecorded."""
    if session.account_id is None or session.email is None:
        return
    await record(
        engine,
        "signout",
        actor=console_actor(session.email),
        account_id=session.account_id,
        subject=session.email,
        address=address,
    )


@activity_router.get("/activity")
async def activity_page(request: Request) -> Response:
    """The signed-in account's own events, newest first."""
    runtime = runtime_of(request)
    session = await runtime.console.sessions.find(request.cookies.get(COOKIE_NAME))
    if session is None or session.account_id is None:
        raise SignInRequired()
    events = await list_events(
        runtime.engine, account_id=session.account_id, limit=PAGE_SIZE
    )
    return render(
        "activity.html",
        account_email=session.email,
        csrf_token=session.csrf_token,
        events=[_shown(event) for event in events],
        page_size=PAGE_SIZE,
    )


def _shown(event: dict[str, Any]) -> dict[str, Any]:
    """An event as the page shows it: titled, to the second, details in words."""
    when = datetime.fromisoformat(event["occurred_at"])
    return event | {
        "title": EVENT_TITLES.get(event["event"], event["event"]),
        "when": when.strftime("%Y-%m-%d %H:%M:%S"),
        "summary": _summary(event["details"]),
    }


def _summary(details: Mapping[str, Any]) -> str:
    parts = []
    for key, value in details.items():
        if value is None or value == []:
            continue
        text = ", ".join(value) if isinstance(value, list) else str(value)
        parts.append(f"{key.replace('_', ' ')}: {text}")
    return " · ".join(parts)
