"""IPv4 subnet arithmetic for the public calculator (CONTRACT.md §4).

Pure logic: this module imports no web framework and does no I/O, so the
rules below are tested without a server. The routes turn requests into calls
here and the results into the contract's JSON.

A subnet is written `a.b.c.d` (a single host, /32) or `a.b.c.d/bits`; a list
is `[s1,s2,...]`. Only the strict dotted-quad form is read: four decimal
octets 0-255 without signs, spaces or leading zeros, and bits 0-32. Any
address inside the subnet is accepted and normalised to the network address.

`describe` answers the `address` object. When binary forms are asked for, it
adds one nested `binary` object holding the dotted binary form of every
dotted field, e.g. `"subnet_mask": "11111111.11111111.11111111.00000000"`.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Network

from netcalc.dotted_fields import DOTTED_FIELDS
from netcalc.errors import InvalidAddress, InvalidRequest, NoAddressSpecified

MAX_SUBNETS = 64
"""The most subnets one bracketed list may hold."""

MAX_SHOWN = 64
"""The most characters of the caller's input quoted back in a message."""

ADDRESS_FIELDS = (
    "cidr_notation",
    "subnet_bits",
    "subnet_mask",
    "wildcard_mask",
    "network_address",
    "broadcast_address",
    "assignable_hosts",
    "first_assignable_host",
    "last_assignable_host",
    "binary",
)
"""Every key `describe` may answer, in answer order; `?fields=` picks from it."""

_TRUE_WORDS = frozenset({"1", "true"})

_LAST_ADDRESS = IPv4Address("255.255.255.255")

# [0-9] rather than \d: \d also matches non-ASCII digits such as Arabic-Indic.
_SUBNET = re.compile(r"([0-9]+)\.([0-9]+)\.([0-9]+)\.([0-9]+)(?:/([0-9]+))?")


def _shown(text: str) -> str:
    """`text` quoted for a message, cut short so huge input is never echoed."""
    if len(text) > MAX_SHOWN:
        text = text[:MAX_SHOWN] + "..."
    return repr(text)


def _number(digits: str, maximum: int, part: str, subnet: str) -> int:
    """Read one octet or prefix length, refusing what could be misread."""
    if len(digits) > 1 and digits.startswith("0"):
        raise InvalidAddress(
            f"The {part} {_shown(digits)} in {_shown(subnet)} has a leading "
            "zero, which some tools read as octal; write it in plain decimal."
        )
    # Compare lengths first: int() refuses strings of thousands of digits.
    if len(digits) > len(str(maximum)) or int(digits) > maximum:
        raise InvalidAddress(
            f"The {part} {_shown(digits)} in {_shown(subnet)} is out of range; "
            f"it must be 0-{maximum}."
        )
    return int(digits)


def parse_subnet(text: str) -> IPv4Network:
    """Read one `a.b.c.d` or `a.b.c.d/bits`; a bare address is a /32.

    Raises:
        NoAddressSpecified: `text` is empty.
        InvalidAddress: `text` is anything but a strict IPv4 subnet.
    """
    if not text:
        raise NoAddressSpecified()
    match = _SUBNET.fullmatch(text)
    if match is None:
        raise InvalidAddress(
            f"Cannot read {_shown(text)} as an IPv4 subnet; "
            "write a.b.c.d or a.b.c.d/bits, e.g. 192.168.1.0/24."
        )
    *octets, bits = match.groups()
    values = [_number(octet, 255, "octet", text) for octet in octets]
    prefix = 32 if bits is None else _number(bits, 32, "prefix length", text)
    address = IPv4Address(bytes(values))
    return IPv4Network((address, prefix), strict=False)


def is_list(text: str) -> bool:
    """Whether `text` is written as a bracketed list of subnets."""
    return text.startswith("[")


def parse_subnets(text: str) -> list[IPv4Network]:
    """Read one subnet or a bracketed list of at most `MAX_SUBNETS`.

    Raises:
        NoAddressSpecified: `text` is empty or the empty list `[]`.
        InvalidAddress: a list is unbalanced, too long, has an empty item, or
            any subnet cannot be read.
    """
    if not is_list(text):
        return [parse_subnet(text)]
    if not text.endswith("]"):
        raise InvalidAddress(
            f"The list {_shown(text)} is not closed; write [s1,s2,...]."
        )
    inner = text[1:-1]
    if not inner:
        raise NoAddressSpecified()
    items = inner.split(",", MAX_SUBNETS)
    if len(items) > MAX_SUBNETS:
        raise InvalidAddress(
            f"A list may hold at most {MAX_SUBNETS} subnets; split it up."
        )
    if "" in items:
        raise InvalidAddress(f"The list {_shown(text)} has an empty item.")
    return [parse_subnet(item) for item in items]


def _assignable(network: IPv4Network) -> tuple[IPv4Address, IPv4Address, int]:
    """First and last assignable host, and how many there are."""
    # RFC 3021: both addresses of a /31 point-to-point link are hosts, as
    # is the only address of a /32; no network or broadcast is set aside.
    if network.prefixlen >= 31:
        first, last = network.network_address, network.broadcast_address
        return first, last, network.num_addresses
    first, last = network.network_address + 1, network.broadcast_address - 1
    return first, last, network.num_addresses - 2


def to_binary(address: IPv4Address) -> str:
    """Dotted binary form, e.g. `11111111.11111111.11111111.00000000`."""
    return ".".join(f"{octet:08b}" for octet in address.packed)


def describe(network: IPv4Network, *, binary: bool = False) -> dict[str, object]:
    """The contract's `address` object for `network`.

    With `binary`, a nested `binary` object gives the dotted binary form of
    every dotted-address field.
    """
    first, last, hosts = _assignable(network)
    address: dict[str, object] = {
        "cidr_notation": network.with_prefixlen,
        "subnet_bits": network.prefixlen,
        "subnet_mask": str(network.netmask),
        "wildcard_mask": str(network.hostmask),
        "network_address": str(network.network_address),
        "broadcast_address": str(network.broadcast_address),
        "assignable_hosts": hosts,
        "first_assignable_host": str(first),
        "last_assignable_host": str(last),
    }
    if binary:
        address["binary"] = {
            name: to_binary(IPv4Address(str(address[name]))) for name in DOTTED_FIELDS
        }
    return address


def next_address(network: IPv4Network) -> str | None:
    """First address of the next subnet of the same size, if there is one."""
    if network.broadcast_address == _LAST_ADDRESS:
        return None
    return str(network.broadcast_address + 1)


def wants_binary(value: str | None) -> bool:
    """Read `?binary=`: `1` or `true` in any case; anything else is false."""
    return value is not None and value.lower() in _TRUE_WORDS


def parse_fields(text: str | None) -> frozenset[str] | None:
    """Read `?fields=a,b` into the names to keep; `None` keeps every field.

    Raises:
        InvalidRequest: a name is not one of `ADDRESS_FIELDS`, or none is given.
    """
    if text is None:
        return None
    names = frozenset(name.strip() for name in text.split(",")) - {""}
    if not names:
        raise InvalidRequest(
            "The fields parameter names no field; "
            f"choose from {', '.join(ADDRESS_FIELDS)}."
        )
    unknown = sorted(names.difference(ADDRESS_FIELDS))
    if unknown:
        raise InvalidRequest(
            f"Unknown field {_shown(unknown[0])} in fields; "
            f"choose from {', '.join(ADDRESS_FIELDS)}."
        )
    return names


def select_fields(
    address: dict[str, object], fields: frozenset[str] | None
) -> dict[str, object]:
    """Keep only the named keys of `address`; `None` keeps them all."""
    if fields is None:
        return address
    return {name: value for name, value in address.items() if name in fields}
