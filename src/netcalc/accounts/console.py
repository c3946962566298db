"""The web console at `/`: sign up, sign in, and manage client credentials.

Server-rendered HTML that works without JavaScript; a script only adds the
copy buttons. Every form carries its session's CSRF token, and every change
goes through `netcalc.accounts.service`, which commits before it returns,
so the token endpoint and the bearer guard see it at once. Credentials are
always looked up within the signed-in account: another account's client id
answers not found.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from netcalc.accounts import service
from netcalc.accounts.activity import (
    activity_router,
    console_actor,
    sign_in_refused,
    signed_in,
    signed_out,
)
from netcalc.accounts.forms import (
    EMPTY_CREDENTIALS,
    CredentialsRequest,
    Form,
    check_csrf,
    read_form,
)
from netcalc.accounts.pages import PageRoute, SignInRequired, redirect, render
from netcalc.accounts.passwords import verify_password
from netcalc.accounts.sessions import COOKIE_NAME, ConsoleSession, OpenedSession
from netcalc.auth.announcements import client_revoked
from netcalc.auth.scopes import ACCOUNT_SCOPES
from netcalc.errors import CsrfRejected, NotFound, TooManyRequests, UsageError, quoted
from netcalc.runtime import runtime_of

console_router = APIRouter(route_class=PageRoute, include_in_schema=False)
console_router.include_router(activity_router)

WRONG_PASSWORD = "Email or password is incorrect."
"""The one answer to a failed sign-in, whether or not the email exists."""


@dataclass(frozen=True)
class Holder:
    """The signed-in account holder making this request."""

    account_id: str
    email: str
    csrf_token: str

    def chrome(self) -> dict[str, Any]:
        """What every signed-in page shows around its content."""
        return {"account_email": self.email, "csrf_token": self.csrf_token}


async def _session(request: Request) -> ConsoleSession | None:
    cookie = request.cookies.get(COOKIE_NAME)
    return await runtime_of(request).console.sessions.find(cookie)


def _holder(session: ConsoleSession | None) -> Holder:
    if session is None or session.account_id is None:
        raise SignInRequired()
    return Holder(session.account_id, session.email or "", session.csrf_token)


async def _posted(request: Request) -> tuple[ConsoleSession, Form]:
    """The session and form of a POST whose CSRF token is the session's."""
    session = await _session(request)
    if session is None:
        raise CsrfRejected()
    form = await read_form(request, runtime_of(request).settings.body_limit)
    check_csrf(form, session.csrf_token)
    return session, form


async def _posted_by_holder(request: Request) -> tuple[Holder, Form]:
    session, form = await _posted(request)
    return _holder(session), form


def _with_cookie(
    request: Request, response: Response, opened: OpenedSession
) -> Response:
    response.set_cookie(
        COOKIE_NAME,
        opened.cookie,
        max_age=int(opened.lifetime.total_seconds()),
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )
    return response


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@console_router.get("/")
async def home(request: Request) -> Response:
    """Signed-in holders go to their credentials; visitors to sign in."""
    session = await _session(request)
    signed_in = session is not None and session.signed_in
    return redirect("/credentials" if signed_in else "/signin")


async def _visitor_page(request: Request, template: str) -> Response:
    """A sign-in or sign-up form, with a visitor session for its CSRF token."""
    session = await _session(request)
    if session is not None and session.signed_in:
        return redirect("/credentials")
    if session is not None:
        return render(template, csrf_token=session.csrf_token, email="", error=None)
    opened = await runtime_of(request).console.sessions.start(None)
    page = render(template, csrf_token=opened.session.csrf_token, email="", error=None)
    return _with_cookie(request, page, opened)


@console_router.get("/signin")
async def sign_in_page(request: Request) -> Response:
    """The sign-in form."""
    return await _visitor_page(request, "signin.html")


@console_router.get("/signup")
async def sign_up_page(request: Request) -> Response:
    """The sign-up form."""
    return await _visitor_page(request, "signup.html")


async def _authenticate(request: Request, email: str, password: str) -> str:
    """The id of the account that this email and password open.

    Failures are counted per email and per address, and recorded in the
    audit trail; over either limit the password is not even checked and
    nothing is recorded, so a flood grows the trail no faster than the
    limits allow. A right password is refused too when failures counted
    while it was checked crossed a limit, so guesses sent together cannot
    all pass the first check. An unknown email fails as a wrong password
    does, in the same time.
    """
    runtime = runtime_of(request)
    throttle, address = runtime.console.throttle, _address(request)
    await throttle.check(email, address)
    account = await service.find_account(runtime.engine, email)
    stored = account["password_hash"] if account else None
    # In a thread: argon2id would otherwise stall the token endpoint.
    valid = await run_in_threadpool(verify_password, stored, password)
    if account is None or not valid:
        await throttle.failed(email, address)
        reason = "wrong password" if account else "unknown email"
        await sign_in_refused(runtime.engine, email, address, account, reason)
        raise UsageError(WRONG_PASSWORD)
    await throttle.check(email, address)
    if account["disabled"]:
        await sign_in_refused(runtime.engine, email, address, account, "disabled")
        raise UsageError("This account is disabled.")
    return str(account["id"])


@console_router.post("/signin")
async def sign_in(request: Request) -> Response:
    """Check the password and start a new session for the account."""
    session, form = await _posted(request)
    email = form.get("email").strip().lower()
    try:
        account_id = await _authenticate(request, email, form.get("password"))
    except (TooManyRequests, UsageError) as error:
        return render(
            "signin.html",
            error.http_status,
            error.headers(),
            csrf_token=session.csrf_token,
            email=form.get("email"),
            error=error.message,
        )
    runtime = runtime_of(request)
    opened = await runtime.console.sessions.start(account_id, replacing=session)
    await signed_in(runtime.engine, account_id, email, _address(request))
    return _with_cookie(request, redirect("/credentials"), opened)


@console_router.post("/signup")
async def sign_up(request: Request) -> Response:
    """Create an account and sign it in."""
    session, form = await _posted(request)
    runtime = runtime_of(request)
    email, password = form.get("email"), form.get("password")
    try:
        await runtime.console.sign_ups.count(_address(request))
        if password != form.get("password_again"):
            raise UsageError("The two passwords are not the same.")
        account_id = await service.create_account(
            runtime.engine,
            email,
            password,
            actor=console_actor(email.strip().lower()),
            address=_address(request),
        )
    except (TooManyRequests, UsageError) as error:
        return render(
            "signup.html",
            error.http_status,
            error.headers(),
            csrf_token=session.csrf_token,
            email=email,
            error=error.message,
        )
    opened = await runtime.console.sessions.start(account_id, replacing=session)
    return _with_cookie(request, redirect("/credentials"), opened)


@console_router.post("/signout")
async def sign_out(request: Request) -> Response:
    """End the session and forget its cookie."""
    session, _ = await _posted(request)
    runtime = runtime_of(request)
    await runtime.console.sessions.end(session)
    await signed_out(runtime.engine, session, _address(request))
    response = redirect("/signin")
    response.delete_cookie(
        COOKIE_NAME,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )
    return response


@console_router.get("/credentials")
async def credentials_page(request: Request) -> Response:
    """The account's credentials, oldest first."""
    holder = _holder(await _session(request))
    runtime = runtime_of(request)
    rows = await service.list_credentials(runtime.engine, holder.account_id)
    return render(
        "credentials.html",
        **holder.chrome(),
        credentials=rows,
        default_ttl=runtime.settings.token_ttl,
        notice=_revoked_notice(rows, request.query_params.get("revoked")),
    )


def _revoked_notice(rows: list[dict[str, Any]], client_id: str | None) -> str | None:
    for row in rows:
        if row["client_id"] == client_id and row["status"] == "revoked":
            return f"Revoked {row['name']}. Its tokens are refused from now on."
    return None


def _new_form(
    request: Request,
    holder: Holder,
    asked: CredentialsRequest,
    error: str | None = None,
) -> Response:
    settings = runtime_of(request).settings
    return render(
        "new.html",
        400 if error else 200,
        **holder.chrome(),
        asked=asked,
        scope_choices=ACCOUNT_SCOPES,
        default_ttl=settings.token_ttl,
        max_ttl=settings.token_ttl_max,
        error=error,
    )


@console_router.get("/credentials/new")
async def new_credentials_page(request: Request) -> Response:
    """The form that generates credentials."""
    holder = _holder(await _session(request))
    return _new_form(request, holder, EMPTY_CREDENTIALS)


@console_router.post("/credentials/new")
async def generate_credentials(request: Request) -> Response:
    """Generate credentials and show their secret, this once."""
    holder, form = await _posted_by_holder(request)
    runtime = runtime_of(request)
    settings = runtime.settings
    asked = CredentialsRequest.from_form(form)
    try:
        issued = await service.create_credentials(
            runtime.engine,
            runtime.secret_hash_key,
            holder.account_id,
            name=asked.name,
            scopes=asked.scopes,
            token_ttl=asked.lifetime(settings.token_ttl_max),
            max_ttl=settings.token_ttl_max,
            actor=console_actor(holder.email),
            address=_address(request),
        )
    except UsageError as error:
        return _new_form(request, holder, asked, error.message)
    return _secret_page(request, holder, issued, asked.name, rotated=False)


def _secret_page(
    request: Request,
    holder: Holder,
    issued: service.IssuedSecret,
    name: str,
    *,
    rotated: bool,
) -> Response:
    body = json.dumps(
        {
            "client_id": issued.client_id,
            "client_secret": issued.client_secret,
            "grant_type": "client_credentials",
        },
        separators=(",", ":"),
    )
    base = str(request.app.state.public_url).rstrip("/")
    curl = (
        f"curl -s -X POST {base}/api/auth/token "
        f"-H 'Content-Type: application/json' -d '{body}'"
    )
    return render(
        "secret.html",
        **holder.chrome(),
        issued=issued,
        name=name,
        curl=curl,
        rotated=rotated,
    )


async def _owned(request: Request, holder: Holder, client_id: str) -> dict[str, Any]:
    """Credentials of this holder's account, or NotFound for any other id."""
    engine = runtime_of(request).engine
    for row in await service.list_credentials(engine, holder.account_id):
        if row["client_id"] == client_id:
            return row
    raise NotFound(f"No credentials have the client id {quoted(client_id)}.")


async def _confirm_page(request: Request, client_id: str, action: str) -> Response:
    holder = _holder(await _session(request))
    row = await _owned(request, holder, client_id)
    if row["status"] == "revoked":
        raise UsageError(f"{row['name']} was revoked already; generate new ones.")
    return render(
        f"{action}.html",
        **holder.chrome(),
        credentials=row,
        grace=runtime_of(request).settings.rotation_grace,
        action=f"/credentials/{quote(client_id)}/{action}",
    )


@console_router.get("/credentials/{client_id}/rotate")
async def rotate_page(request: Request, client_id: str) -> Response:
    """Ask before issuing a new secret."""
    return await _confirm_page(request, client_id, "rotate")


@console_router.post("/credentials/{client_id}/rotate")
async def rotate(request: Request, client_id: str) -> Response:
    """Issue a new secret; the old one works for the grace period."""
    holder, _ = await _posted_by_holder(request)
    runtime = runtime_of(request)
    issued = await service.rotate_credentials(
        runtime.engine,
        runtime.secret_hash_key,
        client_id,
        grace=runtime.settings.rotation_grace,
        account_id=holder.account_id,
        actor=console_actor(holder.email),
        address=_address(request),
    )
    row = await _owned(request, holder, client_id)
    return _secret_page(request, holder, issued, row["name"], rotated=True)


@console_router.get("/credentials/{client_id}/revoke")
async def revoke_page(request: Request, client_id: str) -> Response:
    """Ask before revoking."""
    return await _confirm_page(request, client_id, "revoke")


@console_router.post("/credentials/{client_id}/revoke")
async def revoke(request: Request, client_id: str) -> Response:
    """Revoke at once: from now on the credentials and their tokens are refused."""
    holder, _ = await _posted_by_holder(request)
    runtime = runtime_of(request)
    revoked = await service.revoke_credentials(
        runtime.engine,
        client_id,
        account_id=holder.account_id,
        actor=console_actor(holder.email),
        address=_address(request),
    )
    if revoked:
        await runtime.revocations.announce(client_revoked(client_id))
    return redirect(f"/credentials?revoked={quote(client_id)}")
