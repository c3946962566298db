"""Single-use console forms: a generate or rotate form sent again changes nothing."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.testclient import TestClient

from netcalc.accounts import service
from netcalc.accounts.sent_forms import SentForm, new_form_id
from netcalc.accounts.sessions import SessionStore
from netcalc.accounts.tables import console_sessions, sent_forms
from netcalc.app import create_app
from netcalc.audit import MAX_LIMIT, list_events
from netcalc.auth.client_secrets import SECRET_PREFIX
from netcalc.db import utcnow
from netcalc.errors import FormAlreadySent
from netcalc.settings import Settings
from tests.support import PASSWORD, Console, make_settings
from tests.test_console import (
    hidden_fields,
    issued,
    other_browser,
    post_form,
    sign_in,
    sign_up,
    token_for,
)

HOLDER = "holder@example.com"
ALREADY_SENT = "This form was already sent"


def credentials_of(console: Console, email: str) -> list[dict[str, Any]]:
    """The credentials of the account with this email, oldest first."""

    async def listed(engine: AsyncEngine) -> list[dict[str, Any]]:
        account_id = await service.account_id_for(engine, email)
        return await service.list_credentials(engine, account_id)

    return console.run(listed)


def events_of(console: Console, email: str) -> list[str]:
    """The kinds of the account's audit events, oldest first."""

    async def listed(engine: AsyncEngine) -> list[str]:
        account_id = await service.account_id_for(engine, email)
        events = await list_events(engine, account_id=account_id, limit=MAX_LIMIT)
        return [event["event"] for event in reversed(events)]

    return console.run(listed)


def sent_form_count(console: Console) -> int:
    """How many sent forms are stored, of every session."""

    async def count(engine: AsyncEngine) -> int:
        query = select(func.count()).select_from(sent_forms)
        async with engine.connect() as connection:
            return int(await connection.scalar(query) or 0)

    return console.run(count)


def generate_form(client: TestClient, name: str = "ci") -> dict[str, str]:
    """The fields of a freshly shown generate form, filled in."""
    return hidden_fields(client.get("/credentials/new")) | {"name": name}


def assert_already_sent(response: httpx.Response) -> None:
    """The answer to a form sent again: 409, a way back, and no secret."""
    assert response.status_code == 409
    assert ALREADY_SENT in response.text
    assert "rotate the credentials to get a new secret" in response.text
    assert 'href="/credentials"' in response.text
    assert SECRET_PREFIX not in response.text
    assert 'id="client-secret"' not in response.text


def test_generate_form_sent_again_makes_no_second_credentials(
    client: TestClient, console: Console
) -> None:
    """A generate form posted twice makes one credentials; the second post
    answers 409 without a secret and records nothing. A post refused for its
    input does not count."""
    sign_up(client, HOLDER)
    form = generate_form(client)
    refused = client.post("/credentials/new", data=form | {"token_ttl": "0"})
    assert refused.status_code == 400
    first = client.post("/credentials/new", data=form)
    assert first.status_code == 200
    client_id, secret = issued(first)

    again = client.post("/credentials/new", data=form)
    assert_already_sent(again)
    assert secret not in again.text
    assert [row["client_id"] for row in credentials_of(console, HOLDER)] == [client_id]
    assert events_of(console, HOLDER) == ["account.created", "credentials.created"]
    assert token_for(client, client_id, secret).status_code == 200


def test_rotate_form_sent_again_rotates_once(
    client: TestClient, console: Console
) -> None:
    """A rotate form posted twice rotates once: the new secret it showed and
    the secret before it both still work."""
    sign_up(client, HOLDER)
    client_id, old = issued(client.post("/credentials/new", data=generate_form(client)))
    path = f"/credentials/{client_id}/rotate"
    form = hidden_fields(client.get(path))
    first = client.post(path, data=form)
    assert first.status_code == 200
    _, new = issued(first)

    again = client.post(path, data=form)
    assert_already_sent(again)
    assert new not in again.text
    assert token_for(client, client_id, new).status_code == 200
    assert token_for(client, client_id, old).status_code == 200
    assert events_of(console, HOLDER).count("credentials.rotated") == 1


BAD_FORM_IDS = {
    "missing": None,
    "empty": "",
    "too-short": "A" * 21,
    "too-long": "A" * 23,
    "not-url-safe": "A" * 21 + "/",
    "not-ascii": "\u00c5" * 22,
}


@pytest.mark.parametrize("form_id", BAD_FORM_IDS.values(), ids=BAD_FORM_IDS.keys())
def test_generate_form_without_a_valid_form_id_is_refused(
    client: TestClient, console: Console, form_id: str | None
) -> None:
    """A generate form with a missing or malformed form id answers 400 and
    makes nothing."""
    sign_up(client, HOLDER)
    form = generate_form(client)
    del form["form_id"]
    if form_id is not None:
        form["form_id"] = form_id
    response = client.post("/credentials/new", data=form)
    assert response.status_code == 400
    assert "no valid form id" in response.text
    assert credentials_of(console, HOLDER) == []
    assert sent_form_count(console) == 0


@pytest.mark.parametrize("form_id", BAD_FORM_IDS.values(), ids=BAD_FORM_IDS.keys())
def test_rotate_form_without_a_valid_form_id_is_refused(
    client: TestClient, console: Console, form_id: str | None
) -> None:
    """A rotate form with a missing or malformed form id answers 400 and
    leaves the secret as it was."""
    sign_up(client, HOLDER)
    client_id, secret = issued(
        client.post("/credentials/new", data=generate_form(client))
    )
    path = f"/credentials/{client_id}/rotate"
    form = hidden_fields(client.get(path))
    del form["form_id"]
    if form_id is not None:
        form["form_id"] = form_id
    response = client.post(path, data=form)
    assert response.status_code == 400
    assert "no valid form id" in response.text
    assert "credentials.rotated" not in events_of(console, HOLDER)
    [row] = credentials_of(console, HOLDER)
    assert row["previous_secret_expires_at"] is None
    assert token_for(client, client_id, secret).status_code == 200


def test_a_form_id_counts_once_in_each_session(
    client: TestClient, console: Console
) -> None:
    """Form ids are per session: one id sent in two sessions acts in each,
    and is refused in each the second time."""
    sign_up(client, HOLDER)
    shared = new_form_id()
    first = client.post("/credentials/new", data=generate_form(client, "first"))
    assert first.status_code == 200

    def send(browser: TestClient, name: str) -> httpx.Response:
        fields = generate_form(browser, name) | {"form_id": shared}
        return browser.post("/credentials/new", data=fields)

    with other_browser(client) as second:
        assert sign_in(second, HOLDER, PASSWORD).status_code == 303
        assert send(second, "second").status_code == 200
        assert_already_sent(send(second, "second again"))
    assert send(client, "third").status_code == 200
    assert_already_sent(send(client, "third again"))
    names = [row["name"] for row in credentials_of(console, HOLDER)]
    assert names == ["first", "second", "third"]


def test_two_posts_of_one_form_at_once_make_one_credentials(
    settings: Settings, console: Console
) -> None:
    """Two posts of one form racing in separate transactions generate once;
    the other is refused as already sent."""
    account_id = console.account(HOLDER)

    async def race(engine: AsyncEngine) -> list[object]:
        store = SessionStore(engine, b"k" * 32)
        opened = await store.start(account_id)
        form = SentForm(opened.session.token_hash, new_form_id())

        async def post() -> service.IssuedSecret:
            return await service.create_credentials(
                engine,
                console.hash_key,
                account_id,
                name="raced",
                max_ttl=settings.token_ttl_max,
                form=form,
            )

        return await asyncio.gather(post(), post(), return_exceptions=True)

    outcomes = console.run(race)
    assert sorted(type(outcome).__name__ for outcome in outcomes) == [
        FormAlreadySent.__name__,
        service.IssuedSecret.__name__,
    ]
    assert len(credentials_of(console, HOLDER)) == 1


def test_sent_forms_end_with_their_session(
    client: TestClient, console: Console
) -> None:
    """Signing out deletes the forms the session sent."""
    sign_up(client, HOLDER)
    assert (
        client.post("/credentials/new", data=generate_form(client)).status_code == 200
    )
    assert sent_form_count(console) == 1
    assert post_form(client, "/signout", {}, "/credentials").status_code == 303
    assert sent_form_count(console) == 0


def test_maintenance_purges_expired_sessions_and_their_forms(
    tmp_path: Path, settings: Settings, console: Console
) -> None:
    """The periodic maintenance deletes expired sessions and the forms they
    sent, while a live session keeps its own."""
    quick = make_settings(
        tmp_path, database_url=settings.database_url, key_refresh_seconds=0.1
    )
    with TestClient(create_app(quick)) as client:
        for email in (HOLDER, "other@example.com"):
            with other_browser(client) as browser:
                sign_up(browser, email)
                sent = browser.post("/credentials/new", data=generate_form(browser))
                assert sent.status_code == 200
        assert sent_form_count(console) == 2

        async def expire_the_holders(engine: AsyncEngine) -> None:
            account_id = await service.account_id_for(engine, HOLDER)
            async with engine.begin() as connection:
                await connection.execute(
                    update(console_sessions)
                    .where(console_sessions.c.account_id == account_id)
                    .values(expires_at=utcnow() - timedelta(seconds=1))
                )

        console.run(expire_the_holders)
        deadline = time.monotonic() + 10
        while sent_form_count(console) > 1 and time.monotonic() < deadline:
            time.sleep(0.1)
    assert sent_form_count(console) == 1
