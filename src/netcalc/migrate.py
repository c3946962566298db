"""Bring the database schema up to date with the Alembic migrations."""

from __future__ import annotations

from dataclasses import dataclass

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass(frozen=True)
class Migration:
    """What an upgrade did: the schema revision before and after it."""

    before: str | None
    """None when the database held no schema at all."""

    after: str | None

    @property
    def created(self) -> bool:
        """True when the upgrade made the whole schema."""
        return self.before is None and self.after is not None

    @property
    def changed(self) -> bool:
        """True when the upgrade applied any migration."""
        return self.before != self.after


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", "netcalc:migrations")
    config.attributes["connection"] = connection
    return config


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection) -> Migration:
    before = _revision(connection)
    command.upgrade(_config(connection), "head")
    return Migration(before, _revision(connection))


async def upgrade(engine: AsyncEngine) -> Migration:
    """Apply every migration not yet applied; safe to call at each start."""
    async with engine.begin() as connection:
        return await connection.run_sync(_upgrade)
