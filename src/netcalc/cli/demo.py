"""`demo`: an account and credentials to try the server with."""

from __future__ import annotations

import secrets
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from netcalc.accounts import service
from netcalc.cli._running import invoked_as, with_database
from netcalc.cli.credentials import print_secret
from netcalc.runtime import proven_server_secret, secret_hash_key
from netcalc.settings import Settings

DEMO_EMAIL = "demo@example.com"


def demo(
    port: Annotated[
        int,
        typer.Option(
            metavar="PORT", min=1, max=65535, help="Port shown in the curl line."
        ),
    ] = 8000,
) -> None:
    """Create a demo account and credentials, if there are no accounts yet."""
    password = secrets.token_urlsafe(12)

    async def seed(
        settings: Settings, engine: AsyncEngine
    ) -> service.IssuedSecret | bool:
        """New demo credentials, or, when accounts exist already, whether
        the demo account is one of them."""
        if await service.count_accounts(engine):
            return await service.find_account(engine, DEMO_EMAIL) is not None
        # Proven before anything is made: a wrong secret changes nothing.
        proven = await proven_server_secret(settings, engine)
        hash_key = secret_hash_key(proven.secret)
        account_id = await service.create_account(engine, DEMO_EMAIL, password)
        return await service.create_credentials(
            engine, hash_key, account_id, name="demo", max_ttl=settings.token_ttl_max
        )

    issued = with_database(seed, creates=True)
    if not isinstance(issued, service.IssuedSecret):
        typer.echo(_no_demo_made(demo_exists=issued))
        return
    typer.echo(
        f"Demo account {DEMO_EMAIL}, password {password} "
        f"(sign in at http://127.0.0.1:{port}/), with new credentials:"
    )
    print_secret(issued, as_json=False)
    typer.echo("Get a token with:")
    typer.echo(
        f"  curl -s -X POST http://127.0.0.1:{port}/api/auth/token "
        "-H 'Content-Type: application/json' "
        f'-d \'{{"client_id":"{issued.client_id}",'
        f'"client_secret":"{issued.client_secret}",'
        '"grant_type":"client_credentials"}\''
    )


def _no_demo_made(*, demo_exists: bool) -> str:
    """What to do instead, once accounts exist and `demo` made nothing."""
    cli = invoked_as()
    if not demo_exists:
        return (
            "Accounts exist already, so no demo account was made: "
            f"'{cli} accounts list' shows them, and '{cli} credentials create "
            "--account EMAIL' makes credentials for one."
        )
    return (
        "Accounts exist already, so no demo credentials were made. Secrets are "
        f"shown only once: '{cli} credentials create --account {DEMO_EMAIL}' "
        f"makes new credentials, '{cli} credentials list --account "
        f"{DEMO_EMAIL}' shows the client ids, and '{cli} credentials rotate "
        "CLIENT_ID' gives credentials not revoked a new secret."
    )
