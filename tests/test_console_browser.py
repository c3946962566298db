"""The web console in a real browser: Playwright driving Debian's Chromium.

One `netcalc serve` serves the whole module. Each page visited is saved as
a screenshot under artifacts/screenshots/ (git-ignored) to look at after a
run. Without /usr/bin/chromium the module is skipped, except under CI=true,
where a missing browser fails the run instead of hiding it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shlex
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.support import PASSWORD, ServerProcess

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

pytestmark = pytest.mark.server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
DESKTOP = {"width": 1100, "height": 800}
PHONE = {"width": 390, "height": 844}


def _missing_browser() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is not installed (pip install -e '.[test]')."
    if not CHROMIUM.exists():
        return f"No Chromium at {CHROMIUM} (apt-get install chromium)."
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium for the whole module."""
    missing = _missing_browser()
    if missing and os.environ.get("CI") == "true":
        pytest.fail(missing, pytrace=False)
    if missing:
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server for every browser test of the module."""
    # Every test signs up from the same address.
    process = ServerProcess(
        tmp_path_factory.mktemp("console"), NETCALC_SIGNUPS_PER_ADDRESS="100/hour"
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


def open_context(browser: Browser, live: ServerProcess, **options: object) -> Page:
    """A fresh browser profile (its own cookies) with one page."""
    settings: dict[str, Any] = {"base_url": live.url, "viewport": DESKTOP}
    context: BrowserContext = browser.new_context(**(settings | options))
    context.set_default_timeout(15_000)
    return context.new_page()


@pytest.fixture
def page(browser: Browser, live: ServerProcess) -> Iterator[Page]:
    """A page in a fresh profile, closed after the test."""
    opened = open_context(browser, live)
    yield opened
    opened.context.close()


def shot(page: Page, name: str) -> None:
    """Save the whole page as artifacts/screenshots/NAME.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def new_email(label: str) -> str:
    """An email no other test of the module uses."""
    return f"{label}-{uuid.uuid4().hex[:8]}@example.com"


def sign_up(page: Page, email: str, screenshot: str | None = None) -> None:
    """Create an account through the sign-up form, leaving the page signed in."""
    page.goto("/signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password, again").fill(PASSWORD)
    if screenshot:
        shot(page, screenshot)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url("**/credentials")


def generate(
    page: Page, name: str, scopes: tuple[str, ...] = (), ttl: str = ""
) -> tuple[str, str]:
    """Generate credentials from the list page; returns the id and secret shown."""
    page.goto("/credentials")
    page.get_by_role("link", name="Generate credentials").click()
    page.get_by_label("Name").fill(name)
    for scope in scopes:
        page.get_by_label(scope).check()
    page.get_by_label("Token lifetime").fill(ttl)
    page.get_by_role("button", name="Generate").click()
    page.get_by_role("heading", name="Credentials generated").wait_for()
    client_id = page.locator("#client-id").inner_text()
    return client_id, page.locator("#client-secret").inner_text()


def get_token(live: ServerProcess, client_id: str, secret: str) -> httpx.Response:
    """Ask the live server's token endpoint for a token."""
    return httpx.post(
        live.url + "/api/auth/token",
        json={
            "client_id": client_id,
            "client_secret": secret,
            "grant_type": "client_credentials",
        },
    )


def bearer(token: str) -> dict[str, str]:
    """The Authorization header of a bearer token."""
    return {"Authorization": f"Bearer {token}"}


def run_curl_line(line: str) -> httpx.Response:
    """Send the request a shown `curl -X POST URL -H H -d BODY` line describes."""
    words = shlex.split(line)
    assert words[:4] == ["curl", "-s", "-X", "POST"]
    url, header, body = words[4], words[6], words[8]
    name, _, value = header.partition(": ")
    return httpx.post(url, content=body, headers={name: value})


def test_whole_journey(page: Page, live: ServerProcess) -> None:
    """Sign up, generate, use the secret and token, revoke: the token is refused."""
    page.goto("/")
    page.wait_for_url("**/signin")
    shot(page, "01-sign-in")
    sign_up(page, new_email("journey"), screenshot="02-sign-up")
    shot(page, "03-credentials-empty")

    page.get_by_role("link", name="Generate credentials").click()
    page.get_by_label("Name").fill("nightly backup")
    page.get_by_label("subnets:read").check()
    page.get_by_label("subnets:write").check()
    page.get_by_label("Token lifetime").fill("900")
    shot(page, "04-generate-form")
    page.get_by_role("button", name="Generate").click()
    page.get_by_role("heading", name="Credentials generated").wait_for()
    shot(page, "05-secret-shown-once")
    client_id = page.locator("#client-id").inner_text()
    secret = page.locator("#client-secret").inner_text()
    curl = page.locator("#curl-line").inner_text()
    assert f"{live.url}/api/auth/token" in curl

    answer = run_curl_line(curl)
    assert answer.status_code == 200, answer.text
    assert answer.json()["token"]["expires_in"] == 900
    token = get_token(live, client_id, secret).json()["token"]["access_token"]
    saved = httpx.post(
        live.url + "/api/account/subnets",
        json={"network_address": "10.9.8.7", "subnet_bits": 24, "name": "lab"},
        headers=bearer(token),
    )
    assert saved.status_code == 200, saved.text
    listed = httpx.get(live.url + "/api/account/subnets", headers=bearer(token))
    assert listed.status_code == 200
    assert [s["cidr_notation"] for s in listed.json()["subnets"]] == ["10.9.8.0/24"]

    page.get_by_role("link", name="Done").click()
    row = page.get_by_role("row").filter(has_text=client_id)
    assert "nightly backup" in row.inner_text()
    assert secret not in page.content()
    shot(page, "06-credentials-list")
    row.get_by_role("link", name="Revoke").click()
    page.get_by_role("heading", name="Revoke nightly backup?").wait_for()
    shot(page, "07-revoke-confirm")
    page.get_by_role("button", name="Revoke credentials").click()
    page.get_by_text("Revoked nightly backup.").wait_for()
    shot(page, "08-revoked")

    refused = httpx.get(live.url + "/api/account/subnets", headers=bearer(token))
    assert refused.status_code == 401
    assert refused.json()["status"] == "INVALID_GRANT"
    again = get_token(live, client_id, secret)
    assert again.status_code == 401
    assert again.json()["status"] == "REVOKED_CREDENTIALS"


def test_copy_button_copies_the_secret(browser: Browser, live: ServerProcess) -> None:
    """The copy button puts the exact secret on the clipboard."""
    page = open_context(browser, live)
    page.context.grant_permissions(
        ["clipboard-read", "clipboard-write"], origin=live.url
    )
    sign_up(page, new_email("copy"))
    _, secret = generate(page, "clipboard")
    button = page.get_by_role("button", name="Copy secret")
    button.click()
    page.get_by_role("button", name="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    page.context.close()


def test_rotate_shows_the_new_secret_and_old_deadline(
    page: Page, live: ServerProcess
) -> None:
    """Rotation shows a new secret and until when the old one works; both work."""
    sign_up(page, new_email("rotate"))
    client_id, old = generate(page, "deploy bot")
    page.goto("/credentials")
    row = page.get_by_role("row").filter(has_text=client_id)
    row.get_by_role("link", name="Rotate").click()
    page.get_by_role("heading", name="Rotate the secret of deploy bot?").wait_for()
    shot(page, "09-rotate-confirm")
    page.get_by_role("button", name="Rotate secret").click()
    page.get_by_role("heading", name="Secret rotated").wait_for()
    assert "The old secret of deploy bot keeps working until" in page.content()
    shot(page, "10-rotated-secret")
    new = page.locator("#client-secret").inner_text()
    assert new != old
    assert get_token(live, client_id, new).status_code == 200
    assert get_token(live, client_id, old).status_code == 200


def test_double_click_on_generate_makes_one_credentials(
    page: Page, live: ServerProcess
) -> None:
    """Clicking Generate again while its answer is on the way sends nothing
    more: one credentials, whose secret the page shows."""
    from playwright.sync_api import Error, Route

    email = new_email("double")
    sign_up(page, email)
    page.goto("/credentials/new")
    page.get_by_label("Name").fill("clicked twice")
    # Posts are held back, as by a slow network, until both clicks are in.
    held: list[Route] = []
    page.route("**/credentials/new", lambda route: held.append(route))
    box = page.get_by_role("button", name="Generate").bounding_box()
    assert box is not None
    # The mouse itself, as a user clicks: a locator would wait for the button
    # the first click disabled.
    for _ in range(2):
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_timeout(250)
    for route in held:
        # A post the browser cancelled for a later one cannot go on.
        with contextlib.suppress(Error):
            route.continue_()
    page.get_by_role("heading", name="Credentials generated").wait_for()

    assert len(held) == 1
    client_id = page.locator("#client-id").inner_text()
    secret = page.locator("#client-secret").inner_text()
    assert get_token(live, client_id, secret).status_code == 200
    listed = live.cli("credentials", "list", "--account", email, "--json")
    assert listed.returncode == 0, listed.stderr
    assert [row["client_id"] for row in json.loads(listed.stdout)] == [client_id]


def test_form_without_csrf_token_is_refused(page: Page) -> None:
    """A form posted without its CSRF token is refused with a 403 page."""
    sign_up(page, new_email("csrf"))
    page.goto("/credentials/new")
    page.evaluate("document.querySelector('main input[name=csrf_token]').remove()")
    page.get_by_label("Name").fill("sneaky")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Generate").click()
    assert posted.value.status == 403
    page.get_by_role("heading", name="This form cannot be used").wait_for()
    shot(page, "11-csrf-refused")
    page.goto("/credentials")
    assert "No credentials yet" in page.content()


def test_second_account_cannot_see_or_revoke(
    browser: Browser, page: Page, live: ServerProcess
) -> None:
    """Another account neither lists, opens nor revokes the first one's credentials."""
    sign_up(page, new_email("first"))
    client_id, secret = generate(page, "first's robot")

    intruder = open_context(browser, live)
    sign_up(intruder, new_email("second"))
    assert client_id not in intruder.content()
    opened = intruder.goto(f"/credentials/{client_id}/revoke")
    assert opened is not None
    assert opened.status == 404
    intruder.get_by_role("heading", name="Not found").wait_for()
    shot(intruder, "12-other-account-not-found")

    # A hand-made form with the intruder's own, valid CSRF token.
    intruder.goto("/credentials")
    intruder.evaluate(
        """(action) => {
            const form = document.querySelector("form[action='/signout']");
            form.action = action;
            form.submit();
        }""",
        f"/credentials/{client_id}/revoke",
    )
    intruder.get_by_role("heading", name="Not found").wait_for()
    intruder.context.close()
    assert get_token(live, client_id, secret).status_code == 200


def test_wrong_password_and_unknown_email_read_alike(page: Page) -> None:
    """A wrong password and an unknown email show the same message."""
    email = new_email("known")
    sign_up(page, email)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/signin")
    messages = []
    for address, password in (
        (email, "not the password"),
        (new_email("nobody"), PASSWORD),
    ):
        page.get_by_label("Email").fill(address)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        messages.append(page.get_by_role("alert").inner_text())
    assert messages == ["Email or password is incorrect."] * 2
    shot(page, "13-sign-in-refused")


def test_keyboard_alone_signs_in_and_generates(page: Page, live: ServerProcess) -> None:
    """Sign-in and the generate form work from the keyboard alone."""
    from playwright.sync_api import expect

    email = new_email("keys")
    made = live.cli("accounts", "create", email, "--password-stdin", stdin=PASSWORD)
    assert made.returncode == 0, made.stderr
    page.goto("/signin")
    # The form focuses its first field itself, once the page has rendered.
    expect(page.get_by_label("Email")).to_be_focused()
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/credentials")
    page.get_by_role("link", name="Generate credentials").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/credentials/new")
    expect(page.get_by_label("Name")).to_be_focused()
    page.keyboard.type("typed")
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Credentials generated").wait_for()


def test_console_works_without_javascript(
    browser: Browser, live: ServerProcess
) -> None:
    """With JavaScript off every step works; only the copy buttons stay hidden."""
    page = open_context(browser, live, java_script_enabled=False)
    sign_up(page, new_email("nojs"))
    client_id, secret = generate(page, "plain html")
    assert page.get_by_role("button", name="Copy secret").is_hidden()
    assert get_token(live, client_id, secret).status_code == 200
    page.goto(f"/credentials/{client_id}/revoke")
    page.get_by_role("button", name="Revoke credentials").click()
    page.get_by_text("Revoked plain html.").wait_for()
    assert get_token(live, client_id, secret).status_code == 401
    page.context.close()


def test_phone_width_needs_no_sideways_scrolling(
    browser: Browser, live: ServerProcess
) -> None:
    """At phone width the list and the secret fit the screen."""
    page = open_context(browser, live, viewport=PHONE, device_scale_factor=2)
    sign_up(page, new_email("phone"))
    generate(page, "pocket", scopes=("subnets:read",), ttl="3600")
    shot(page, "14-phone-secret")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.goto("/credentials")
    shot(page, "15-phone-credentials")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.context.close()


def test_pages_load_nothing_the_policy_blocks(page: Page) -> None:
    """No page reports a Content-Security-Policy violation or a script error."""
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    sign_up(page, new_email("csp"))
    generate(page, "policy")
    page.goto("/credentials")
    assert problems == [], json.dumps(problems)


def test_activity_page_lists_the_journey(browser: Browser, live: ServerProcess) -> None:
    """The header's Activity link lists the account's changes, at any width."""
    page = open_context(browser, live)
    sign_up(page, new_email("activity"))
    client_id, secret = generate(page, "audited")
    page.get_by_role("link", name="Activity").click()
    page.wait_for_url("**/activity")
    row = page.get_by_role("row").filter(has_text="Credentials generated")
    assert client_id in row.inner_text()
    assert secret not in page.content()
    shot(page, "16-activity")
    page.set_viewport_size(PHONE)
    shot(page, "17-phone-activity")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.context.close()
