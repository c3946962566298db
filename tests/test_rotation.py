"""Secret rotation: a new secret at once, the old one for a grace period."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.testclient import TestClient

from netcalc.accounts.service import IssuedSecret
from netcalc.accounts.tables import credentials
from netcalc.db import utcnow
from netcalc.errors import UsageError
from netcalc.settings import MAX_ROTATION_GRACE
from tests.support import Console, make_settings, token_body

URL = "/api/auth/token"


def status(client: TestClient, issued: IssuedSecret) -> str:
    return str(client.post(URL, json=token_body(issued)).json()["status"])


async def end_grace(engine: AsyncEngine) -> None:
    """Move every previous secret's grace into the past."""
    async with engine.begin() as connection:
        await connection.execute(
            update(credentials).values(
                previous_secret_expires_at=utcnow() - timedelta(seconds=1)
            )
        )


@pytest.fixture
def issued(console: Console) -> IssuedSecret:
    """Credentials of a fresh account."""
    return console.credentials(console.account("rotate@example.com"))


def test_both_secrets_work_during_grace(
    client: TestClient, console: Console, issued: IssuedSecret
) -> None:
    """During the grace period the old and the new secret both get tokens."""
    rotated = console.rotate(issued.client_id, grace=3600)
    assert rotated.client_id == issued.client_id
    assert rotated.client_secret != issued.client_secret
    assert rotated.previous_secret_expires_at is not None
    assert status(client, issued) == "OK"
    assert status(client, rotated) == "OK"


def test_old_secret_refused_after_grace(
    client: TestClient, console: Console, issued: IssuedSecret
) -> None:
    """Once the grace period has passed, the old secret is INVALID_CREDENTIALS."""
    rotated = console.rotate(issued.client_id, grace=3600)
    console.run(end_grace)
    assert status(client, issued) == "INVALID_CREDENTIALS"
    assert status(client, rotated) == "OK"


def test_zero_grace_ends_old_secret_at_once(
    client: TestClient, console: Console, issued: IssuedSecret
) -> None:
    """A grace of 0 makes the old secret fail immediately."""
    rotated = console.rotate(issued.client_id, grace=0)
    assert rotated.previous_secret_expires_at is None
    assert status(client, issued) == "INVALID_CREDENTIALS"
    assert status(client, rotated) == "OK"


def test_second_rotation_ends_first_secret(
    client: TestClient, console: Console, issued: IssuedSecret
) -> None:
    """At most two secrets work: rotating twice retires the first at once."""
    second = console.rotate(issued.client_id, grace=3600)
    third = console.rotate(issued.client_id, grace=3600)
    assert status(client, issued) == "INVALID_CREDENTIALS"
    assert status(client, second) == "OK"
    assert status(client, third) == "OK"


def test_rotation_tells_when_it_ended_an_older_grace(
    client: TestClient, console: Console, issued: IssuedSecret
) -> None:
    """A rotation says it ended an older secret's grace exactly when that
    secret still worked: not on a first rotation, nor once the grace is over."""
    first = console.rotate(issued.client_id, grace=3600)
    second = console.rotate(issued.client_id, grace=3600)
    third = console.rotate(issued.client_id, grace=0)
    after_none = console.rotate(issued.client_id, grace=3600)
    console.run(end_grace)
    after_expiry = console.rotate(issued.client_id, grace=3600)
    ended = [
        rotated.ended_grace_of_older_secret
        for rotated in (first, second, third, after_none, after_expiry)
    ]
    assert ended == [False, True, True, False, False]
    assert status(client, first) == "INVALID_CREDENTIALS"
    assert status(client, second) == "INVALID_CREDENTIALS"


def test_revocation_ends_both_secrets(
    client: TestClient, console: Console, issued: IssuedSecret
) -> None:
    """Revoking rotated credentials refuses the old and the new secret."""
    rotated = console.rotate(issued.client_id, grace=3600)
    console.revoke(issued.client_id)
    assert status(client, rotated) == "REVOKED_CREDENTIALS"
    assert status(client, issued) == "INVALID_CREDENTIALS"


def test_revoked_credentials_cannot_rotate(
    console: Console, issued: IssuedSecret
) -> None:
    """Rotation of revoked credentials is refused with a clear message."""
    console.revoke(issued.client_id)
    with pytest.raises(UsageError, match="Revoked credentials cannot be rotated"):
        console.rotate(issued.client_id, grace=10)


@pytest.mark.parametrize("grace", [-1, MAX_ROTATION_GRACE + 1, 99999999999999])
def test_grace_out_of_range_is_refused(
    client: TestClient, console: Console, issued: IssuedSecret, grace: int
) -> None:
    """A negative grace, or one past 30 days, is refused with a clear message,
    and the secret is left as it was."""
    with pytest.raises(UsageError, match="grace period"):
        console.rotate(issued.client_id, grace=grace)
    assert status(client, issued) == "OK"


def test_grace_of_thirty_days_is_taken(console: Console, issued: IssuedSecret) -> None:
    """The longest grace allowed keeps the old secret for 30 days."""
    rotated = console.rotate(issued.client_id, grace=MAX_ROTATION_GRACE)
    assert rotated.previous_secret_expires_at is not None
    left = rotated.previous_secret_expires_at - utcnow()
    assert timedelta(days=29, hours=23) < left <= timedelta(days=30)


def test_setting_a_grace_past_thirty_days_fails_at_start(tmp_path: Path) -> None:
    """NETCALC_ROTATION_GRACE beyond 30 days is refused when settings load."""
    with pytest.raises(ValidationError, match="rotation_grace"):
        make_settings(tmp_path, rotation_grace=MAX_ROTATION_GRACE + 1)
