"""`serve` and `migrate`: the server and its database schema."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from netcalc.cli._running import fail, read_settings, with_database
from netcalc.cli.keys import new_signing_key
from netcalc.db import sqlite_file
from netcalc.errors import NetcalcError
from netcalc.migrate import Migration, upgrade
from netcalc.runtime import proven_server_secret
from netcalc.serving import cannot_listen, is_every_interface, serve_app, served_url
from netcalc.settings import Settings


def serve(
    host: Annotated[
        str, typer.Option(metavar="HOST", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(metavar="PORT", min=1, max=65535, help="Port to listen on.")
    ] = 8000,
    workers: Annotated[
        int, typer.Option(metavar="N", min=1, help="Worker processes.")
    ] = 1,
) -> None:
    """Run the server, migrating the database first."""
    settings = read_settings()
    refusal = cannot_listen(host, port)
    if refusal is not None:
        fail(refusal)
    if "issuer" not in settings.model_fields_set:
        settings = issuer_served_at(host, port, shared=not settings.is_sqlite)
    with_database(_prepare, creates=True)
    processes = "1 worker" if workers == 1 else f"{workers} workers"
    typer.echo(
        f"netcalc serving on {served_url(host, port)} with {processes}.", err=True
    )
    serve_app(settings, host, port, workers)


def issuer_served_at(host: str, port: int, *, shared: bool = False) -> Settings:
    """Settings whose issuer is this server's own address, for when
    NETCALC_ISSUER is unset: tokens and metadata then name the port served.

    The workers read their settings from the environment, so the issuer goes
    there. An address of every interface names no host clients could use, so
    the issuer names loopback and the operator is told to set it. They are
    told too when the database is `shared`: its other instances would name
    other issuers and refuse this one's tokens.
    """
    every_interface = is_every_interface(host)
    issuer = served_url("127.0.0.1" if every_interface else host, port)
    os.environ["NETCALC_ISSUER"] = issuer
    if every_interface or shared:
        typer.echo(
            f"NETCALC_ISSUER is not set, so tokens name the issuer {issuer}; "
            "set it to the URL clients reach this server at, the same on "
            "every instance.",
            err=True,
        )
    return read_settings()


async def _prepare(settings: Settings, engine: AsyncEngine) -> None:
    # Made here, once, so that workers starting together find one key.
    keys = (await proven_server_secret(settings, engine)).keys
    alg = settings.signing_alg
    if keys.next_alg != alg:
        # A changed setting takes over as `keys rotate` would: resource
        # servers holding the key set must have the new key before a token
        # names it.
        _, switch_after = await new_signing_key(settings, engine, now=False)
        typer.echo(
            f"NETCALC_SIGNING_ALG is now {alg}: a new {alg} key is published "
            f"and signs in {switch_after} s, once every cache of the key set "
            f"holds it. Until then tokens are signed {keys.current.alg}.",
            err=True,
        )


def migrate() -> None:
    """Bring the database schema up to date, creating it if need be."""
    try:
        path = sqlite_file(read_settings().database_url)
    except NetcalcError as error:
        fail(error.message)
    new_file = path is not None and not path.exists()

    async def run(settings: Settings, engine: AsyncEngine) -> Migration:
        return await upgrade(engine)

    done = with_database(run, creates=True, upgrades=False)
    if done.created and new_file:
        typer.echo(f"Created the database at {path}, schema revision {done.after}.")
    elif done.created:
        typer.echo(f"Created the database schema (revision {done.after}).")
    elif done.changed:
        typer.echo(
            f"Migrated the database schema from revision {done.before} to {done.after}."
        )
    else:
        typer.echo(f"The database is up to date (schema revision {done.after}).")
