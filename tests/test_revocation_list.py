"""The in-memory revocation list and its reloads from the database."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from netcalc.auth.revocations import RevocationList
from tests.support import Console


def test_announcement_heard_while_loading_survives(console: Console) -> None:
    """A revocation announced while a reload is under way is kept, even
    though the snapshot being loaded was read before it."""

    async def reload(engine: AsyncEngine) -> set[str]:
        known = RevocationList()
        # Runs at the reload's first wait for the database.
        asyncio.get_running_loop().call_soon(known.apply, "token:heard-meanwhile")
        await known.resync(engine)
        return known.tokens

    assert "heard-meanwhile" in console.run(reload)


def test_reload_replaces_what_was_heard_before(console: Console) -> None:
    """Outside a reload, the database is the truth: what it does not hold
    is forgotten."""

    async def reload(engine: AsyncEngine) -> set[str]:
        known = RevocationList()
        known.apply("token:not-in-the-database")
        await known.resync(engine)
        return known.tokens

    assert console.run(reload) == set()


def test_an_announcement_older_than_what_was_heard_changes_nothing() -> None:
    """Announcements apply in epoch order: one older than the newest heard,
    as a reload may leave behind it, cannot undo a newer change."""
    known = RevocationList()
    known.announced("1 client:nci_first")
    known.announced("2 account:acc_1")
    known.announced("1 enabled:acc_1")
    assert known.accounts == {"acc_1"}
    assert known.epoch == 2


def test_a_gap_in_the_epochs_keeps_the_memory_behind() -> None:
    """An announcement after a missed one is applied, but the epoch heard
    stays before the gap, so tokens are checked in the database until a
    reload fills it."""
    known = RevocationList()
    known.announced("1 client:nci_first")
    known.announced("3 client:nci_third")
    assert known.clients == {"nci_first", "nci_third"}
    assert known.epoch == 1


def test_a_reload_fills_a_gap_in_the_epochs(console: Console) -> None:
    """After a reload, the epoch heard is the database's, gap or none."""

    async def reload(engine: AsyncEngine) -> int:
        known = RevocationList()
        known.announced("3 client:nci_third")
        await known.resync(engine)
        return known.epoch

    assert console.run(reload) == 0
