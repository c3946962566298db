"""Fixtures: a fresh database per test (SQLite and PostgreSQL), the app in
process, throwaway PostgreSQL and Redis servers, and a live server."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from starlette.testclient import TestClient

from netcalc.app import create_app
from netcalc.db import create_engine
from netcalc.migrate import upgrade
from netcalc.settings import Settings
from tests.services import PostgresServer, RedisServer
from tests.support import Console, ServerProcess, make_settings

Service = TypeVar("Service", PostgresServer, RedisServer)


def _throwaway(kind: type[Service], prefix: str) -> Iterator[Service]:
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    server = kind(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server for the whole test session."""
    yield from _throwaway(PostgresServer, "netcalc-postgres-")


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, free to stop and start."""
    yield from _throwaway(PostgresServer, "netcalc-postgres-")


@pytest.fixture(scope="session")
def redis() -> Iterator[RedisServer]:
    """A throwaway Redis server for the whole test session."""
    yield from _throwaway(RedisServer, "netcalc-redis-")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis server of this test's own, free to stop, start and pause."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: an SQLite file, then a PostgreSQL database."""
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        return server.new_database()
    return f"sqlite:///{tmp_path / 'netcalc.db'}"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings for this test's fresh database."""
    return make_settings(tmp_path, database_url=database_url)


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
