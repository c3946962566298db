"""Fixtures: a migrated SQLite file per test, the app in process, and a CLI."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from netcalc.app import create_app
from netcalc.db import create_engine
from netcalc.migrate import upgrade
from netcalc.settings import Settings
from tests.support import Console, ServerProcess, make_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a fresh database file in this test's folder."""
    return make_settings(tmp_path)


@pytest.fixture
def console(settings: Settings) -> Console:
    """Account management against the test's database, as the CLI does it."""

    async def migrate() -> None:
        engine = create_engine(settings.database_url)
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(migrate())
    return Console(settings)


@pytest.fixture
def client(settings: Settings, console: Console) -> Iterator[TestClient]:
    """The app in process, started through its lifespan."""
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A real `netcalc serve` subprocess on a free loopback port."""
    process = ServerProcess(tmp_path / "server")
    process.start()
    try:
        yield process
    finally:
        process.stop()
