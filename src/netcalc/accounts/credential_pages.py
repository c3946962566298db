"""The console's credentials pages: list, generate, rotate and revoke.

Credentials are always looked up within the signed-in account: another
account's client id answers not found. A new secret is shown once, on the
page that answers its form; the generate and rotate forms are single-use
(`sent_forms`), so posting one again makes no second secret nobody saw.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import Response

from netcalc.accounts import service
from netcalc.accounts.activity import console_actor
from netcalc.accounts.forms import EMPTY_CREDENTIALS, CredentialsRequest
from netcalc.accounts.holders import (
    Holder,
    holder_of,
    posted_by_holder,
    posted_once,
    session_of,
)
from netcalc.accounts.pages import PageRoute, redirect, render
from netcalc.accounts.sent_forms import new_form_id
from netcalc.auth.announcements import client_revoked
from netcalc.auth.exchange import client_address
from netcalc.auth.scopes import ACCOUNT_SCOPES
from netcalc.errors import NotFound, UsageError, quoted
from netcalc.runtime import runtime_of

credentials_router = APIRouter(route_class=PageRoute, include_in_schema=False)


@credentials_router.get("/credentials")
async def credentials_page(request: Request) -> Response:
    """The account's credentials, oldest first."""
    holder = holder_of(await session_of(request))
    runtime = runtime_of(request)
    rows = await service.list_credentials(runtime.engine, holder.account_id)
    return render(
        "credentials.html",
        **holder.chrome(),
        credentials=rows,
        default_ttl=runtime.settings.token_ttl,
        notice=_revoked_notice(rows, request.query_params.get("revoked")),
    )


def _revoked_notice(rows: list[dict[str, Any]], client_id: str | None) -> str | None:
    for row in rows:
        if row["client_id"] == client_id and row["status"] == "revoked":
            return f"Revoked {row['name']}. Its tokens are refused from now on."
    return None


def _new_form(
    request: Request,
    holder: Holder,
    asked: CredentialsRequest,
    error: str | None = None,
) -> Response:
    settings = runtime_of(request).settings
    return render(
        "new.html",
        400 if error else 200,
        **holder.chrome(),
        asked=asked,
        scope_choices=ACCOUNT_SCOPES,
        default_ttl=settings.token_ttl,
        max_ttl=settings.token_ttl_max,
        error=error,
        form_id=new_form_id(),
    )


@credentials_router.get("/credentials/new")
async def new_credentials_page(request: Request) -> Response:
    """The form that generates credentials."""
    holder = holder_of(await session_of(request))
    return _new_form(request, holder, EMPTY_CREDENTIALS)


@credentials_router.post("/credentials/new")
async def generate_credentials(request: Request) -> Response:
    """Generate credentials and show their secret, this once."""
    holder, form, sent = await posted_once(request)
    runtime = runtime_of(request)
    settings = runtime.settings
    asked = CredentialsRequest.from_form(form)
    try:
        issued = await service.create_credentials(
            runtime.engine,
            runtime.secret_hash_key,
            holder.account_id,
            name=asked.name,
            scopes=asked.scopes,
            token_ttl=asked.lifetime(settings.token_ttl_max),
            max_ttl=settings.token_ttl_max,
            actor=console_actor(holder.email),
            address=client_address(request),
            form=sent,
        )
    except UsageError as error:
        return _new_form(request, holder, asked, error.message)
    return _secret_page(request, holder, issued, asked.name)


def _secret_page(
    request: Request,
    holder: Holder,
    issued: service.IssuedSecret,
    name: str,
) -> Response:
    body = json.dumps(
        {
            "client_id": issued.client_id,
            "client_secret": issued.client_secret,
            "grant_type": "client_credentials",
        },
        separators=(",", ":"),
    )
    base = str(request.app.state.public_url).rstrip("/")
    curl = (
        f"curl -s -X POST {base}/api/auth/token "
        f"-H 'Content-Type: application/json' -d '{body}'"
    )
    return render(
        "secret.html",
        **holder.chrome(),
        issued=issued,
        name=name,
        curl=curl,
    )


async def _owned(request: Request, holder: Holder, client_id: str) -> dict[str, Any]:
    """Credentials of this holder's account, or NotFound for any other id."""
    engine = runtime_of(request).engine
    for row in await service.list_credentials(engine, holder.account_id):
        if row["client_id"] == client_id:
            return row
    raise NotFound(f"No credentials have the client id {quoted(client_id)}.")


async def _confirm_page(
    request: Request, client_id: str, action: str, **context: Any
) -> Response:
    holder = holder_of(await session_of(request))
    row = await _owned(request, holder, client_id)
    if row["status"] == "revoked":
        raise UsageError(f"{row['name']} was revoked already; generate new ones.")
    return render(
        f"{action}.html",
        **holder.chrome(),
        credentials=row,
        grace=runtime_of(request).settings.rotation_grace,
        action=f"/credentials/{quote(client_id)}/{action}",
        **context,
    )


@credentials_router.get("/credentials/{client_id}/rotate")
async def rotate_page(request: Request, client_id: str) -> Response:
    """Ask before issuing a new secret, with a single-use form."""
    return await _confirm_page(request, client_id, "rotate", form_id=new_form_id())


@credentials_router.post("/credentials/{client_id}/rotate")
async def rotate(request: Request, client_id: str) -> Response:
    """Issue a new secret; the old one works for the grace period."""
    holder, _, sent = await posted_once(request)
    runtime = runtime_of(request)
    issued = await service.rotate_credentials(
        runtime.engine,
        runtime.secret_hash_key,
        client_id,
        grace=runtime.settings.rotation_grace,
        account_id=holder.account_id,
        actor=console_actor(holder.email),
        address=client_address(request),
        form=sent,
    )
    row = await _owned(request, holder, client_id)
    return _secret_page(request, holder, issued, row["name"])


@credentials_router.get("/credentials/{client_id}/revoke")
async def revoke_page(request: Request, client_id: str) -> Response:
    """Ask before revoking."""
    return await _confirm_page(request, client_id, "revoke")


@credentials_router.post("/credentials/{client_id}/revoke")
async def revoke(request: Request, client_id: str) -> Response:
    """Revoke at once: from now on the credentials and their tokens are refused."""
    holder, _ = await posted_by_holder(request)
    runtime = runtime_of(request)
    revoked = await service.revoke_credentials(
        runtime.engine,
        client_id,
        account_id=holder.account_id,
        actor=console_actor(holder.email),
        address=client_address(request),
    )
    if revoked:
        runtime.revocations.announce(client_revoked(client_id))
    return redirect(f"/credentials?revoked={quote(client_id)}")
