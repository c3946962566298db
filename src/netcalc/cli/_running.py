"""What every command runs on: settings and a migrated database, with
netcalc's errors and a database that cannot be used told as messages."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NoReturn, TypeVar

import typer
from sqlalchemy import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from netcalc.db import create_engine, sqlite_file
from netcalc.errors import NetcalcError
from netcalc.migrate import upgrade
from netcalc.settings import Settings, load_settings

T = TypeVar("T")


def fail(message: str) -> NoReturn:
    """End the command with `message` on stderr and exit status 1."""
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(1)


def read_settings() -> Settings:
    """The settings, or the command ends naming what is wrong with them."""
    try:
        return load_settings()
    except NetcalcError as error:
        fail(error.message)


def with_database(
    work: Callable[[Settings, AsyncEngine], Awaitable[T]],
    *,
    creates: bool = False,
    upgrades: bool = True,
) -> T:
    """Run `work` on a migrated database, turning netcalc errors and a
    database that cannot be used into messages.

    Only a command that `creates` the database may start a new SQLite file:
    for any other, a missing file is a mistyped setting, not a fresh start.
    Without `upgrades`, `work` migrates the database itself.
    """
    settings = read_settings()

    async def run() -> T:
        engine = create_engine(settings.database_url)
        try:
            if upgrades:
                await upgrade(engine)
            return await work(settings, engine)
        finally:
            await engine.dispose()

    try:
        if not creates:
            _require_database(settings.database_url)
        return asyncio.run(run())
    except NetcalcError as error:
        fail(error.message)
    except (SQLAlchemyError, OSError) as error:
        fail(_unusable(settings.database_url, error))


def _require_database(url: str) -> None:
    path = sqlite_file(url)
    if path is not None and not path.exists():
        fail(
            f"There is no database at {path}: check NETCALC_DATABASE_URL, or "
            f"run '{invoked_as()} migrate' to create it."
        )


def _unusable(url: str, error: Exception) -> str:
    """Which database failed and why, in one line, with no password."""
    # The query goes too: a driver may take a password from it.
    server = make_url(url).set(password=None, query={})
    where = sqlite_file(url) or server.render_as_string()
    cause = error.orig if isinstance(error, DBAPIError) else error
    reason = " ".join(str(cause).split()) or type(cause).__name__
    return f"The database at {where} cannot be used: {reason}."


def invoked_as() -> str:
    """How to run this CLI again, as the user ran it, so hints can be pasted."""
    program = sys.argv[0]
    return program if Path(program).name == "netcalc" else "python -m netcalc"
