"""The web console over HTTP: sessions, CSRF, headers, isolation, throttling."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio import from_thread
from limits import parse
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.testclient import TestClient

from netcalc.accounts import service, visitors
from netcalc.accounts import sessions as session_store
from netcalc.accounts.sessions import VISITOR_LIFETIME
from netcalc.accounts.tables import accounts
from netcalc.accounts.tables import console_sessions as sessions
from netcalc.app import create_app
from netcalc.audit import MAX_LIMIT, list_events
from netcalc.db import utcnow
from netcalc.errors import TooManySignUps
from netcalc.runtime import Runtime
from netcalc.security_headers import CONTENT_SECURITY_POLICY
from netcalc.settings import Settings
from tests.support import PASSWORD, Console, make_settings

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
FORM_ID = re.compile(r'name="form_id" value="([^"]+)"')
CLIENT_ID = re.compile(r'id="client-id">([^<]+)<')
CLIENT_SECRET = re.compile(r'id="client-secret"[^>]*>([^<]+)<')
WRONG = "Email or password is incorrect."


def csrf_of(page: httpx.Response) -> str:
    """The CSRF token of the first form on a page."""
    found = CSRF.search(page.text)
    assert found, page.text
    return found.group(1)


def hidden_fields(page: httpx.Response) -> dict[str, str]:
    """What a page's form sends unseen: the CSRF token and, on a single-use
    form, its form id."""
    fields = {"csrf_token": csrf_of(page)}
    form_id = FORM_ID.search(page.text)
    if form_id:
        fields["form_id"] = form_id.group(1)
    return fields


def post_form(
    client: TestClient, path: str, fields: dict[str, Any], token_from: str
) -> httpx.Response:
    """Post a form as a browser would, with the hidden fields of page
    `token_from`."""
    hidden = hidden_fields(client.get(token_from))
    return client.post(path, data={**hidden, **fields}, follow_redirects=False)


def sign_up(client: TestClient, email: str) -> None:
    """Create an account through the console; the client stays signed in."""
    response = post_form(
        client,
        "/signup",
        {"email": email, "password": PASSWORD, "password_again": PASSWORD},
        "/signup",
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/credentials"


def sign_in(client: TestClient, email: str, password: str) -> httpx.Response:
    """Post the sign-in form."""
    return post_form(
        client, "/signin", {"email": email, "password": password}, "/signin"
    )


def generate(client: TestClient, **fields: Any) -> httpx.Response:
    """Post the generate form; the page shows the new secret."""
    values = {"name": "ci", "token_ttl": ""} | fields
    return post_form(client, "/credentials/new", values, "/credentials/new")


def rotate(client: TestClient, client_id: str) -> httpx.Response:
    """Post the rotate form of its confirmation page; the page shows the new
    secret."""
    path = f"/credentials/{client_id}/rotate"
    return post_form(client, path, {}, path)


def issued(page: httpx.Response) -> tuple[str, str]:
    """The client id and secret a page shows."""
    client_id, secret = CLIENT_ID.search(page.text), CLIENT_SECRET.search(page.text)
    assert client_id and secret, page.text
    return client_id.group(1), secret.group(1)


def token_for(client: TestClient, client_id: str, secret: str) -> httpx.Response:
    """Ask the token endpoint for a token."""
    return client.post(
        "/api/auth/token",
        json={
            "client_id": client_id,
            "client_secret": secret,
            "grant_type": "client_credentials",
        },
    )


def subnets(client: TestClient, token: str) -> httpx.Response:
    """Call the Subnets API with a bearer token."""
    return client.get(
        "/api/account/subnets", headers={"Authorization": f"Bearer {token}"}
    )


@contextlib.contextmanager
def other_browser(
    client: TestClient, cookies: dict[str, str] | None = None
) -> Iterator[TestClient]:
    """The client as a second browser, with a cookie jar of its own for a while.

    One client keeps every request on the app's one event loop, which the
    PostgreSQL driver's pooled connections are bound to.
    """
    saved = client.cookies
    client.cookies = httpx.Cookies(cookies)
    try:
        yield client
    finally:
        client.cookies = saved


def test_root_sends_visitors_to_sign_in(client: TestClient) -> None:
    """A visitor without a session is sent from / to the sign-in form."""
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/signin"


def test_signed_out_visitor_cannot_open_credentials(client: TestClient) -> None:
    """Credentials pages send a signed-out visitor to sign in."""
    for path in ("/credentials", "/credentials/new", "/credentials/x/revoke"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == "/signin"


def test_session_cookie_flags_over_http(client: TestClient) -> None:
    """The session cookie is HttpOnly, SameSite=Lax, Path=/, and not Secure."""
    response = client.get("/signin")
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("netcalc_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie


def test_session_cookie_is_secure_over_https(client: TestClient) -> None:
    """Served over HTTPS, the session cookie is marked Secure."""
    client.base_url = httpx.URL("https://testserver")
    response = client.get("/signin")
    assert response.status_code == 200
    assert "Secure" in response.headers["set-cookie"]


@pytest.mark.parametrize(
    "path",
    [
        "/signin",
        "/static/console.css",
        "/static/copy.js",
        "/healthz",
        "/api/ip/1.2.3.4",
    ],
)
def test_security_headers_on_every_response(client: TestClient, path: str) -> None:
    """Pages, static files and API answers carry the security headers."""
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/signin", "GET, HEAD, POST"),
        ("POST", "/static/console.css", "GET, HEAD"),
        # Under the static mount, not the app's sign-in page it ends like.
        ("POST", "/static/signin", "GET, HEAD"),
    ],
)
def test_a_refused_method_is_answered_with_the_methods_of_that_path(
    client: TestClient, method: str, path: str, allow: str
) -> None:
    """405 names the methods served at the path itself, pages and static
    files alike."""
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow


def test_pages_are_never_cached(client: TestClient) -> None:
    """Console pages answer Cache-Control: no-store."""
    response = client.get("/signin")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"


def test_sign_up_signs_in_with_a_new_session(client: TestClient) -> None:
    """Sign-up replaces the visitor session; the old cookie opens nothing."""
    client.get("/signup")
    visitor = client.cookies["netcalc_session"]
    sign_up(client, "new@example.com")
    assert client.cookies["netcalc_session"] != visitor
    page = client.get("/credentials")
    assert page.status_code == 200
    assert "new@example.com" in page.text
    with other_browser(client, {"netcalc_session": visitor}) as stale:
        assert stale.get("/credentials", follow_redirects=False).status_code == 303


def test_sign_in_renews_the_session(client: TestClient, console: Console) -> None:
    """Signing in answers with a new session cookie and opens the credentials."""
    console.account("holder@example.com")
    client.get("/signin")
    visitor = client.cookies["netcalc_session"]
    response = sign_in(client, "Holder@Example.com ", PASSWORD)
    assert response.status_code == 303
    assert response.headers["location"] == "/credentials"
    assert client.cookies["netcalc_session"] != visitor
    assert client.get("/credentials").status_code == 200


def test_sign_out_ends_the_session(client: TestClient) -> None:
    """After sign-out the same cookie no longer opens the credentials."""
    sign_up(client, "leaving@example.com")
    cookie = client.cookies["netcalc_session"]
    response = post_form(client, "/signout", {}, "/credentials")
    assert response.status_code == 303
    assert response.headers["location"] == "/signin"
    with other_browser(client, {"netcalc_session": cookie}) as replay:
        assert replay.get("/credentials", follow_redirects=False).status_code == 303


def test_visitors_store_no_sessions(client: TestClient, console: Console) -> None:
    """Opening the forms stores nothing, however often: a visitor's session
    is its signed cookie. Signing in stores the one session it starts."""
    for _ in range(20):
        with other_browser(client) as visitor:
            assert visitor.get("/signin").status_code == 200

    async def stored(engine: AsyncEngine) -> int:
        async with engine.connect() as connection:
            rows = await connection.execute(select(func.count()).select_from(sessions))
            return int(rows.scalar_one())

    assert console.run(stored) == 0
    console.account("visited@example.com")
    assert sign_in(client, "visited@example.com", PASSWORD).status_code == 303
    assert console.run(stored) == 1


def test_altered_visitor_cookie_gets_a_new_session(client: TestClient) -> None:
    """A visitor cookie whose start time was moved no longer passes: the
    form comes with a new cookie, and its old CSRF token is refused."""
    page = client.get("/signin")
    old_csrf = csrf_of(page)
    token, _, signature = client.cookies["netcalc_session"].partition(".")
    prefix, started, nonce = token.split(":")
    moved = f"{prefix}:{int(started) + 3600}:{nonce}.{signature}"
    with other_browser(client, {"netcalc_session": moved}) as altered:
        fresh = altered.get("/signin")
    assert "netcalc_session=" in fresh.headers["set-cookie"]
    assert csrf_of(fresh) != old_csrf
    with other_browser(client, {"netcalc_session": moved}) as altered:
        refused = altered.post(
            "/signin",
            data={"csrf_token": old_csrf, "email": "a@example.com", "password": "x"},
            follow_redirects=False,
        )
    assert refused.status_code == 403


def test_visitor_session_ends_after_its_lifetime(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past VISITOR_LIFETIME a visitor cookie opens nothing; a new one is made."""
    client.get("/signin")
    cookie = client.cookies["netcalc_session"]
    later = utcnow() + VISITOR_LIFETIME + timedelta(seconds=1)
    monkeypatch.setattr(session_store, "utcnow", lambda: later)
    client.get("/signin")
    assert client.cookies["netcalc_session"] != cookie


def test_forged_cookie_opens_nothing(client: TestClient) -> None:
    """A cookie whose signature does not match is ignored."""
    sign_up(client, "forged@example.com")
    token, _, _ = client.cookies["netcalc_session"].partition(".")
    with other_browser(client, {"netcalc_session": token + ".AAAA"}) as forged:
        assert forged.get("/credentials", follow_redirects=False).status_code == 303


@pytest.mark.parametrize(
    ("email", "password"),
    [("someone@example.com", "wrong password!"), ("nobody@example.com", PASSWORD)],
    ids=["wrong-password", "unknown-email"],
)
def test_failed_sign_in_does_not_reveal_the_email(
    client: TestClient, console: Console, email: str, password: str
) -> None:
    """A wrong password and an unknown email get the same answer."""
    console.account("someone@example.com")
    response = sign_in(client, email, password)
    assert response.status_code == 400
    assert WRONG in response.text
    assert "exist" not in response.text.lower()


def test_failed_sign_in_answers_are_identical(
    client: TestClient, console: Console
) -> None:
    """Apart from the echoed email and the CSRF token, the two pages are equal."""
    console.account("someone@example.com")
    pages = [
        sign_in(client, email, "wrong password!").text.replace(email, "EMAIL")
        for email in ("someone@example.com", "nobody@example.com")
    ]
    same = [CSRF.sub("CSRF", page) for page in pages]
    assert same[0] == same[1]


def test_sign_in_is_throttled_per_email(client: TestClient, console: Console) -> None:
    """After five failures even the right password waits; other emails do not."""
    console.account("target@example.com")
    console.account("bystander@example.com")
    for _ in range(5):
        assert sign_in(client, "target@example.com", "guess guess!").status_code == 400
    response = sign_in(client, "target@example.com", PASSWORD)
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0
    assert "Too many failed attempts" in response.text
    assert sign_in(client, "bystander@example.com", PASSWORD).status_code == 303


def test_sign_ups_are_limited_per_address(
    tmp_path: Path, settings: Settings, console: Console
) -> None:
    """Past the limit no sign-up is tried, failed ones having counted too."""
    tight = make_settings(
        tmp_path, database_url=settings.database_url, signups_per_address="2/hour"
    )
    with TestClient(create_app(tight)) as client:
        mismatched = post_form(
            client,
            "/signup",
            {"email": "a@example.com", "password": PASSWORD, "password_again": "x"},
            "/signup",
        )
        assert mismatched.status_code == 400
        sign_up(client, "first@example.com")
        with other_browser(client):
            refused = post_form(
                client,
                "/signup",
                {
                    "email": "third@example.com",
                    "password": PASSWORD,
                    "password_again": PASSWORD,
                },
                "/signup",
            )
    assert refused.status_code == 429
    assert 3000 < int(refused.headers["retry-after"]) <= 3600
    assert "Too many sign-ups from this address" in refused.text
    assert console.run(service.count_accounts) == 1


def test_sign_up_limit_counts_each_address_apart() -> None:
    """One address over its limit leaves another's sign-ups alone."""

    async def scenario() -> None:
        limit = session_store.SignUpLimit(parse("1/hour"))
        await limit.count("192.0.2.1")
        with pytest.raises(TooManySignUps):
            await limit.count("192.0.2.1")
        await limit.count("192.0.2.2")

    asyncio.run(scenario())


@contextlib.contextmanager
def closed_console(
    tmp_path: Path, settings: Settings, **overrides: Any
) -> Iterator[TestClient]:
    """The app on the test's database with NETCALC_SIGNUP=closed."""
    closed = make_settings(
        tmp_path, database_url=settings.database_url, signup="closed", **overrides
    )
    with TestClient(create_app(closed)) as client:
        yield client


def assert_sign_up_is_closed(response: httpx.Response) -> None:
    """The console's error page saying sign-up is closed, without its form."""
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "<title>Sign-up is closed · netcalc console</title>" in response.text
    assert "netcalc accounts create EMAIL" in response.text
    assert "/signup" not in response.text


def test_closed_sign_up_page_answers_403(
    tmp_path: Path, settings: Settings, console: Console
) -> None:
    """With sign-up closed, its page says so and how accounts are made."""
    with closed_console(tmp_path, settings) as client:
        assert_sign_up_is_closed(client.get("/signup"))


def test_closed_sign_up_creates_nothing_and_counts_nothing(
    tmp_path: Path, settings: Settings, console: Console
) -> None:
    """A sign-up posted while closed makes no account, writes no audit event
    and does not count against the address's sign-up limit."""
    values = {"email": "x@example.com", "password": PASSWORD}
    with closed_console(tmp_path, settings, signups_per_address="1/hour") as client:
        for _ in range(2):
            response = post_form(
                client, "/signup", values | {"password_again": PASSWORD}, "/signin"
            )
            assert_sign_up_is_closed(response)
        assert client.get("/credentials", follow_redirects=False).status_code == 303
    assert console.run(service.count_accounts) == 0
    assert console.run(lambda e: list_events(e, limit=MAX_LIMIT)) == []


def test_sign_in_links_to_sign_up_only_when_open(
    tmp_path: Path, settings: Settings, client: TestClient, console: Console
) -> None:
    """The sign-in page offers sign-up when it is open and not when closed,
    where an account made by an operator still signs in."""
    assert 'href="/signup"' in client.get("/signin").text
    console.account("made@example.com")
    with closed_console(tmp_path, settings) as closed:
        page = closed.get("/signin")
        assert page.status_code == 200
        assert "/signup" not in page.text
        refused = sign_in(closed, "made@example.com", "not the password")
        assert refused.status_code == 400
        assert "/signup" not in refused.text
        assert sign_in(closed, "made@example.com", PASSWORD).status_code == 303


def test_failures_counted_during_the_check_refuse_the_right_password(
    client: TestClient, console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wrong guesses sent together with the right password and counted while
    it was being checked refuse it, so a burst cannot slip it through."""
    console.account("burst@example.com")
    runtime: Runtime = client.app.runtime  # type: ignore[attr-defined]
    check = visitors.verify_password

    def check_while_the_burst_fails(stored: str | None, password: str) -> bool:
        for _ in range(5):
            from_thread.run(
                runtime.console.throttle.failed, "burst@example.com", "testclient"
            )
        return check(stored, password)

    monkeypatch.setattr(visitors, "verify_password", check_while_the_burst_fails)
    response = sign_in(client, "burst@example.com", PASSWORD)
    assert response.status_code == 429
    assert "Too many failed attempts" in response.text


def test_disabled_while_the_password_is_checked_opens_no_session(
    client: TestClient, console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An account disabled during its sign-in gets no session, so none comes
    back when it is enabled again."""
    account_id = console.account("racing@example.com")
    check = visitors.verify_password

    def check_while_disabled(stored: str | None, password: str) -> bool:
        console.run(lambda e: service.set_disabled(e, account_id, True))
        return check(stored, password)

    monkeypatch.setattr(visitors, "verify_password", check_while_disabled)
    response = sign_in(client, "racing@example.com", PASSWORD)
    assert response.status_code == 400
    assert "This account is disabled." in response.text
    console.run(lambda e: service.set_disabled(e, account_id, False))
    assert client.get("/credentials", follow_redirects=False).status_code == 303

    async def sessions_of_the_account(engine: AsyncEngine) -> int:
        query = select(func.count()).where(sessions.c.account_id == account_id)
        async with engine.connect() as connection:
            return int(await connection.scalar(query) or 0)

    assert console.run(sessions_of_the_account) == 0


def test_a_password_set_while_the_old_one_is_checked_opens_no_session(
    client: TestClient, console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sign-in whose password was replaced while it was being checked gets
    no session: the new password's setting ended the sessions before it."""
    account_id = console.account("changing@example.com")
    check = visitors.verify_password

    def check_while_replaced(stored: str | None, password: str) -> bool:
        console.run(lambda e: service.set_password(e, account_id, "quite another one"))
        return check(stored, password)

    monkeypatch.setattr(visitors, "verify_password", check_while_replaced)
    response = sign_in(client, "changing@example.com", PASSWORD)
    assert response.status_code == 400
    assert "The password has just changed: sign in again." in response.text
    assert client.get("/credentials", follow_redirects=False).status_code == 303


def test_a_new_password_ends_the_accounts_sessions(
    client: TestClient, console: Console
) -> None:
    """Setting an account's password signs out its sessions, not another
    account's, and from then on only the new password signs in."""
    account_id = console.account("reset@example.com")
    assert sign_in(client, "reset@example.com", PASSWORD).status_code == 303
    with other_browser(client) as other:
        sign_up(other, "bystander@example.com")
        bystander = dict(other.cookies)

    new_password = "a new and longer one"
    console.run(lambda e: service.set_password(e, account_id, new_password))
    signed_out = client.get("/credentials", follow_redirects=False)
    assert signed_out.status_code == 303
    assert signed_out.headers["location"] == "/signin"
    with other_browser(client, bystander) as other:
        assert other.get("/credentials", follow_redirects=False).status_code == 200

    old = sign_in(client, "reset@example.com", PASSWORD)
    assert old.status_code == 400
    assert WRONG in old.text
    assert sign_in(client, "reset@example.com", new_password).status_code == 303
    assert client.get("/credentials", follow_redirects=False).status_code == 200


def test_sign_in_failures_do_not_throttle_tokens(
    tmp_path: Path, settings: Settings, console: Console
) -> None:
    """Sign-in and token failures are counted apart, even at the same limits."""
    limits = {
        "failed_signin_per_address": "3/minute",
        "failed_auth_per_address": "3/minute",
    }
    tight = make_settings(tmp_path, database_url=settings.database_url, **limits)
    with TestClient(create_app(tight)) as client:
        for number in range(3):
            wrong = sign_in(client, f"guess{number}@example.com", "guess guess!")
            assert wrong.status_code == 400
        assert sign_in(client, "next@example.com", PASSWORD).status_code == 429
        token = token_for(client, "nci_" + "0" * 32, "ncs_unknown")
    assert token.status_code == 401


def test_disabled_account_cannot_sign_in(client: TestClient, console: Console) -> None:
    """The right password of a disabled account opens no session."""
    account_id = console.account("off@example.com")

    async def disable(engine: AsyncEngine) -> None:
        async with engine.begin() as connection:
            await connection.execute(
                update(accounts)
                .where(accounts.c.id == account_id)
                .values(disabled=True)
            )

    console.run(disable)
    response = sign_in(client, "off@example.com", PASSWORD)
    assert response.status_code == 400
    assert "disabled" in response.text


def test_disabling_ends_the_sessions_for_good(
    client: TestClient, console: Console
) -> None:
    """A session open when its account is disabled does not come back when
    the account is enabled again."""
    account_id = console.account("paused@example.com")
    assert sign_in(client, "paused@example.com", PASSWORD).status_code == 303
    assert client.get("/credentials", follow_redirects=False).status_code == 200
    console.run(lambda e: service.set_disabled(e, account_id, True))
    console.run(lambda e: service.set_disabled(e, account_id, False))
    again = client.get("/credentials", follow_redirects=False)
    assert again.status_code == 303
    assert again.headers["location"] == "/signin"
    signed_out = client.post("/signout", follow_redirects=False)
    assert signed_out.status_code == 303
    assert signed_out.headers["location"] == "/signin"
    assert 'netcalc_session=""' in signed_out.headers["set-cookie"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"password": "short", "password_again": "short"}, "at least 10"),
        ({"password_again": "something else"}, "not the same"),
        ({"email": "not-an-email"}, "is not an email address"),
        ({"email": "a\x00b@example.com"}, "is not an email address"),
        ({"email": "\x1b[2Jevil\x07@example.com"}, "is not an email address"),
        ({"email": "a\x85b@example.com"}, "is not an email address"),
        ({"email": "ev\u202eli@example.com"}, "is not an email address"),
        ({"email": "zero\u200bwidth@example.com"}, "is not an email address"),
        ({"email": "a@example..com"}, "is not an email address"),
        ({"email": ".a.@example.com"}, "is not an email address"),
        ({"email": "a" * 65 + "@example.com"}, "is not an email address"),
        ({"email": "a@" + ".".join(["b" * 63] * 4)}, "is not an email address"),
    ],
    ids=[
        "short-password",
        "mismatch",
        "bad-email",
        "nul",
        "escapes",
        "c1-control",
        "right-to-left-override",
        "zero-width-space",
        "empty-domain-label",
        "dots-at-the-ends",
        "long-local-part",
        "over-254",
    ],
)
def test_sign_up_refuses_bad_input(
    client: TestClient, fields: dict[str, str], message: str
) -> None:
    """Sign-up explains what is wrong and keeps the visitor signed out."""
    values = {
        "email": "x@example.com",
        "password": PASSWORD,
        "password_again": PASSWORD,
    }
    response = post_form(client, "/signup", values | fields, "/signup")
    assert response.status_code == 400
    assert message in response.text
    assert client.get("/credentials", follow_redirects=False).status_code == 303


def test_sign_up_refuses_a_taken_email(client: TestClient, console: Console) -> None:
    """An email that has an account cannot sign up again."""
    console.account("taken@example.com")
    values = {
        "email": "taken@example.com",
        "password": PASSWORD,
        "password_again": PASSWORD,
    }
    response = post_form(client, "/signup", values, "/signup")
    assert response.status_code == 400
    assert "already exists" in response.text


@pytest.mark.parametrize(
    ("path", "signed_in"),
    [
        ("/signin", False),
        ("/signup", False),
        ("/signout", True),
        ("/credentials/new", True),
    ],
)
def test_form_without_csrf_token_is_refused(
    client: TestClient, path: str, signed_in: bool
) -> None:
    """A post without the session's CSRF token answers 403 and changes nothing."""
    if signed_in:
        sign_up(client, "csrf@example.com")
    else:
        client.get("/signin")
    fields = {"email": "csrf@example.com", "password": PASSWORD, "name": "x"}
    response = client.post(path, data=fields, follow_redirects=False)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "This form cannot be used" in response.text


def test_csrf_token_of_another_session_is_refused(client: TestClient) -> None:
    """A token taken from someone else's session does not pass."""
    sign_up(client, "victim@example.com")
    first = generate(client)
    client_id, secret = issued(first)
    with other_browser(client) as attacker:
        foreign = csrf_of(attacker.get("/signin"))
    response = client.post(
        f"/credentials/{client_id}/revoke",
        data={"csrf_token": foreign},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert token_for(client, client_id, secret).status_code == 200


def test_cross_site_json_post_is_refused(client: TestClient) -> None:
    """A post that is not a url-encoded form is refused as cross-site."""
    sign_up(client, "json@example.com")
    token = csrf_of(client.get("/credentials/new"))
    response = client.post("/credentials/new", json={"csrf_token": token, "name": "x"})
    assert response.status_code == 403


def test_generate_shows_the_secret_once(client: TestClient) -> None:
    """The secret is on the generate answer, works at once, and is never listed."""
    sign_up(client, "gen@example.com")
    page = generate(client, name="nightly backup")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    client_id, secret = issued(page)
    assert "/api/auth/token" in page.text
    assert f"&#34;client_secret&#34;:&#34;{secret}&#34;" in page.text
    token = token_for(client, client_id, secret)
    assert token.status_code == 200
    listing = client.get("/credentials")
    assert listing.status_code == 200
    assert client_id in listing.text
    assert "nightly backup" in listing.text
    assert secret not in listing.text


def test_generate_with_scope_and_lifetime(client: TestClient) -> None:
    """Chosen scopes and lifetime reach the tokens the credentials get."""
    sign_up(client, "scoped@example.com")
    page = generate(client, scope="subnets:read", token_ttl="900")
    assert page.status_code == 200
    token = token_for(client, *issued(page))
    assert token.status_code == 200
    assert token.json()["token"]["expires_in"] == 900
    listing = client.get("/credentials")
    assert "15\u00a0min" in listing.text
    assert "subnets:read" in listing.text


def test_lifetime_with_leading_zeros_is_its_number(client: TestClient) -> None:
    """A lifetime typed as 0000900 is 900 seconds, not a number too long."""
    sign_up(client, "zeros@example.com")
    page = generate(client, token_ttl="0000900")
    assert page.status_code == 200
    token = token_for(client, *issued(page))
    assert token.json()["token"]["expires_in"] == 900


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"token_ttl": "0"}, "1 to 86400"),
        ({"token_ttl": "86401"}, "1 to 86400"),
        ({"token_ttl": "9" * 5000}, "1 to 86400"),
        ({"token_ttl": "soon"}, "whole number"),
        ({"name": "  "}, "1 to 100 characters"),
        ({"name": "ci\x1b[2J"}, "none of them control characters"),
        ({"name": "ci\u202enoitcudorp"}, "none of them control characters"),
        ({"name": "ci\u2028deploy"}, "none of them control characters"),
        ({"name": "ci ncs_" + "A" * 49}, "must not hold a client secret"),
        ({"name": "ncs_" + "A" * 20 + "\u00ad" + "A" * 29}, "must not hold a client"),
        ({"name": "\u200d\u3000"}, "some of them visible"),
        ({"scope": "admin"}, "Unknown scope"),
    ],
    ids=[
        "zero",
        "too-long",
        "huge",
        "words",
        "blank-name",
        "escape-in-name",
        "right-to-left-override",
        "line-separator",
        "secret-in-name",
        "secret-split-by-soft-hyphen",
        "nothing-visible",
        "unknown-scope",
    ],
)
def test_generate_refuses_bad_input(
    client: TestClient, fields: dict[str, str], message: str
) -> None:
    """A bad generate form is shown again with the reason, and nothing is made."""
    sign_up(client, "bad@example.com")
    response = generate(client, **fields)
    assert response.status_code == 400
    assert message in response.text
    assert "No credentials yet" in client.get("/credentials").text


def test_rotate_shows_new_secret_and_old_deadline(client: TestClient) -> None:
    """Rotation shows the new secret once; the old one works until the shown time."""
    sign_up(client, "rotate@example.com")
    client_id, old = issued(generate(client))
    confirm = client.get(f"/credentials/{client_id}/rotate")
    assert confirm.status_code == 200
    assert "24\u00a0h" in confirm.text
    page = rotate(client, client_id)
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    same_id, new = issued(page)
    assert same_id == client_id
    assert new != old
    assert "keeps working until" in page.text
    assert token_for(client, client_id, new).status_code == 200
    assert token_for(client, client_id, old).status_code == 200


def test_rotating_again_says_the_older_secret_stopped(client: TestClient) -> None:
    """A rotation while the secret before is still in its grace says on its
    page that that secret stopped working; a first rotation does not."""
    sign_up(client, "twice@example.com")
    client_id, oldest = issued(generate(client))
    ended = "The secret before it, still in its grace period, stopped working now."
    first = rotate(client, client_id)
    assert first.status_code == 200
    assert ended not in first.text
    second = rotate(client, client_id)
    assert second.status_code == 200
    assert ended in second.text
    assert token_for(client, client_id, oldest).status_code == 401


def test_revoke_asks_first_then_bites_at_once(client: TestClient) -> None:
    """Revoke shows a confirmation; once confirmed, tokens are refused."""
    sign_up(client, "revoke@example.com")
    client_id, secret = issued(generate(client))
    token = token_for(client, client_id, secret).json()["token"]["access_token"]
    assert subnets(client, token).status_code == 200
    confirm = client.get(f"/credentials/{client_id}/revoke")
    assert confirm.status_code == 200
    assert "cannot be undone" in confirm.text
    assert subnets(client, token).status_code == 200
    response = post_form(client, f"/credentials/{client_id}/revoke", {}, "/credentials")
    assert response.status_code == 303
    listing = client.get(response.headers["location"])
    assert "Revoked ci." in listing.text
    assert subnets(client, token).status_code == 401
    refused = token_for(client, client_id, secret)
    assert refused.status_code == 401
    assert refused.json()["status"] == "REVOKED_CREDENTIALS"


def test_revoked_credentials_cannot_be_rotated(client: TestClient) -> None:
    """Rotating revoked credentials is refused with a page that says why."""
    sign_up(client, "gone@example.com")
    client_id, _ = issued(generate(client))
    path = f"/credentials/{client_id}/rotate"
    confirm = client.get(path)
    post_form(client, f"/credentials/{client_id}/revoke", {}, "/credentials")
    response = client.post(path, data=hidden_fields(confirm))
    assert response.status_code == 400
    assert "cannot be rotated" in response.text


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("action", ["rotate", "revoke"])
def test_other_accounts_credentials_are_not_found(
    client: TestClient, method: str, action: str
) -> None:
    """Another account's client id answers 404, and nothing happens to it."""
    sign_up(client, "owner@example.com")
    client_id, secret = issued(generate(client, name="owned"))
    path = f"/credentials/{client_id}/{action}"
    with other_browser(client) as other:
        sign_up(other, "intruder@example.com")
        if method == "GET":
            response = other.get(path)
        else:
            # A well-formed form id of the intruder's own, from another form.
            response = post_form(other, path, {}, "/credentials/new")
        listing = other.get("/credentials")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert client_id not in listing.text
    assert "owned" not in listing.text
    assert token_for(client, client_id, secret).status_code == 200


def test_api_errors_stay_json(client: TestClient) -> None:
    """The console's HTML errors leave the API's JSON errors as they were."""
    response = client.get("/api/account/subnets/abc")
    assert response.status_code == 401
    assert response.json()["status"] == "INVALID_REQUEST"
