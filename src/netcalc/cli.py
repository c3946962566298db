"""The `netcalc` command: run the server and manage accounts, credentials, keys."""

from __future__ import annotations

import asyncio
import json
import math
import os
import secrets
import sys
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from sqlalchemy import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.core import TyperCommand
from typer.models import CommandFunctionType

from netcalc.accounts import service
from netcalc.audit import MAX_LIMIT, list_events
from netcalc.auth.keys import KEY_SET_MAX_AGE, KeySealer, rotate_keys
from netcalc.db import create_engine, sqlite_file
from netcalc.errors import NetcalcError
from netcalc.migrate import Migration, upgrade
from netcalc.runtime import proven_server_secret, secret_hash_key
from netcalc.serving import cannot_listen, is_every_interface, serve_app, served_url
from netcalc.settings import Settings, load_settings

T = TypeVar("T")


class _PlainCommand(TyperCommand):
    """A command whose help names each value as it is typed: `CLIENT_ID`,
    where Typer writes `{CLIENT_ID}` in the usage line and `CLIENT_ID <str>`
    under Arguments. Options name theirs with a `metavar`."""

    # The context and formatter are click's, which Typer may carry a copy of.
    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                pieces.append(_value_name(param.metavar, param.name))
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        arguments: list[tuple[str, str]] = []
        options: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append((_value_name(param.metavar, param.name), record[1]))
            else:
                options.append(record)
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def _value_name(metavar: str | None, name: str | None) -> str:
    return metavar or (name or "").upper()


class _Commands(typer.Typer):
    """A command group whose commands print plain help (`_PlainCommand`)."""

    def command(
        self, *args: Any, **kwargs: Any
    ) -> Callable[[CommandFunctionType], CommandFunctionType]:
        kwargs.setdefault("cls", _PlainCommand)
        return super().command(*args, **kwargs)


def _commands(help_text: str | None) -> typer.Typer:
    # Plain help: Typer's rich layout labels every flag with a type, "<bool>"
    # even for --help, which reads as if the flags took a value.
    return _Commands(
        help=help_text,
        no_args_is_help=True,
        rich_markup_mode=None,
        add_completion=False,
    )


app = _commands(__doc__)
accounts_app = _commands("Manage accounts.")
credentials_app = _commands("Manage client credentials.")
keys_app = _commands("Manage token signing keys.")
app.add_typer(accounts_app, name="accounts")
app.add_typer(credentials_app, name="credentials")
app.add_typer(keys_app, name="keys")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Email = Annotated[str, typer.Argument(metavar="EMAIL", help="The account's email.")]
ClientId = Annotated[
    str, typer.Argument(metavar="CLIENT_ID", help="The credentials' client id.")
]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from stdin.")
]
OwningAccount = Annotated[
    str, typer.Option("--account", metavar="EMAIL", help="The owning account's email.")
]


def _fail(message: str) -> NoReturn:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(1)


def _settings() -> Settings:
    try:
        return load_settings()
    except NetcalcError as error:
        _fail(error.message)


def _with_database(
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
    settings = _settings()

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
        _fail(error.message)
    except (SQLAlchemyError, OSError) as error:
        _fail(_unusable(settings.database_url, error))


def _require_database(url: str) -> None:
    path = sqlite_file(url)
    if path is not None and not path.exists():
        _fail(
            f"There is no database at {path}: check NETCALC_DATABASE_URL, or "
            f"run '{_invoked_as()} migrate' to create it."
        )


def _unusable(url: str, error: Exception) -> str:
    """Which database failed and why, in one line, with no password."""
    # The query goes too: a driver may take a password from it.
    server = make_url(url).set(password=None, query={})
    where = sqlite_file(url) or server.render_as_string()
    cause = error.orig if isinstance(error, DBAPIError) else error
    reason = " ".join(str(cause).split()) or type(cause).__name__
    return f"The database at {where} cannot be used: {reason}."


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


def _print_secret(issued: service.IssuedSecret, as_json: bool) -> None:
    if as_json:
        _print_json(issued.as_dict())
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


@app.command()
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
    settings = _settings()
    refusal = cannot_listen(host, port)
    if refusal is not None:
        _fail(refusal)
    if "issuer" not in settings.model_fields_set:
        settings = issuer_served_at(host, port, shared=not settings.is_sqlite)
    _with_database(_prepare, creates=True)
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
    return _settings()


async def _prepare(settings: Settings, engine: AsyncEngine) -> None:
    # Made here, once, so that workers starting together find one key.
    keys = (await proven_server_secret(settings, engine)).keys
    alg = settings.signing_alg
    if keys.next_alg != alg:
        # A changed setting takes over as `keys rotate` would: resource
        # servers holding the key set must have the new key before a token
        # names it.
        _, switch_after = await _rotate_keys(settings, engine, now=False)
        typer.echo(
            f"NETCALC_SIGNING_ALG is now {alg}: a new {alg} key is published "
            f"and signs in {switch_after} s, once every cache of the key set "
            f"holds it. Until then tokens are signed {keys.current.alg}.",
            err=True,
        )


@app.command()
def migrate() -> None:
    """Bring the database schema up to date, creating it if need be."""
    try:
        path = sqlite_file(_settings().database_url)
    except NetcalcError as error:
        _fail(error.message)
    new_file = path is not None and not path.exists()

    async def run(settings: Settings, engine: AsyncEngine) -> Migration:
        return await upgrade(engine)

    done = _with_database(run, creates=True, upgrades=False)
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


@accounts_app.command("create")
def accounts_create(email: Email, password_stdin: PasswordStdin = False) -> None:
    """Create an account."""
    password = _read_password(password_stdin)

    async def create(settings: Settings, engine: AsyncEngine) -> str:
        return await service.create_account(engine, email, password)

    account_id = _with_database(create)
    typer.echo(f"Created account {account_id} for {service.email_key(email)}.")


@accounts_app.command("password")
def accounts_password(email: Email, password_stdin: PasswordStdin = False) -> None:
    """Set a new password for an account, ending its console sessions."""

    async def change(settings: Settings, engine: AsyncEngine) -> None:
        account_id = await service.account_id_for(engine, email)
        # Asked for once the account is known, so a mistyped email is not
        # found out only after the password has been typed twice.
        password = _read_password(password_stdin)
        await service.set_password(engine, account_id, password)

    _with_database(change)
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
        _fail("The password on stdin is not UTF-8 text.")


@accounts_app.command("list")
def accounts_list(as_json: JsonFlag = False) -> None:
    """List every account; passwords and their hashes are never shown."""

    async def listing(settings: Settings, engine: AsyncEngine) -> list[dict[str, Any]]:
        return await service.list_accounts(engine)

    rows = _with_database(listing)
    if as_json:
        _print_json(rows)
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
    _print_columns(header, cells)


def _set_disabled(email: str, disabled: bool) -> None:
    async def change(settings: Settings, engine: AsyncEngine) -> bool:
        account_id = await service.account_id_for(engine, email)
        return await service.set_disabled(engine, account_id, disabled)

    state = "disabled" if disabled else "enabled"
    stored = service.email_key(email)
    if _with_database(change):
        typer.echo(f"{state.capitalize()} {stored}.")
    else:
        typer.echo(f"{stored} was {state} already; nothing changed.")


@accounts_app.command("disable")
def accounts_disable(email: Email) -> None:
    """Disable an account: its tokens are refused and no new ones granted."""
    _set_disabled(email, True)


@accounts_app.command("enable")
def accounts_enable(email: Email) -> None:
    """Enable a disabled account again."""
    _set_disabled(email, False)


@credentials_app.command("create")
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

    _print_secret(_with_database(create), as_json)


@credentials_app.command("list")
def credentials_list(
    account: OwningAccount,
    as_json: JsonFlag = False,
) -> None:
    """List an account's credentials; secrets are never shown."""

    async def listing(settings: Settings, engine: AsyncEngine) -> list[dict[str, Any]]:
        account_id = await service.account_id_for(engine, account)
        return await service.list_credentials(engine, account_id)

    rows = _with_database(listing)
    if as_json:
        _print_json(rows)
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
    _print_columns(header, cells)


def _print_columns(header: tuple[str, ...], cells: Sequence[tuple[str, ...]]) -> None:
    """Print a header and rows of cells as aligned columns."""
    lines = [header, *cells]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        typer.echo(
            "  ".join(
                cell.ljust(w) for cell, w in zip(line, widths, strict=True)
            ).rstrip()
        )


@credentials_app.command("revoke")
def credentials_revoke(client_id: ClientId) -> None:
    """Revoke credentials; their tokens stop working at once."""

    async def revoke(settings: Settings, engine: AsyncEngine) -> bool:
        return await service.revoke_credentials(engine, client_id)

    if _with_database(revoke):
        typer.echo(f"Revoked {client_id}.")
    else:
        typer.echo(f"{client_id} was revoked already; nothing changed.")


@credentials_app.command("rotate")
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

    _print_secret(_with_database(rotate), as_json)


@keys_app.command("rotate")
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
    rotate = partial(_rotate_keys, now=now, withdraw=withdraw)
    kid, switch_after = _with_database(rotate)
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


async def _rotate_keys(
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


@app.command()
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

    events = _with_database(listing)
    if as_json:
        _print_json(events)
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
    _print_columns(header, cells)


DEMO_EMAIL = "demo@example.com"


def _invoked_as() -> str:
    """How to run this CLI again, as the user ran it, so hints can be pasted."""
    program = sys.argv[0]
    return program if Path(program).name == "netcalc" else "python -m netcalc"


@app.command()
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

    issued = _with_database(seed, creates=True)
    if not isinstance(issued, service.IssuedSecret):
        typer.echo(_no_demo_made(demo_exists=issued))
        return
    typer.echo(
        f"Demo account {DEMO_EMAIL}, password {password} "
        f"(sign in at http://127.0.0.1:{port}/), with new credentials:"
    )
    _print_secret(issued, as_json=False)
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
    cli = _invoked_as()
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


def main() -> None:
    """Entry point of the `netcalc` console script."""
    app()
