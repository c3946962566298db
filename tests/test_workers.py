"""A worker's start: one failed for want of the database is told in one
line."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from starlette.types import Message

from netcalc.app import create_app
from netcalc.settings import Settings
from tests.support import free_port, make_settings

DATABASE_PASSWORD = "database-password-not-to-log"


def _start(settings: Settings, fails: type[Exception]) -> list[Message]:
    """What the app sends the server when asked to start, which it cannot:
    the lifespan ends raising `fails`."""
    app = create_app(settings)
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def start() -> None:
        inbox: asyncio.Queue[Message] = asyncio.Queue()
        await inbox.put({"type": "lifespan.startup"})
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        with pytest.raises(fails):
            await app(scope, inbox.get, send)

    asyncio.run(start())
    return sent


def test_a_start_without_the_database_is_told_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An app whose database refuses connections at start tells the server
    it failed with no traceback to log, and logs one line of the cause."""
    url = f"postgresql://netcalc:{DATABASE_PASSWORD}@127.0.0.1:{free_port()}/netcalc"
    with caplog.at_level(logging.ERROR):
        sent = _start(make_settings(tmp_path, database_url=url), OSError)
    assert sent == [{"type": "lifespan.startup.failed", "message": ""}]
    (record,) = caplog.records
    assert record.exc_info is None
    assert record.getMessage().startswith(
        "netcalc could not start serving: the database or Redis cannot be "
        "reached (ConnectionRefusedError: "
    )
    assert DATABASE_PASSWORD not in record.getMessage()
