"""`audit`: the audit trail, newest first."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from netcalc.accounts import service
from netcalc.audit import MAX_LIMIT, list_events
from netcalc.cli._output import JsonFlag, print_columns, print_json
from netcalc.cli._running import with_database
from netcalc.settings import Settings


def audit(
    account: Annotated[
        str | None,
        typer.Option(metavar="EMAIL", help="Only the events of this account."),
    ] = None,
    limit: Annotated[
        int,
        typer.Option(
            metavar="N", min=1, max=MAX_LIMIT, help="How many events to show."
        ),
    ] = 100,
    as_json: JsonFlag = False,
) -> None:
    """List the audit trail, newest first; it never holds a secret."""

    async def listing(settings: Settings, engine: AsyncEngine) -> list[dict[str, Any]]:
        account_id = await service.account_id_for(engine, account) if account else None
        return await list_events(engine, account_id=account_id, limit=limit)

    events = with_database(listing)
    if as_json:
        print_json(events)
        return
    _print_events(events)


def _print_events(events: list[dict[str, Any]]) -> None:
    header = ("TIME", "EVENT", "ACTOR", "SUBJECT", "ADDRESS")
    cells = [
        (
            event["occurred_at"][:19],
            event["event"],
            event["actor"],
            event["subject"],
            event["address"] or "-",
        )
        for event in events
    ]
    print_columns(header, cells)
