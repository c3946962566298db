"""HTTP edge of the public subnet calculator (CONTRACT.md §4); no token needed.

One subnet answers `{"status": "OK", "meta": {...}, "address": {...}}`. A
bracketed list answers `{"status": "OK", "addresses": [...]}`, each item a
`{"meta": {...}, "address": {...}}` pair, even for a list of one.
"""

from __future__ import annotations

from ipaddress import IPv4Network

from fastapi import APIRouter, Request
from starlette.responses import Response

from netcalc.calculator import ipv4
from netcalc.errors import NoAddressSpecified
from netcalc.openapi import answers
from netcalc.responses import JSONBody, ok

router = APIRouter(tags=["calculator"])

PREFIX = "/api/ip/"
"""What every calculator path starts with; the subnet follows it."""


# Documented as answering 400 alone: it never succeeds.
@router.get("/api/ip", status_code=400, responses=answers.NO_SUBNET)
@router.get("/api/ip/", status_code=400, responses=answers.NO_SUBNET)
async def no_subnet() -> Response:
    """The calculator called without a subnet."""
    raise NoAddressSpecified()


@router.get(PREFIX + "{subnet:path}", responses=answers.CALCULATION)
async def calculate(
    request: Request,
    subnet: str,
    binary: str | None = None,
    fields: str | None = None,
) -> JSONBody:
    """Describe one subnet, or each of a bracketed list.

    `?binary=1|true` adds the binary forms; `?fields=a,b` keeps only those
    keys of each `address`. The framework has already percent-decoded the
    path, so `10.0.0.0%2F8` arrives as `10.0.0.0/8`.
    """
    networks = ipv4.parse_subnets(subnet)
    kept = ipv4.parse_fields(fields)
    with_binary = ipv4.wants_binary(binary)
    entries = [
        _entry(request, network, binary=with_binary, fields=kept)
        for network in networks
    ]
    if ipv4.is_list(subnet):
        return ok({"addresses": entries})
    return ok(entries[0])


def _entry(
    request: Request,
    network: IPv4Network,
    *,
    binary: bool,
    fields: frozenset[str] | None,
) -> dict[str, object]:
    """The `meta` and `address` of one subnet."""
    address = ipv4.describe(network, binary=binary)
    return {
        "meta": {
            "permalink": _permalink(request, network),
            "next_address": ipv4.next_address(network),
        },
        "address": ipv4.select_fields(address, fields),
    }


def _permalink(request: Request, network: IPv4Network) -> str:
    """Absolute URL of the canonical query for `network`."""
    # The configured issuer is the public base URL; the Host header is the
    # caller's to choose and must not shape links we hand out.
    base = str(request.app.state.public_url).rstrip("/")
    return f"{base}/api/ip/{network.network_address}/{network.prefixlen}"
