"""Saved subnets: validation and storage, scoped to one account."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import orjson
from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from netcalc.accounts.tables import accounts
from netcalc.db import Reads, Row, new_id, utcnow
from netcalc.errors import (
    InvalidRequest,
    MissingValues,
    NetworkAddressInvalid,
    NotFound,
    SubnetLimitReached,
)
from netcalc.subnets.tables import subnets
from netcalc.text import is_printable, shows_anything

T = TypeVar("T")

NAME_LIMIT = 100
"""Longest subnet name kept, in characters."""

_COLUMNS = (
    subnets.c.id,
    subnets.c.name,
    subnets.c.network_address,
    subnets.c.subnet_bits,
    subnets.c.created_at,
)
_NAMES = tuple(column.key for column in _COLUMNS)


def _network(address: object, bits: object) -> ipaddress.IPv4Network:
    prefix = _prefix_length(bits)
    if not isinstance(address, str):
        raise NetworkAddressInvalid()
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        raise NetworkAddressInvalid() from None
    return ipaddress.IPv4Network(f"{address}/{prefix}", strict=False)


def _prefix_length(bits: object) -> int:
    # Two ASCII digits as text are taken too; int() alone would also take
    # other scripts' digits and signs.
    if isinstance(bits, str) and bits.isascii() and bits.isdigit() and len(bits) <= 2:
        bits = int(bits)
    if isinstance(bits, bool) or not isinstance(bits, int) or not 0 <= bits <= 32:
        raise NetworkAddressInvalid(_NOT_A_PREFIX_LENGTH)
    return bits


_NOT_A_PREFIX_LENGTH = "subnet_bits must be a whole number from 0 to 32."


def _is_clean_name(name: object) -> bool:
    return isinstance(name, str) and len(name) <= NAME_LIMIT and is_printable(name)


def _listed(names: list[str]) -> str:
    """`a`, `a or b`, `a, b or c`: the names in a sentence."""
    if len(names) == 1:
        return names[0]
    return f"{', '.join(names[:-1])} or {names[-1]}"


def new_subnet(fields: dict[str, Any]) -> dict[str, Any]:
    """Validate a subnet to save; the address is normalised to its network."""
    name = fields.get("name")
    if isinstance(name, str):
        # A name that shows nothing, spaces or zero-width characters only,
        # is no name.
        name = name.strip() if shows_anything(name) else ""
    missing = [
        label
        for label, value in (
            ("network_address", fields.get("network_address")),
            ("subnet_bits", fields.get("subnet_bits")),
            ("name", name),
        )
        if value is None or value == ""
    ]
    if missing:
        raise MissingValues(
            f"The subnet has no {_listed(missing)}: send network_address, "
            "subnet_bits and name, none of them empty."
        )
    if not _is_clean_name(name):
        raise InvalidRequest(
            f"name must be printable text of at most {NAME_LIMIT} characters."
        )
    network = _network(fields["network_address"], fields["subnet_bits"])
    return {
        "name": name,
        "network_address": str(network.network_address),
        "subnet_bits": network.prefixlen,
    }


def present(subnet: Mapping[Any, Any]) -> dict[str, Any]:
    """A stored subnet as the API shows it."""
    return {
        "id": subnet["id"],
        "name": subnet["name"],
        "network_address": subnet["network_address"],
        "subnet_bits": subnet["subnet_bits"],
        "cidr_notation": f"{subnet['network_address']}/{subnet['subnet_bits']}",
        "created_at": subnet["created_at"].isoformat(),
    }


# Built once with bound parameters, so each call only runs them.
_ACCOUNT_SUBNETS = (
    select(*_COLUMNS)
    .where(subnets.c.account_id == bindparam("account_id"))
    .order_by(subnets.c.created_at, subnets.c.id)
)
_ONE_SUBNET = select(*_COLUMNS).where(
    subnets.c.account_id == bindparam("account_id"),
    subnets.c.id == bindparam("subnet_id"),
)


def _present_row(row: Row) -> dict[str, Any]:
    return present(dict(zip(_NAMES, row, strict=True)))


def json_array(rows: list[Row]) -> orjson.Fragment:
    """Subnet rows as shown, encoded as one JSON array."""
    return orjson.Fragment(orjson.dumps([_present_row(row) for row in rows]))


def _present_first(rows: list[Row]) -> dict[str, Any] | None:
    return _present_row(rows[0]) if rows else None


async def list_subnets(
    reads: Reads, account_id: str, shape: Callable[[list[Row]], T]
) -> T:
    """Every subnet the account saved, oldest first, as `shape` makes them.

    Shaped when the rows are read, and kept with them where reads are kept,
    so once per change of the database rather than once per request: an
    account may keep a thousand subnets. `json_array` shapes them as one
    JSON array.
    """
    params = {"account_id": account_id}
    return await reads.read(_ACCOUNT_SUBNETS, params, shape)


async def get_subnet(reads: Reads, account_id: str, subnet_id: str) -> dict[str, Any]:
    """One of the account's subnets; another account's id is NotFound too."""
    params = {"account_id": account_id, "subnet_id": subnet_id}
    subnet = await reads.read(_ONE_SUBNET, params, _present_first)
    if subnet is None:
        raise NotFound("No subnet with that id.")
    return subnet


async def save_subnet(
    engine: AsyncEngine, account_id: str, subnet: dict[str, Any], limit: int
) -> dict[str, Any]:
    """Store a validated subnet for the account and return it as shown.

    Raises:
        SubnetLimitReached: the account holds `limit` subnets already.
    """
    values = subnet | {"id": new_id(), "account_id": account_id}
    values["created_at"] = utcnow()
    async with engine.begin() as connection:
        # Saves at once are counted one after the other: PostgreSQL locks the
        # account's row here, and SQLite, whose transaction begins at the
        # insert, holds its one write lock from there until the commit.
        await connection.execute(_LOCK_ACCOUNT, {"account_id": account_id})
        await connection.execute(subnets.insert().values(**values))
        saved = await connection.scalar(_COUNT, {"account_id": account_id})
        if (saved or 0) > limit:
            raise SubnetLimitReached(
                f"This account has saved {limit} subnets, as many as it may: "
                "delete one before saving another."
            )
    return present(values)


_LOCK_ACCOUNT = (
    select(accounts.c.id)
    .where(accounts.c.id == bindparam("account_id"))
    .with_for_update()
)
_COUNT = select(func.count()).where(subnets.c.account_id == bindparam("account_id"))


async def delete_subnet(engine: AsyncEngine, account_id: str, subnet_id: str) -> None:
    """Delete one of the account's subnets, or raise NotFound."""
    statement = delete(subnets).where(
        subnets.c.account_id == account_id, subnets.c.id == subnet_id
    )
    async with engine.begin() as connection:
        result = await connection.execute(statement)
    if result.rowcount == 0:
        raise NotFound("No subnet with that id.")
