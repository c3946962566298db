"""The audit trail: what is recorded, who sees it, and that it holds no secret."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import httpx
import jwt
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.testclient import TestClient

from netcalc.accounts import service
from netcalc.accounts.activity import EVENT_TITLES, NOT_AN_EMAIL
from netcalc.accounts.tables import accounts
from netcalc.audit import (
    CLI_ACTOR,
    MAX_LIMIT,
    Event,
    audit_events,
    list_events,
    purge_events,
)
from netcalc.auth.client_secrets import hash_secret
from netcalc.auth.keys import KeySealer, rotate_keys
from netcalc.db import utcnow
from netcalc.errors import UsageError
from netcalc.schema import metadata
from netcalc.settings import Settings
from tests.support import PASSWORD, Console, ServerProcess, make_settings
from tests.test_console import (
    csrf_of,
    generate,
    issued,
    other_browser,
    post_form,
    rotate,
    sign_in,
    sign_up,
    token_for,
)

HOLDER = "holder@example.com"
WRONG_PASSWORD = "not the password!"


def trail(console: Console, account_id: str | None = None) -> list[dict[str, Any]]:
    """Every event, or one account's, oldest first."""
    newest_first = console.run(
        lambda e: list_events(e, account_id=account_id, limit=MAX_LIMIT)
    )
    return newest_first[::-1]


def account_id_of(console: Console, email: str) -> str:
    """The id of the account with this email."""
    return console.run(lambda e: service.account_id_for(e, email))


def raw_rows(console: Console) -> list[str]:
    """Every stored event as the text of all its columns."""

    async def read(engine: AsyncEngine) -> list[str]:
        async with engine.connect() as connection:
            rows = (await connection.execute(select(audit_events))).all()
        return [" ".join(str(value) for value in row) for row in rows]

    return console.run(read)


def test_console_changes_are_recorded(client: TestClient, console: Console) -> None:
    """Each console change is recorded with its holder, time, address and subject."""
    started = utcnow()
    sign_up(client, HOLDER)
    client_id, _ = issued(generate(client, name="ci", scope="subnets:read"))
    rotate(client, client_id)
    post_form(client, f"/credentials/{client_id}/revoke", {}, "/credentials")
    signed_out = post_form(client, "/signout", {}, "/credentials")
    assert signed_out.status_code == 303
    account_id = account_id_of(console, HOLDER)

    events = trail(console, account_id)
    assert [event["event"] for event in events] == [
        "account.created",
        "credentials.created",
        "credentials.rotated",
        "credentials.revoked",
        "signout",
    ]
    for event in events:
        assert event["actor"] == f"console:{HOLDER}"
        assert event["address"] == "testclient"
        assert event["account_id"] == account_id
        assert started <= datetime.fromisoformat(event["occurred_at"]) <= utcnow()
    assert [event["subject"] for event in events[1:4]] == [client_id] * 3
    assert events[1]["details"] == {
        "name": "ci",
        "scopes": ["subnets:read"],
        "token_ttl": None,
    }
    assert events[2]["details"] == {"grace_seconds": 86400}


def test_sign_ins_are_recorded(client: TestClient, console: Console) -> None:
    """A failed and a successful sign-in land in the account's trail, with reasons."""
    account_id = console.account(HOLDER)
    assert sign_in(client, HOLDER, WRONG_PASSWORD).status_code == 400
    assert sign_in(client, HOLDER, PASSWORD).status_code == 303

    created, failed, succeeded = trail(console, account_id)
    assert (created["event"], created["actor"], created["address"]) == (
        "account.created",
        "cli",
        None,
    )
    assert failed["event"] == "signin.failed"
    assert failed["details"] == {"reason": "wrong password"}
    assert succeeded["event"] == "signin.succeeded"
    for event in (failed, succeeded):
        assert event["subject"] == HOLDER
        assert event["address"] == "testclient"
    # Typing an email into the form proves nothing about who did it.
    assert failed["actor"] == "console:visitor"
    assert succeeded["actor"] == f"console:{HOLDER}"


@pytest.mark.parametrize(
    ("typed", "subject"),
    [
        ("Nobody@Example.com", "nobody@example.com"),
        (PASSWORD, NOT_AN_EMAIL),
        ("a" * 64 + "@" + "b" * 63 + "." + "b" * 63 + "." + "c" * 61, None),
    ],
    ids=["unknown-email", "password-in-email-field", "longest-email"],
)
def test_unknown_email_is_recorded_for_no_account(
    client: TestClient, console: Console, typed: str, subject: str | None
) -> None:
    """A failed sign-in for no account has no account id, and never the password."""
    response = sign_in(client, typed, PASSWORD)
    assert response.status_code == 400

    (event,) = trail(console)
    assert event["event"] == "signin.failed"
    assert event["account_id"] is None
    assert event["subject"] == (subject or typed)
    assert event["details"] == {"reason": "unknown email"}
    assert event["actor"] == "console:visitor"
    assert all(PASSWORD not in row for row in raw_rows(console))


def test_a_state_the_account_has_already_changes_nothing(console: Console) -> None:
    """Disabling twice, or enabling an enabled account, records no event."""
    account_id = console.account(HOLDER)
    changes = [
        console.run(
            lambda e, disabled=disabled: service.set_disabled(e, account_id, disabled)
        )
        for disabled in (False, True, True, False, False)
    ]
    assert changes == [False, True, False, True, False]
    events = [event["event"] for event in trail(console, account_id)]
    assert events == ["account.created", "account.disabled", "account.enabled"]


def test_disabled_account_is_recorded(client: TestClient, console: Console) -> None:
    """Disabling, enabling and a refused sign-in while disabled are all recorded."""
    account_id = console.account(HOLDER)
    console.run(lambda e: service.set_disabled(e, account_id, True))
    assert sign_in(client, HOLDER, PASSWORD).status_code == 400
    console.run(lambda e: service.set_disabled(e, account_id, False))

    events = trail(console, account_id)
    assert [event["event"] for event in events] == [
        "account.created",
        "account.disabled",
        "signin.failed",
        "account.enabled",
    ]
    assert events[2]["details"] == {"reason": "disabled"}
    assert {event["subject"] for event in events} == {HOLDER}


def test_cli_changes_are_recorded_as_cli(console: Console) -> None:
    """Changes made outside the console name the CLI and no address."""
    account_id = console.account(HOLDER)
    made = console.credentials(account_id)
    console.rotate(made.client_id, grace=0)
    console.revoke(made.client_id)
    console.revoke(made.client_id)

    events = trail(console, account_id)
    assert [event["event"] for event in events] == [
        "account.created",
        "credentials.created",
        "credentials.rotated",
        "credentials.revoked",
    ]
    assert {(event["actor"], event["address"]) for event in events} == {("cli", None)}


def test_a_new_password_is_recorded_without_it(console: Console) -> None:
    """Setting a password records the account and the actor, and neither the
    password nor its hash."""
    account_id = console.account(HOLDER)
    new_password = "a new and longer one"
    console.run(lambda e: service.set_password(e, account_id, new_password))

    event = trail(console, account_id)[-1]
    assert (event["event"], event["actor"], event["subject"]) == (
        "account.password_set",
        CLI_ACTOR,
        HOLDER,
    )
    assert (event["address"], event["details"]) == (None, {})
    stored = console.run(lambda e: service.find_account(e, HOLDER))
    assert stored is not None
    for row in raw_rows(console):
        assert new_password not in row
        assert stored["password_hash"] not in row


def test_token_revocation_is_recorded(client: TestClient, console: Console) -> None:
    """RFC 7009 revocation is recorded with the calling client as the actor."""
    account_id = console.account(HOLDER)
    made = console.credentials(account_id)
    auth = (made.client_id, made.client_secret)
    granted = client.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=auth
    )
    assert granted.status_code == 200
    token = granted.json()["access_token"]
    revoked = client.post("/oauth2/revoke", data={"token": token}, auth=auth)
    assert revoked.status_code == 200

    claims = jwt.decode(token, options={"verify_signature": False})
    event = trail(console, account_id)[-1]
    assert event["event"] == "token.revoked"
    assert event["actor"] == f"oauth:{made.client_id}"
    assert event["subject"] == claims["jti"]
    assert event["address"] == "testclient"
    assert event["details"] == {"client_id": made.client_id}


def test_key_rotation_is_recorded(settings: Settings, console: Console) -> None:
    """`keys rotate` records the new key id, in no account's trail."""
    sealer = KeySealer(settings.server_secret())
    kid = console.run(lambda e: rotate_keys(e, sealer, "ES256", 3600, switch_after=360))

    (event,) = trail(console)
    assert (event["event"], event["subject"], event["actor"]) == (
        "keys.rotated",
        kid,
        "cli",
    )
    assert event["account_id"] is None
    assert event["details"]["alg"] == "ES256"
    signs_from = datetime.fromisoformat(event["details"]["signs_from"])
    assert abs(signs_from - (utcnow() + timedelta(seconds=360))) < timedelta(minutes=1)


def test_activity_page_needs_a_session(client: TestClient) -> None:
    """A signed-out visitor is sent from the Activity page to sign in."""
    response = client.get("/activity", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/signin"


def test_activity_page_shows_only_the_own_account(client: TestClient) -> None:
    """Each holder sees their own events, newest first, and none of another's."""
    sign_up(client, "owner@example.com")
    client_id, _ = issued(generate(client, name="owned"))
    with other_browser(client) as other:
        sign_up(other, "intruder@example.com")
        theirs = other.get("/activity")
    mine = client.get("/activity")

    assert mine.status_code == 200
    assert mine.headers["cache-control"] == "no-store"
    assert client_id in mine.text
    assert "name: owned" in mine.text
    assert mine.text.index("Credentials generated") < mine.text.index("Account created")
    assert theirs.status_code == 200
    assert "intruder@example.com" in theirs.text
    assert client_id not in theirs.text
    assert "owner@example.com" not in theirs.text
    assert "Credentials generated" not in theirs.text


def test_activity_is_linked_from_the_header(client: TestClient) -> None:
    """Signed-in pages link to the Activity page."""
    sign_up(client, HOLDER)
    page = client.get("/credentials")
    assert page.status_code == 200
    assert 'href="/activity"' in page.text


def test_no_event_holds_a_secret(
    client: TestClient, settings: Settings, console: Console
) -> None:
    """After a whole journey no stored event holds a secret, token, password or hash."""
    sign_up(client, HOLDER)
    client_id, first = issued(generate(client))
    token = token_for(client, client_id, first).json()["token"]["access_token"]
    auth = (client_id, first)
    revoked = client.post("/oauth2/revoke", data={"token": token}, auth=auth)
    assert revoked.status_code == 200
    rotated = rotate(client, client_id)
    _, second = issued(rotated)
    post_form(client, f"/credentials/{client_id}/revoke", {}, "/credentials")
    post_form(client, "/signout", {}, "/credentials")
    sign_in(client, HOLDER, WRONG_PASSWORD)
    sign_in(client, PASSWORD, PASSWORD)
    sign_in(client, HOLDER, PASSWORD)
    account_id = account_id_of(console, HOLDER)
    console.run(lambda e: service.set_disabled(e, account_id, True))
    sealer = KeySealer(settings.server_secret())
    console.run(lambda e: rotate_keys(e, sealer, "ES256", 3600))

    rows = raw_rows(console)
    assert len(rows) == 11
    password_hash = console.run(lambda e: stored_password_hash(e, account_id))
    forbidden = [
        "ncs_",
        "eyJ",
        PASSWORD,
        WRONG_PASSWORD,
        password_hash,
        "$argon2",
        hash_secret(console.hash_key, first),
        hash_secret(console.hash_key, second),
    ]
    for row in rows:
        for text in forbidden:
            assert text not in row


async def stored_password_hash(engine: AsyncEngine, account_id: str) -> str:
    """The argon2id hash stored for an account."""
    query = select(accounts.c.password_hash).where(accounts.c.id == account_id)
    async with engine.connect() as connection:
        return str(await connection.scalar(query))


@pytest.mark.parametrize("limit", [0, MAX_LIMIT + 1], ids=["none", "too-many"])
def test_listing_limit_is_bounded(console: Console, limit: int) -> None:
    """A listing of no events, or of too many at once, is refused."""
    with pytest.raises(UsageError, match="1 to 10000"):
        console.run(lambda e: list_events(e, limit=limit))


def test_every_event_has_a_title() -> None:
    """The Activity page has a name for every kind of event."""
    assert set(EVENT_TITLES) == set(get_args(Event))


def backdated(console: Console, *days_ago: int) -> None:
    """Store one event for each age given, in days."""

    async def store(engine: AsyncEngine) -> None:
        async with engine.begin() as connection:
            for days in days_ago:
                await connection.execute(
                    audit_events.insert().values(
                        occurred_at=utcnow() - timedelta(days=days),
                        event="signout",
                        actor=CLI_ACTOR,
                        subject=f"{days} days ago",
                    )
                )

    console.run(store)


def subjects(console: Console) -> list[str]:
    return [event["subject"] for event in trail(console)]


def test_purge_deletes_only_events_past_retention(console: Console) -> None:
    """Older events go, oldest first and a batch at a time; newer ones stay."""
    backdated(console, 400, 366, 367, 364, 1)
    purged = console.run(lambda e: purge_events(e, timedelta(days=365), batch=2))
    assert purged == 2
    assert subjects(console) == ["366 days ago", "364 days ago", "1 days ago"]
    assert console.run(lambda e: purge_events(e, timedelta(days=365))) == 1
    assert console.run(lambda e: purge_events(e, timedelta(days=365))) == 0
    assert subjects(console) == ["364 days ago", "1 days ago"]


@pytest.mark.server
def test_server_purges_the_trail_past_retention(tmp_path: Path) -> None:
    """A running server deletes events older than NETCALC_AUDIT_RETENTION_DAYS
    and keeps the rest."""
    server = ServerProcess(
        tmp_path / "retention",
        NETCALC_AUDIT_RETENTION_DAYS="30",
        NETCALC_KEY_REFRESH_SECONDS="0.2",
    )
    server.start()
    try:
        console = Console(make_settings(server.folder))
        backdated(console, 31, 29)
        deadline = time.monotonic() + 10
        while "31 days ago" in subjects(console) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert subjects(console) == ["29 days ago"]
    finally:
        server.stop()


def test_migrations_match_the_tables(console: Console) -> None:
    """The migrated database has exactly the tables and indexes the code declares."""

    async def differences(engine: AsyncEngine) -> list[Any]:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync), metadata
                )
            )

    assert console.run(differences) == []


@pytest.mark.server
def test_cli_lists_the_trail(server: ServerProcess) -> None:
    """`netcalc audit` lists CLI and HTTP events, newest first, as JSON or a table."""
    made = server.cli("accounts", "create", HOLDER, "--password-stdin", stdin=PASSWORD)
    assert made.returncode == 0, made.stderr
    created = server.cli("credentials", "create", "--account", HOLDER, "--json")
    assert created.returncode == 0, created.stderr
    secret = json.loads(created.stdout)["client_secret"]
    client_id = json.loads(created.stdout)["client_id"]
    assert server.cli("credentials", "revoke", client_id).returncode == 0
    again = server.cli("credentials", "revoke", client_id)
    assert again.returncode == 0
    assert "revoked already" in again.stdout
    with httpx.Client(base_url=server.url) as browser:
        token = csrf_of(browser.get("/signin"))
        form = {"csrf_token": token, "email": HOLDER, "password": WRONG_PASSWORD}
        assert browser.post("/signin", data=form).status_code == 400
    assert server.cli("keys", "rotate").returncode == 0

    listed = server.cli("audit", "--json")
    assert listed.returncode == 0, listed.stderr
    events = json.loads(listed.stdout)
    assert [event["event"] for event in events] == [
        "keys.rotated",
        "signin.failed",
        "credentials.revoked",
        "credentials.created",
        "account.created",
    ]
    assert events[1]["address"] == "127.0.0.1"
    assert {event["actor"] for event in events[2:]} == {"cli"}
    times = [datetime.fromisoformat(event["occurred_at"]) for event in events]
    assert times == sorted(times, reverse=True)
    assert all(when.utcoffset() == timedelta(0) for when in times)

    mine = json.loads(server.cli("audit", "--account", HOLDER, "--json").stdout)
    assert [event["event"] for event in mine] == [e["event"] for e in events[1:]]
    newest = json.loads(server.cli("audit", "--limit", "2", "--json").stdout)
    assert newest == events[:2]
    table = server.cli("audit")
    assert table.returncode == 0, table.stderr
    assert table.stdout.split()[:5] == ["TIME", "EVENT", "ACTOR", "SUBJECT", "ADDRESS"]
    assert client_id in table.stdout
    for output in (listed.stdout, table.stdout):
        assert secret not in output and "ncs_" not in output


@pytest.mark.server
def test_cli_names_an_unknown_account(server: ServerProcess) -> None:
    """`netcalc audit --account` with an unknown email fails with a plain message."""
    result = server.cli("audit", "--account", "nobody@example.com")
    assert result.returncode == 1
    assert "No account has the email 'nobody@example.com'" in result.stderr
