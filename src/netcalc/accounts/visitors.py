"""The console's sign-up, sign-in and sign-out pages.

A visitor gets a session too, without an account, so the sign-up and
sign-in forms carry CSRF tokens like every other. Sign-ins are throttled
per email and per address, sign-ups per address. With NETCALC_SIGNUP=closed
the sign-up route answers 403 and the sign-in page does not link to it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from netcalc.accounts import service
from netcalc.accounts.activity import (
    console_actor,
    sign_in_refused,
    signed_in,
    signed_out,
)
from netcalc.accounts.holders import posted, session_of
from netcalc.accounts.pages import PageRoute, redirect, render
from netcalc.accounts.passwords import verify_password
from netcalc.accounts.sessions import COOKIE_NAME, OpenedSession
from netcalc.auth.exchange import client_address
from netcalc.errors import NetcalcError, SignUpClosed, TooManyRequests, UsageError
from netcalc.runtime import runtime_of

visitor_router = APIRouter(route_class=PageRoute, include_in_schema=False)

WRONG_PASSWORD = "Email or password is incorrect."
"""The one answer to a failed sign-in, whether or not the email exists."""


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


@visitor_router.get("/")
async def home(request: Request) -> Response:
    """Signed-in holders go to their credentials; visitors to sign in."""
    session = await session_of(request)
    signed_in = session is not None and session.signed_in
    return redirect("/credentials" if signed_in else "/signin")


def _check_sign_up_open(request: Request) -> None:
    """Raise SignUpClosed unless visitors may create accounts here."""
    if not runtime_of(request).settings.signup_open:
        raise SignUpClosed()


def _form_page(
    request: Request,
    template: str,
    csrf_token: str,
    email: str = "",
    error: NetcalcError | None = None,
) -> Response:
    """A sign-in or sign-up form, with what the visitor typed as email and
    why it was refused, if it was."""
    return render(
        template,
        error.http_status if error else 200,
        error.headers() if error else None,
        csrf_token=csrf_token,
        email=email,
        error=error.message if error else None,
        signup_open=runtime_of(request).settings.signup_open,
    )


async def _visitor_page(request: Request, template: str) -> Response:
    """A sign-in or sign-up form, with a visitor session for its CSRF token."""
    session = await session_of(request)
    if session is not None and session.signed_in:
        return redirect("/credentials")
    if session is not None:
        return _form_page(request, template, session.csrf_token)
    opened = await runtime_of(request).console.sessions.start(None)
    page = _form_page(request, template, opened.session.csrf_token)
    return _with_cookie(request, page, opened)


@visitor_router.get("/signin")
async def sign_in_page(request: Request) -> Response:
    """The sign-in form."""
    return await _visitor_page(request, "signin.html")


@visitor_router.get("/signup")
async def sign_up_page(request: Request) -> Response:
    """The sign-up form."""
    _check_sign_up_open(request)
    return await _visitor_page(request, "signup.html")


async def _authenticate(request: Request, email: str, password: str) -> tuple[str, str]:
    """The id of the account that this email and password open, and the
    password hash they were checked against.

    Failures are counted per email and per address, and recorded in the
    audit trail; over either limit the password is not even checked and
    nothing is recorded, so a flood grows the trail no faster than the
    limits allow. A right password is refused too when failures counted
    while it was checked crossed a limit, so guesses sent together cannot
    all pass the first check. An unknown email fails as a wrong password
    does, in the same time.
    """
    runtime = runtime_of(request)
    throttle, address = runtime.console.throttle, client_address(request)
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
    return str(account["id"]), str(stored)


@visitor_router.post("/signin")
async def sign_in(request: Request) -> Response:
    """Check the password and start a new session for the account."""
    session, form = await posted(request)
    email = service.email_key(form.get("email"))
    runtime = runtime_of(request)
    try:
        account_id, checked = await _authenticate(request, email, form.get("password"))
        opened = await runtime.console.sessions.start(
            account_id, replacing=session, password_hash=checked
        )
    except (TooManyRequests, UsageError) as error:
        typed = form.get("email")
        return _form_page(request, "signin.html", session.csrf_token, typed, error)
    await signed_in(runtime.engine, account_id, email, client_address(request))
    return _with_cookie(request, redirect("/credentials"), opened)


@visitor_router.post("/signup")
async def sign_up(request: Request) -> Response:
    """Create an account and sign it in."""
    # Before the form is read: a closed sign-up counts against no limit and
    # leaves no trace but the request's log line.
    _check_sign_up_open(request)
    session, form = await posted(request)
    runtime = runtime_of(request)
    email, password = form.get("email"), form.get("password")
    try:
        await runtime.console.sign_ups.count(client_address(request))
        if password != form.get("password_again"):
            raise UsageError("The two passwords are not the same.")
        account_id = await service.create_account(
            runtime.engine,
            email,
            password,
            actor=console_actor(service.email_key(email)),
            address=client_address(request),
        )
    except (TooManyRequests, UsageError) as error:
        return _form_page(request, "signup.html", session.csrf_token, email, error)
    opened = await runtime.console.sessions.start(account_id, replacing=session)
    return _with_cookie(request, redirect("/credentials"), opened)


@visitor_router.post("/signout")
async def sign_out(request: Request) -> Response:
    """End the session and forget its cookie."""
    if await session_of(request) is None:
        # Ended already, as by disabling the account: there is no CSRF token
        # to check and nothing to end, so only the cookie is forgotten.
        return _without_cookie(request, redirect("/signin"))
    session, _ = await posted(request)
    runtime = runtime_of(request)
    await runtime.console.sessions.end(session)
    await signed_out(runtime.engine, session, client_address(request))
    return _without_cookie(request, redirect("/signin"))


def _without_cookie(request: Request, response: Response) -> Response:
    response.delete_cookie(
        COOKIE_NAME,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )
    return response
