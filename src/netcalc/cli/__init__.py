"""The `netcalc` command: run the server and manage accounts, credentials, keys."""

from __future__ import annotations

from netcalc.cli import accounts, audit, credentials, demo, keys, server
from netcalc.cli._plain import command_group

__all__ = ["app", "main"]

app = command_group(__doc__)
app.add_typer(accounts.app, name="accounts")
app.add_typer(credentials.app, name="credentials")
app.add_typer(keys.app, name="keys")
app.command()(server.serve)
app.command()(server.migrate)
app.command()(audit.audit)
app.command()(demo.demo)


def main() -> None:
    """Entry point of the `netcalc` console script."""
    app()
