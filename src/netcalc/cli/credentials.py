"""`credentials`: create, list, revoke and rotate client credentials."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from netcalc.accounts import service
from netcalc.cli._output import JsonFlag, print_columns, print_json
from netcalc.cli._plain import command_group
from netcalc.cli._running import with_database
from netcalc.runtime import proven_server_secret, secret_hash_key
from netcalc.settings import Settings

app = command_group("Manage client credentials.")

ClientId = Annotated[
    str, typer.Argument(metavar="CLIENT_ID", help="The credentials' client id.")
]
OwningAccount = Annotated[
    str, typer.Option("--account", metavar="EMAIL", help="The owning account's email.")
]


def print_secret(issued: service.IssuedSecret, as_json: bool) -> None:
    """Print a secret just issued, and what became of any secret before it."""
    if as_json:
        print_json(issued.as_dict())
        return
    typer.echo(f"client_id:     {issued.client_id}")
    typer.echo(f"client_secret: {issued.client_secret}")
    if issued.previous_secret_expires_at:
        until = issued.previous_secret_expires_at.isoformat(timespec="seconds")
        typer.echo(f"The previous secret keeps working until {until}.")
    elif issued.rotated:
        typer.echo("The previous secret no longer works.")
    if issued.ended_grace_of_older_secret:
        typer.echo(
            "The secret before it, still in its grace period, stopped working now."
        )
    typer.echo("Store the secret now: it is shown only this once.", err=True)


@app.command("create")
def credentials_create(
    account: OwningAccount,
    name: Annotated[
        str, typer.Option(metavar="NAME", help="A name to recognise them by.")
    ] = "default",
    scope: Annotated[
        list[str] | None,
        typer.Option(metavar="SCOPE", help="A scope they may use; repeatable."),
    ] = None,
    ttl: Annotated[
        int | None, typer.Option(metavar="SECONDS", help="Token lifetime, seconds.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Generate client credentials and print the secret, once."""

    async def create(settings: Settings, engine: AsyncEngine) -> service.IssuedSecret:
        account_id = await service.account_id_for(engine, account)
        proven = await proven_server_secret(settings, engine)
        return await service.create_credentials(
            engine,
            secret_hash_key(proven.secret),
            account_id,
            name=name,
            scopes=tuple(scope or ()),
            token_ttl=ttl,
            max_ttl=settings.token_ttl_max,
        )

    print_secret(with_database(create), as_json)


@app.command("list")
def credentials_list(
    account: OwningAccount,
    as_json: JsonFlag = False,
) -> None:
    """List an account's credentials; secrets are never shown."""

    async def listing(settings: Settings, engine: AsyncEngine) -> list[dict[str, Any]]:
        account_id = await service.account_id_for(engine, account)
        return await service.list_credentials(engine, account_id)

    rows = with_database(listing)
    if as_json:
        print_json(rows)
        return
    _print_table(rows)


def _print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        "CLIENT ID",
        "NAME",
        "SCOPES",
        "TOKEN TTL",
        "STATUS",
        "OLD SECRET UNTIL",
        "CREATED",
        "LAST USED",
    )
    cells = [
        (
            row["client_id"],
            row["name"],
            " ".join(row["scopes"]) or "(all)",
            f"{row['token_ttl']} s" if row["token_ttl"] else "(default)",
            row["status"],
            (row["previous_secret_expires_at"] or "-")[:19],
            (row["created_at"] or "")[:19],
            (row["last_used_at"] or "never")[:19],
        )
        for row in rows
    ]
    print_columns(header, cells)


@app.command("revoke")
def credentials_revoke(client_id: ClientId) -> None:
    """Revoke credentials; their tokens stop working at once."""

    async def revoke(settings: Settings, engine: AsyncEngine) -> bool:
        return await service.revoke_credentials(engine, client_id)

    if with_database(revoke):
        typer.echo(f"Revoked {client_id}.")
    else:
        typer.echo(f"{client_id} was revoked already; nothing changed.")


@app.command("rotate")
def credentials_rotate(
    client_id: ClientId,
    grace: Annotated[
        int | None,
        typer.Option(
            metavar="SECONDS",
            help="Seconds the old secret keeps working (default 24 h).",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Issue a new secret; the old one works on for a grace period."""

    async def rotate(settings: Settings, engine: AsyncEngine) -> service.IssuedSecret:
        proven = await proven_server_secret(settings, engine)
        return await service.rotate_credentials(
            engine,
            secret_hash_key(proven.secret),
            client_id,
            grace=settings.rotation_grace if grace is None else grace,
        )

    print_secret(with_database(rotate), as_json)
