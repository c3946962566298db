"""The public IPv4 subnet calculator, `GET /api/ip/{subnet}` (CONTRACT.md §4)."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network

import pytest
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from netcalc.calculator import ipv4, router
from netcalc.errors import InvalidAddress, InvalidRequest, NoAddressSpecified
from netcalc.responses import install_error_handlers

HUGE = "1" * 10_000


@pytest.fixture
def client() -> Iterator[TestClient]:
    """A bare app holding only the calculator and the error handlers."""
    app = FastAPI()
    app.state.public_url = "http://testserver"
    install_error_handlers(app)
    app.include_router(router)
    with TestClient(app) as client:
        yield client


def _list_of(count: int) -> str:
    """A bracketed list of `count` distinct /24 subnets."""
    return "[" + ",".join(f"10.0.{n}.0/24" for n in range(count)) + "]"


# --- ipv4: describing subnets ---------------------------------------------


def test_describe_normalises_host_bits() -> None:
    """An address with host bits set describes its whole network."""
    assert ipv4.describe(ipv4.parse_subnet("10.1.2.3/8")) == {
        "cidr_notation": "10.0.0.0/8",
        "subnet_bits": 8,
        "subnet_mask": "255.0.0.0",
        "wildcard_mask": "0.255.255.255",
        "network_address": "10.0.0.0",
        "broadcast_address": "10.255.255.255",
        "assignable_hosts": 16777214,
        "first_assignable_host": "10.0.0.1",
        "last_assignable_host": "10.255.255.254",
    }


@pytest.mark.parametrize(
    ("subnet", "hosts", "first", "last"),
    [
        ("0.0.0.0/0", 4294967294, "0.0.0.1", "255.255.255.254"),
        ("192.168.1.77/24", 254, "192.168.1.1", "192.168.1.254"),
        ("192.0.2.4/30", 2, "192.0.2.5", "192.0.2.6"),
        ("192.0.2.5/31", 2, "192.0.2.4", "192.0.2.5"),
        ("192.0.2.9/32", 1, "192.0.2.9", "192.0.2.9"),
        ("192.0.2.9", 1, "192.0.2.9", "192.0.2.9"),
    ],
    ids=[
        "/0 everything",
        "/24 classic LAN",
        "/30 smallest with broadcast",
        "/31 point-to-point RFC 3021",
        "/32 single host",
        "bare address is /32",
    ],
)
def test_assignable_hosts(subnet: str, hosts: int, first: str, last: str) -> None:
    """Assignable hosts follow the network/broadcast rule, RFC 3021 and /32."""
    address = ipv4.describe(ipv4.parse_subnet(subnet))

    assert address["assignable_hosts"] == hosts
    assert address["first_assignable_host"] == first
    assert address["last_assignable_host"] == last


def test_describe_binary_forms() -> None:
    """Binary forms come as one nested object of dotted 8-bit groups."""
    address = ipv4.describe(ipv4.parse_subnet("192.168.1.0/24"), binary=True)

    assert address["binary"] == {
        "subnet_mask": "11111111.11111111.11111111.00000000",
        "wildcard_mask": "00000000.00000000.00000000.11111111",
        "network_address": "11000000.10101000.00000001.00000000",
        "broadcast_address": "11000000.10101000.00000001.11111111",
        "first_assignable_host": "11000000.10101000.00000001.00000001",
        "last_assignable_host": "11000000.10101000.00000001.11111110",
    }


@pytest.mark.parametrize(
    ("subnet", "expected"),
    [
        ("10.0.0.0/8", "11.0.0.0"),
        ("192.168.1.255/32", "192.168.2.0"),
        ("255.255.255.0/24", None),
        ("255.255.255.255", None),
        ("0.0.0.0/0", None),
    ],
    ids=["/8", "/32 carries", "last /24", "last address", "/0"],
)
def test_next_address(subnet: str, expected: str | None) -> None:
    """The next subnet of the same size starts after the broadcast, if any."""
    assert ipv4.next_address(ipv4.parse_subnet(subnet)) == expected


# --- ipv4: reading input --------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "256.0.0.1",
        "1.2.3",
        "1.2.3.4.5",
        "1.2.3.4/33",
        "1.2.3.4/-1",
        "1.2.3.4/",
        "/24",
        "1.2.3.4/24/8",
        "010.0.0.1",
        "1.2.3.4/08",
        "+1.2.3.4",
        " 1.2.3.4",
        "1.2.3.4 ",
        "1.2.3.4\n",
        "a.b.c.d",
        "::1",
        "1.2.3.4abc",
        "0x7f.0.0.1",
        "\u0661.2.3.4",
        "[1.2.3.4",
        "1.2.3.4]",
        "[[1.2.3.4]]",
        "[1.2.3.4,]",
        "[1.2.3.4, 5.6.7.8]",
        "[1.2.3.4,300.1.1.1]",
        HUGE,
    ],
    ids=[
        "octet 256",
        "three octets",
        "five octets",
        "bits 33",
        "negative bits",
        "empty bits",
        "bits without address",
        "two prefixes",
        "octal-looking octet",
        "leading zero bits",
        "plus sign",
        "leading space",
        "trailing space",
        "trailing newline",
        "letters",
        "IPv6",
        "trailing garbage",
        "hex octet",
        "non-ASCII digit",
        "unclosed list",
        "unopened list",
        "nested list",
        "empty list item",
        "space in list",
        "bad list item",
        "huge number",
    ],
)
def test_parse_refuses(text: str) -> None:
    """Anything but a strict dotted quad, with optional bits, is refused."""
    with pytest.raises(InvalidAddress):
        ipv4.parse_subnets(text)


@pytest.mark.parametrize("text", ["", "[]"], ids=["empty", "empty list"])
def test_parse_nothing(text: str) -> None:
    """Empty input and the empty list mean no address was specified."""
    with pytest.raises(NoAddressSpecified):
        ipv4.parse_subnets(text)


def test_list_cap() -> None:
    """A list holds at most 64 subnets."""
    assert len(ipv4.parse_subnets(_list_of(ipv4.MAX_SUBNETS))) == ipv4.MAX_SUBNETS
    with pytest.raises(InvalidAddress):
        ipv4.parse_subnets(_list_of(ipv4.MAX_SUBNETS + 1))


def test_message_quotes_truncated_input() -> None:
    """Messages quote the offending input, cut to a short prefix."""
    with pytest.raises(InvalidAddress) as caught:
        ipv4.parse_subnets("x" * 10_000)

    assert "x" * ipv4.MAX_SHOWN in caught.value.message
    assert len(caught.value.message) < 3 * ipv4.MAX_SHOWN


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", True),
        ("true", True),
        ("TrUe", True),
        ("0", False),
        ("false", False),
        ("yes", False),
        (None, False),
    ],
    ids=["one", "true", "mixed case", "zero", "false", "garbage", "absent"],
)
def test_wants_binary(value: str | None, expected: bool) -> None:
    """Only 1 and true, in any case, turn binary forms on."""
    assert ipv4.wants_binary(value) is expected


def test_fields_keep_answer_order() -> None:
    """Selected fields keep the answer's order whatever order they were named."""
    address = ipv4.describe(ipv4.parse_subnet("10.0.0.0/8"))
    fields = ipv4.parse_fields("subnet_mask, cidr_notation")

    assert list(ipv4.select_fields(address, fields)) == [
        "cidr_notation",
        "subnet_mask",
    ]


@pytest.mark.parametrize(
    "text", ["netmask", "", " , "], ids=["unknown name", "empty", "only commas"]
)
def test_fields_refused(text: str) -> None:
    """Unknown or missing field names are an invalid request."""
    with pytest.raises(InvalidRequest):
        ipv4.parse_fields(text)


# --- ipv4: properties -----------------------------------------------------


@given(
    st.integers(min_value=0, max_value=2**32 - 1),
    st.integers(min_value=0, max_value=32),
)
def test_any_subnet_is_consistent(value: int, bits: int) -> None:
    """Any subnet holds its address and counts exactly its assignable range."""
    address = IPv4Address(value)
    answer = ipv4.describe(ipv4.parse_subnet(f"{address}/{bits}"))

    def at(name: str) -> int:
        return int(IPv4Address(str(answer[name])))

    assert at("network_address") <= value <= at("broadcast_address")
    assert at("first_assignable_host") <= at("last_assignable_host")
    span = at("last_assignable_host") - at("first_assignable_host") + 1
    assert answer["assignable_hosts"] == span
    assert answer["cidr_notation"] == f"{IPv4Network((value, bits), strict=False)}"


@given(st.one_of(st.text(), st.text(alphabet="0123456789./[],+- x")))
def test_any_text_fails_cleanly(text: str) -> None:
    """Arbitrary text is read or refused with one of the two address errors."""
    try:
        networks = ipv4.parse_subnets(text)
    except (InvalidAddress, NoAddressSpecified) as error:
        assert len(error.message) < 4 * ipv4.MAX_SHOWN
    else:
        assert 1 <= len(networks) <= ipv4.MAX_SUBNETS


# --- HTTP -----------------------------------------------------------------


def test_one_subnet(client: TestClient) -> None:
    """One subnet answers meta and the address object."""
    response = client.get("/api/ip/10.1.2.3/8")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "OK"
    assert body["meta"] == {
        "permalink": "http://testserver/api/ip/10.0.0.0/8",
        "next_address": "11.0.0.0",
    }
    assert body["address"] == ipv4.describe(IPv4Network("10.0.0.0/8"))


def test_list_of_subnets(client: TestClient) -> None:
    """A bracketed list answers one meta and address pair per item."""
    response = client.get("/api/ip/[192.168.0.1,10.0.0.0/8]")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "OK"
    assert [item["address"]["cidr_notation"] for item in body["addresses"]] == [
        "192.168.0.1/32",
        "10.0.0.0/8",
    ]
    assert body["addresses"][0]["meta"] == {
        "permalink": "http://testserver/api/ip/192.168.0.1/32",
        "next_address": "192.168.0.2",
    }


def test_list_of_one_keeps_list_shape(client: TestClient) -> None:
    """A bracketed list of one still answers `addresses`."""
    response = client.get("/api/ip/%5B10.0.0.0%2F8%5D")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "OK"
    assert len(body["addresses"]) == 1


def test_url_encoded_slash(client: TestClient) -> None:
    """A percent-encoded slash reads like a plain one."""
    response = client.get("/api/ip/10.0.0.0%2F8")

    assert response.status_code == 200
    assert response.json()["address"]["cidr_notation"] == "10.0.0.0/8"


def test_permalink_round_trips(client: TestClient) -> None:
    """Following the permalink answers the same address."""
    first = client.get("/api/ip/172.16.5.4/12").json()
    again = client.get(first["meta"]["permalink"])

    assert again.status_code == 200
    assert again.json()["address"] == first["address"]


@pytest.mark.parametrize(
    "path",
    ["/api/ip", "/api/ip/", "/api/ip/[]", "/api/ip/%5B%5D"],
    ids=["no slash", "trailing slash", "empty list", "encoded empty list"],
)
def test_no_address(client: TestClient, path: str) -> None:
    """Calling without a subnet answers NO_ADDRESS_SPECIFIED."""
    response = client.get(path)

    assert response.status_code == 400
    assert response.json()["status"] == "NO_ADDRESS_SPECIFIED"


@pytest.mark.parametrize(
    "subnet",
    ["256.1.1.1", "1.2.3", "1.2.3.4/33", "010.0.0.1", "abc", "::1", "1.2.3.4%20"],
    ids=["octet 256", "three octets", "bits 33", "octal", "letters", "IPv6", "space"],
)
def test_invalid_address(client: TestClient, subnet: str) -> None:
    """An unreadable subnet answers INVALID_ADDRESS."""
    response = client.get(f"/api/ip/{subnet}")

    assert response.status_code == 400
    assert response.json()["status"] == "INVALID_ADDRESS"


def test_huge_input_is_not_echoed(client: TestClient) -> None:
    """A huge subnet is refused without echoing it back."""
    response = client.get(f"/api/ip/{'9' * 10_000}")

    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "INVALID_ADDRESS"
    assert len(body["message"]) < 3 * ipv4.MAX_SHOWN


def test_too_long_list(client: TestClient) -> None:
    """A list of more than 64 subnets answers INVALID_ADDRESS."""
    response = client.get(f"/api/ip/{_list_of(ipv4.MAX_SUBNETS + 1)}")

    assert response.status_code == 400
    assert response.json()["status"] == "INVALID_ADDRESS"


@pytest.mark.parametrize(
    ("query", "has_binary"),
    [
        ("?binary=1", True),
        ("?binary=TRUE", True),
        ("?binary=0", False),
        ("?binary=maybe", False),
        ("", False),
    ],
    ids=["one", "upper-case true", "zero", "garbage", "absent"],
)
def test_binary_query(client: TestClient, query: str, has_binary: bool) -> None:
    """`?binary=1|true` adds the nested binary object; other values do not."""
    response = client.get(f"/api/ip/192.168.1.0/24{query}")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "OK"
    assert ("binary" in body["address"]) is has_binary


def test_fields_query(client: TestClient) -> None:
    """`?fields=` keeps only the named address fields, binary included."""
    response = client.get(
        "/api/ip/[10.0.0.0/8,192.168.1.0/24]",
        params={"fields": "subnet_bits,binary", "binary": "1"},
    )

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "OK"
    for item in body["addresses"]:
        assert set(item["address"]) == {"subnet_bits", "binary"}
        assert set(item["meta"]) == {"permalink", "next_address"}


def test_unknown_field(client: TestClient) -> None:
    """An unknown field name answers INVALID_REQUEST naming it."""
    response = client.get("/api/ip/10.0.0.0/8", params={"fields": "netmask"})

    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "INVALID_REQUEST"
    assert "'netmask'" in body["message"]
