"""The Subnets account API (CONTRACT §3): bearer token required."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response
from starlette.types import Scope

from netcalc.auth.guard import admitted, check_live, require_scope
from netcalc.auth.scopes import SUBNETS_READ, SUBNETS_WRITE
from netcalc.auth.tokens import AccessToken
from netcalc.bodies import JSON, media_type, parse_json_object
from netcalc.db import Row
from netcalc.errors import MissingHeader
from netcalc.http_body import header, read_body, scope_header
from netcalc.openapi import SUBNET, answers
from netcalc.responses import JSONBody, ok
from netcalc.runtime import Runtime, runtime_of
from netcalc.subnets import service

router = APIRouter(prefix="/api/account/subnets")

Reader = Annotated[AccessToken, Depends(require_scope(SUBNETS_READ))]
Writer = Annotated[AccessToken, Depends(require_scope(SUBNETS_WRITE))]


@router.get("", responses=answers.SUBNETS)
async def list_subnets(request: Request, token: Reader) -> JSONBody:
    """The caller's saved subnets."""
    reads = runtime_of(request).reads
    return await service.list_subnets(reads, token.account_id, _listing)


async def list_subnets_directly(runtime: Runtime, scope: Scope) -> JSONBody:
    """`list_subnets` answered from the ASGI scope, for `netcalc.direct`:
    the busiest account call, it builds no Request and runs no dependency."""
    authorization = scope_header(scope, b"authorization")
    token = await admitted(runtime, authorization, SUBNETS_READ)
    return await service.list_subnets(runtime.reads, token.account_id, _listing)


def _listing(rows: list[Row]) -> JSONBody:
    # Kept with the rows where reads are kept (SQLite): until the database
    # changes, every request sends this same answer, built once. So nothing
    # may change it once built: a middleware must copy its header list.
    return ok({"subnets": service.json_array(rows)})


@router.get("/{subnet_id}", responses=answers.ONE_SUBNET)
async def get_subnet(request: Request, subnet_id: str, token: Reader) -> Response:
    """One saved subnet, as a list of one."""
    reads = runtime_of(request).reads
    subnet = await service.get_subnet(reads, token.account_id, subnet_id)
    return ok({"subnets": [subnet]})


@router.post("", openapi_extra=SUBNET, responses=answers.SAVED_SUBNET)
async def save_subnet(request: Request, token: Writer) -> Response:
    """Save a subnet from a JSON body."""
    runtime = runtime_of(request)
    if media_type(header(request, b"content-type")) != JSON:
        raise MissingHeader("Send the subnet as application/json.")
    body = await read_body(request, runtime.settings.body_limit)
    await check_live(runtime, token)
    subnet = service.new_subnet(parse_json_object(body))
    limit = runtime.settings.subnets_per_account
    saved = await service.save_subnet(runtime.engine, token.account_id, subnet, limit)
    return ok({"subnet": saved})


@router.delete("/{subnet_id}", responses=answers.DELETED_SUBNET)
async def delete_subnet(request: Request, subnet_id: str, token: Writer) -> Response:
    """Delete one saved subnet."""
    engine = runtime_of(request).engine
    await service.delete_subnet(engine, token.account_id, subnet_id)
    return ok()
