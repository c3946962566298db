"""New data files, the SQLite database and the generated server secret, and
the folder made to hold each, are their owner's alone."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

from netcalc.db import create_engine
from netcalc.migrate import upgrade
from netcalc.settings import Settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def migrate(database: Path) -> list[int]:
    """Write the schema into `database`; the modes of its write-ahead log and
    shared-memory index, which exist while a connection is open, beside
    the file a link leads to."""

    async def migrate_and_keep_open() -> list[int]:
        engine = create_engine(f"sqlite:///{database}")
        try:
            await upgrade(engine)
            async with engine.connect() as connection:
                await connection.exec_driver_sql("SELECT 1")
                return [
                    mode(Path(f"{database.resolve()}{suffix}"))
                    for suffix in ("-wal", "-shm")
                ]
        finally:
            await engine.dispose()

    return asyncio.run(migrate_and_keep_open())


def test_a_new_database_is_its_owners_alone(tmp_path: Path) -> None:
    """The folder made for a new file is 0700, and the file, its write-ahead
    log and its shared-memory index are 0600 once the schema is written."""
    database = tmp_path / "data" / "netcalc.db"

    log_modes = migrate(database)

    assert mode(database.parent) == 0o700
    assert mode(database) == 0o600
    assert log_modes == [0o600, 0o600]


def test_a_new_database_behind_a_link_is_its_owners_alone(tmp_path: Path) -> None:
    """A database path that is a link to no file yet makes the file where it
    leads, in a new 0700 folder, 0600 with its log and index as any new
    database."""
    database = tmp_path / "data" / "netcalc.db"
    link = tmp_path / "netcalc.db"
    link.symlink_to(database)

    log_modes = migrate(link)

    assert mode(database.parent) == 0o700
    assert mode(database) == 0o600
    assert log_modes == [0o600, 0o600]


def test_an_existing_database_keeps_its_mode(tmp_path: Path) -> None:
    """A file the operator made, with a mode of their choosing, is left so,
    and its write-ahead log and index follow it."""
    database = tmp_path / "netcalc.db"
    database.touch(mode=0o640)
    database.chmod(0o640)

    log_modes = migrate(database)

    assert mode(database) == 0o640
    assert log_modes == [0o640, 0o640]


def test_a_generated_server_secret_is_its_owners_alone(tmp_path: Path) -> None:
    """The key file made when no secret is configured is 0600, in a new 0700
    folder, and is read back on the next start."""
    key_file = tmp_path / "keys" / "secret.key"
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'netcalc.db'}",
        secret_key=None,
        secret_key_file=key_file,
    )

    secret = settings.server_secret()

    assert mode(key_file.parent) == 0o700
    assert mode(key_file) == 0o600
    assert settings.server_secret() == secret
