"""`keys rotate`: a new token signing key."""

from __future__ import annotations

import math
from functools import partial
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from netcalc.auth.keys import KEY_SET_MAX_AGE, KeySealer, rotate_keys
from netcalc.cli._plain import command_group
from netcalc.cli._running import with_database
from netcalc.runtime import proven_server_secret
from netcalc.settings import Settings

app = command_group("Manage token signing keys.")


@app.command("rotate")
def keys_rotate(
    now: Annotated[
        bool,
        typer.Option(
            "--now",
            help="Sign with the new key from each server's next key refresh, "
            "without waiting for caches of the key set; resource servers holding "
            "one refuse the new tokens until they fetch it again. Old tokens keep "
            "working: see --withdraw.",
        ),
    ] = False,
    withdraw: Annotated[
        bool,
        typer.Option(
            "--withdraw",
            help="Also stop trusting every old key, for a key that has or may "
            "have leaked: from each server's next key refresh, every token the "
            "old keys signed is refused, and clients get new ones. Implies --now.",
        ),
    ] = False,
) -> None:
    """Make a new signing key; old public keys stay published while their
    tokens live, unless withdrawn."""
    now = now or withdraw
    rotate = partial(new_signing_key, now=now, withdraw=withdraw)
    kid, switch_after = with_database(rotate)
    if withdraw:
        typer.echo(
            f"New signing key {kid}; every older key is withdrawn. Running servers "
            "sign with the new key, and refuse every token an older key signed, "
            "after their next key refresh (NETCALC_KEY_REFRESH_SECONDS)."
        )
        return
    if now:
        typer.echo(
            f"New signing key {kid}. Running servers sign with it after their next "
            "key refresh (NETCALC_KEY_REFRESH_SECONDS); old tokens keep working."
        )
        return
    typer.echo(
        f"New signing key {kid}. Running servers publish it at their next key "
        f"refresh and sign with it in {switch_after} s, once every server and "
        "every cache of the key set holds it; old tokens keep working."
    )


async def new_signing_key(
    settings: Settings, engine: AsyncEngine, *, now: bool, withdraw: bool = False
) -> tuple[str, int]:
    """A new key of the configured algorithm, and the seconds until it signs."""
    proven = await proven_server_secret(settings, engine)
    sealer = KeySealer(proven.secret)
    refresh = 2 * math.ceil(settings.key_refresh_seconds)
    # Servers sign with the old key until their next key refresh after
    # the switch, so its tokens may outlive it by that much more.
    lifetime = settings.token_ttl_max + refresh
    switch_after = 0 if now else KEY_SET_MAX_AGE + refresh
    kid = await rotate_keys(
        engine,
        sealer,
        settings.signing_alg,
        lifetime,
        switch_after=switch_after,
        withdraw=withdraw,
    )
    return kid, switch_after
