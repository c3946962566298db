"""The `netcalc` command run in process: its help, `migrate` and
`accounts list`."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator

import typer.main
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from typer.testing import CliRunner

from netcalc.accounts import service
from netcalc.cli import app
from netcalc.db import create_engine, sqlite_file
from netcalc.settings import Settings
from tests.support import TEST_SECRET_KEY, Console

PLACEHOLDER = re.compile(r"\{[A-Z_]+\}|<[a-z][^>]*>")
"""Typer's own way of naming a value, `{CLIENT_ID}` or `<list[str]>`."""


def _walk(command: object, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    yield path
    for name, child in getattr(command, "commands", {}).items():
        yield from _walk(child, (*path, name))


COMMANDS = list(_walk(typer.main.get_command(app), ()))
"""Every command and command group, as typed after `netcalc`."""


def help_of(*path: str) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], prog_name="netcalc")
    assert result.exit_code == 0, result.output
    return result.output


def test_no_help_names_a_value_in_typers_way() -> None:
    """No command's help wraps a value's name in braces or labels it with a
    Python type."""
    marked = {" ".join(path): PLACEHOLDER.findall(help_of(*path)) for path in COMMANDS}
    assert {command: found for command, found in marked.items() if found} == {}


def test_help_names_arguments_and_options_as_typed() -> None:
    """The usage line names an argument bare, and each option names its value."""
    revoke = help_of("credentials", "revoke")
    assert "Usage: netcalc credentials revoke [OPTIONS] CLIENT_ID\n" in revoke
    assert re.search(r"^  CLIENT_ID  The credentials' client id\.", revoke, re.M)
    create = help_of("credentials", "create")
    for option in ("--account EMAIL", "--scope SCOPE", "--ttl SECONDS"):
        assert f"  {option}  " in create


def migrations(connection: Connection | None = None) -> Config:
    """Alembic's configuration of netcalc's migrations, on `connection`."""
    config = Config()
    config.set_main_option("script_location", "netcalc:migrations")
    config.attributes["connection"] = connection
    return config


HEAD = ScriptDirectory.from_config(migrations()).get_current_head()
"""The newest schema revision."""


def netcalc(database_url: str, *args: str) -> str:
    """What the command prints on stdout, run on this database."""
    env = {"NETCALC_DATABASE_URL": database_url, "NETCALC_SECRET_KEY": TEST_SECRET_KEY}
    result = CliRunner().invoke(app, args, env=env, prog_name="netcalc")
    assert result.exit_code == 0, result.output
    return result.stdout


def migrate(database_url: str) -> str:
    """What `netcalc migrate` prints for this database."""
    return netcalc(database_url, "migrate")


def test_migrate_says_it_created_the_schema(database_url: str) -> None:
    """On an empty database `migrate` says it created the schema, naming
    the SQLite file it made, and then that there is nothing left to do."""
    path = sqlite_file(database_url)
    assert migrate(database_url) == (
        f"Created the database at {path}, schema revision {HEAD}.\n"
        if path is not None
        else f"Created the database schema (revision {HEAD}).\n"
    )
    assert migrate(database_url) == (
        f"The database is up to date (schema revision {HEAD}).\n"
    )


def test_migrate_names_the_revisions_it_applied(database_url: str) -> None:
    """On a database one migration behind, `migrate` says from which revision
    to which it brought the schema."""
    older = ScriptDirectory.from_config(migrations()).get_revision(HEAD).down_revision
    assert isinstance(older, str)

    async def migrate_to_older() -> None:
        engine = create_engine(database_url)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(
                    lambda sync: command.upgrade(migrations(sync), older)
                )
        finally:
            await engine.dispose()

    asyncio.run(migrate_to_older())
    assert migrate(database_url) == (
        f"Migrated the database schema from revision {older} to {HEAD}.\n"
    )


def test_accounts_list_tells_state_and_active_credentials(
    settings: Settings, console: Console
) -> None:
    """`accounts list` shows every account, oldest first, whether it is
    disabled and how many credentials it has that are not revoked, as a
    table and as JSON, with no password hash."""
    busy = console.account("busy@example.com")
    for _ in range(2):
        console.credentials(busy)
    console.revoke(console.credentials(busy).client_id)
    idle = console.account("idle@example.com")
    console.run(lambda e: service.set_disabled(e, idle, True))

    listed = json.loads(netcalc(settings.database_url, "accounts", "list", "--json"))
    assert [
        (row["email"], row["disabled"], row["active_credentials"]) for row in listed
    ] == [("busy@example.com", False, 2), ("idle@example.com", True, 0)]
    assert set(listed[0]) == {"email", "created_at", "disabled", "active_credentials"}

    table = netcalc(settings.database_url, "accounts", "list").splitlines()
    assert table[0].split() == ["EMAIL", "STATUS", "ACTIVE", "CREDENTIALS", "CREATED"]
    assert [line.split()[:3] for line in table[1:]] == [
        ["busy@example.com", "enabled", "2"],
        ["idle@example.com", "disabled", "0"],
    ]
    assert table[1].split()[3] == listed[0]["created_at"][:19]
    printed = "\n".join(table) + json.dumps(listed)
    for email in ("busy@example.com", "idle@example.com"):
        stored = console.run(lambda e, email=email: service.find_account(e, email))
        assert stored is not None
        assert stored["password_hash"] not in printed
