"""`accounts`: create, list, disable and enable accounts, set passwords."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from netcalc.accounts import service
from netcalc.cli._output import JsonFlag, print_columns, print_json
from netcalc.cli._plain import command_group
from netcalc.cli._running import fail, with_database
from netcalc.settings import Settings

app = command_group("Manage accounts.")

Email = Annotated[str, typer.Argument(metavar="EMAIL", help="The account's email.")]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from stdin.")
]


@app.command("create")
def accounts_create(email: Email, password_stdin: PasswordStdin = False) -> None:
    """Create an account."""
    password = _read_password(password_stdin)

    async def create(settings: Settings, engine: AsyncEngine) -> str:
        return await service.create_account(engine, email, password)

    account_id = with_database(create)
    typer.echo(f"Created account {account_id} for {service.email_key(email)}.")


@app.command("password")
def accounts_password(email: Email, password_stdin: PasswordStdin = False) -> None:
    """Set a new password for an account, ending its console sessions."""

    async def change(settings: Settings, engine: AsyncEngine) -> None:
        account_id = await service.account_id_for(engine, email)
        # Asked for once the account is known, so a mistyped email is not
        # found out only after the password has been typed twice.
        password = _read_password(password_stdin)
        await service.set_password(engine, account_id, password)

    with_database(change)
    typer.echo(
        f"Set a new password for {service.email_key(email)}; "
        "every console session of the account has ended."
    )


def _read_password(from_stdin: bool) -> str:
    """A password from the first line of stdin, or typed twice at a prompt
    that does not show it."""
    if not from_stdin:
        typed: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        return typed
    try:
        return sys.stdin.readline().rstrip("\r\n")
    except UnicodeDecodeError:
        fail("The password on stdin is not UTF-8 text.")


@app.command("list")
def accounts_list(as_json: JsonFlag = False) -> None:
    """List every account; passwords and their hashes are never shown."""

    async def listing(settings: Settings, engine: AsyncEngine) -> list[dict[str, Any]]:
        return await service.list_accounts(engine)

    rows = with_database(listing)
    if as_json:
        print_json(rows)
        return
    header = ("EMAIL", "STATUS", "ACTIVE CREDENTIALS", "CREATED")
    cells = [
        (
            row["email"],
            "disabled" if row["disabled"] else "enabled",
            str(row["active_credentials"]),
            row["created_at"][:19],
        )
        for row in rows
    ]
    print_columns(header, cells)


def _set_disabled(email: str, disabled: bool) -> None:
    async def change(settings: Settings, engine: AsyncEngine) -> bool:
        account_id = await service.account_id_for(engine, email)
        return await service.set_disabled(engine, account_id, disabled)

    state = "disabled" if disabled else "enabled"
    stored = service.email_key(email)
    if with_database(change):
        typer.echo(f"{state.capitalize()} {stored}.")
    else:
        typer.echo(f"{stored} was {state} already; nothing changed.")


@app.command("disable")
def accounts_disable(email: Email) -> None:
    """Disable an account: its tokens are refused and no new ones granted."""
    _set_disabled(email, True)


@app.command("enable")
def accounts_enable(email: Email) -> None:
    """Enable a disabled account again."""
    _set_disabled(email, False)
