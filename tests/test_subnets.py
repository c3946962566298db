"""The Subnets account API (CONTRACT §3): save, list, get, delete, isolation."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.testclient import TestClient

from netcalc.app import create_app
from netcalc.errors import SubnetLimitReached
from netcalc.subnets.service import new_subnet, save_subnet
from netcalc.subnets.tables import subnets
from tests.support import Console, make_settings, token_body

SUBNETS = "/api/account/subnets"
BODY_LIMIT = 16 * 1024
FIELDS = {"id", "name", "network_address", "subnet_bits", "cidr_notation", "created_at"}
LAB = {"network_address": "10.1.2.3", "subnet_bits": 16, "name": "lab"}
# The /0 network: an address to save, not one to bind to.
EVERYWHERE = "0.0.0.0"  # noqa: S104


def bearer_for(client: TestClient, console: Console, email: str) -> dict[str, str]:
    """Headers carrying a token of new unscoped credentials of a new account."""
    issued = console.credentials(console.account(email))
    response = client.post("/api/auth/token", json=token_body(issued))
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']['access_token']}"}


def save(client: TestClient, headers: dict[str, str], subnet: Any) -> dict[str, Any]:
    """Save a subnet that must be accepted, and return it as the API shows it."""
    response = client.post(SUBNETS, json=subnet, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "OK"
    saved: dict[str, Any] = response.json()["subnet"]
    return saved


def post_raw(
    client: TestClient,
    headers: dict[str, str],
    body: bytes,
    content_type: str | None = "application/json",
) -> Any:
    """POST `body` exactly as given, with this Content-Type (or none)."""
    extra = {} if content_type is None else {"Content-Type": content_type}
    return client.post(SUBNETS, content=body, headers=headers | extra)


@pytest.fixture
def alice(client: TestClient, console: Console) -> dict[str, str]:
    """Bearer headers of one account holder."""
    return bearer_for(client, console, "alice@example.com")


@pytest.fixture
def bob(client: TestClient, console: Console) -> dict[str, str]:
    """Bearer headers of a second, unrelated account holder."""
    return bearer_for(client, console, "bob@example.com")


# --- the happy path --------------------------------------------------------


def test_new_account_lists_no_subnets(
    client: TestClient, alice: dict[str, str]
) -> None:
    """An account that saved nothing lists an empty array."""
    response = client.get(SUBNETS, headers=alice)

    assert response.status_code == 200
    assert response.json() == {"status": "OK", "subnets": []}


@pytest.mark.parametrize(
    ("address", "bits", "network", "cidr"),
    [
        pytest.param("10.1.2.3", 16, "10.1.0.0", "10.1.0.0/16", id="host-in-/16"),
        pytest.param(
            "192.168.1.77", 24, "192.168.1.0", "192.168.1.0/24", id="host-in-/24"
        ),
        pytest.param("172.16.0.0", 12, "172.16.0.0", "172.16.0.0/12", id="network"),
        pytest.param("10.0.0.1", 32, "10.0.0.1", "10.0.0.1/32", id="host-/32"),
        pytest.param("10.0.0.1", 31, "10.0.0.0", "10.0.0.0/31", id="point-to-/31"),
        pytest.param("8.8.8.8", 0, EVERYWHERE, "0.0.0.0/0", id="everything-/0"),
    ],
)
def test_save_normalises_to_the_network_address(
    client: TestClient,
    alice: dict[str, str],
    address: str,
    bits: int,
    network: str,
    cidr: str,
) -> None:
    """Any address inside the subnet is saved as the network's first address."""
    subnet = {"network_address": address, "subnet_bits": bits, "name": "office"}

    response = client.post(SUBNETS, json=subnet, headers=alice)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "OK"
    saved = body["subnet"]
    assert set(saved) == FIELDS
    assert saved["network_address"] == network
    assert saved["subnet_bits"] == bits
    assert saved["cidr_notation"] == cidr
    assert saved["name"] == "office"
    assert isinstance(saved["id"], str) and saved["id"]
    assert datetime.fromisoformat(saved["created_at"]).tzinfo is not None


def test_saved_subnets_are_listed(client: TestClient, alice: dict[str, str]) -> None:
    """The list holds every subnet the account saved."""
    first = save(client, alice, LAB)
    second = save(client, alice, LAB | {"name": "dmz", "network_address": "10.9.0.0"})

    response = client.get(SUBNETS, headers=alice)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "OK"
    assert sorted(body["subnets"], key=lambda s: s["id"]) == sorted(
        [first, second], key=lambda s: s["id"]
    )


def test_get_one_answers_a_list_of_one(
    client: TestClient, alice: dict[str, str]
) -> None:
    """Getting a saved subnet by id answers it as the only item of `subnets`."""
    saved = save(client, alice, LAB)

    response = client.get(f"{SUBNETS}/{saved['id']}", headers=alice)

    assert response.status_code == 200
    assert response.json() == {"status": "OK", "subnets": [saved]}


def test_delete_removes_the_subnet(client: TestClient, alice: dict[str, str]) -> None:
    """After a delete answers OK, the subnet is gone from get and list."""
    saved = save(client, alice, LAB)
    path = f"{SUBNETS}/{saved['id']}"

    deleted = client.delete(path, headers=alice)

    assert deleted.status_code == 200
    assert deleted.json() == {"status": "OK"}
    gone = client.get(path, headers=alice)
    assert gone.status_code == 400
    assert gone.json()["status"] == "NOT_FOUND"
    assert client.get(SUBNETS, headers=alice).json()["subnets"] == []


def test_delete_twice_is_not_found(client: TestClient, alice: dict[str, str]) -> None:
    """Deleting an already deleted subnet answers NOT_FOUND."""
    path = f"{SUBNETS}/{save(client, alice, LAB)['id']}"
    assert client.delete(path, headers=alice).status_code == 200

    response = client.delete(path, headers=alice)

    assert response.status_code == 400
    assert response.json()["status"] == "NOT_FOUND"


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_unknown_id_is_not_found(
    client: TestClient, alice: dict[str, str], method: str
) -> None:
    """An id nobody saved answers NOT_FOUND."""
    response = client.request(method, f"{SUBNETS}/{uuid.uuid4().hex}", headers=alice)

    assert response.status_code == 400
    assert response.json()["status"] == "NOT_FOUND"


# --- refused bodies --------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param(None, id="absent"),
        pytest.param("text/plain", id="text-plain"),
        pytest.param("application/x-www-form-urlencoded", id="form"),
        pytest.param("multipart/form-data; boundary=x", id="multipart"),
    ],
)
def test_body_not_sent_as_json_is_missing_header(
    client: TestClient, alice: dict[str, str], content_type: str | None
) -> None:
    """A body without a JSON Content-Type is refused with MISSING_HEADER."""
    response = post_raw(client, alice, json.dumps(LAB).encode(), content_type)

    assert response.status_code == 400
    assert response.json()["status"] == "MISSING_HEADER"


def test_json_content_type_with_charset_is_accepted(
    client: TestClient, alice: dict[str, str]
) -> None:
    """`application/json; charset=utf-8` is read as JSON."""
    body = json.dumps(LAB).encode()

    response = post_raw(client, alice, body, "application/json; charset=utf-8")

    assert response.status_code == 200
    assert response.json()["status"] == "OK"


@pytest.mark.parametrize(
    "field", ["network_address", "subnet_bits", "name"], ids=lambda f: f
)
@pytest.mark.parametrize(
    "blank",
    [
        pytest.param(..., id="absent"),
        pytest.param("", id="empty"),
        pytest.param(None, id="null"),
    ],
)
def test_absent_or_empty_field_is_missing_values(
    client: TestClient, alice: dict[str, str], field: str, blank: object
) -> None:
    """Each of the three fields is required and may not be empty."""
    subnet: dict[str, Any] = dict(LAB)
    if blank is ...:
        del subnet[field]
    else:
        subnet[field] = blank

    response = client.post(SUBNETS, json=subnet, headers=alice)

    assert response.status_code == 400
    assert response.json()["status"] == "MISSING_VALUES"
    assert response.json()["message"].startswith(f"The subnet has no {field}: ")


def test_empty_object_is_missing_values(
    client: TestClient, alice: dict[str, str]
) -> None:
    """An empty JSON object is refused with MISSING_VALUES."""
    response = client.post(SUBNETS, json={}, headers=alice)

    assert response.status_code == 400
    assert response.json() == {
        "status": "MISSING_VALUES",
        "message": "The subnet has no network_address, subnet_bits or name: "
        "send network_address, subnet_bits and name, none of them empty.",
    }


ADDRESS_MESSAGE = (
    "network_address must be an IPv4 address in dotted form, such as 192.168.1.0."
)
BITS_MESSAGE = "subnet_bits must be a whole number from 0 to 32."


@pytest.mark.parametrize(
    ("address", "bits", "message"),
    [
        pytest.param("256.0.0.1", 24, ADDRESS_MESSAGE, id="octet-256"),
        pytest.param("abc", 24, ADDRESS_MESSAGE, id="not-an-address"),
        pytest.param("10.0.0", 24, ADDRESS_MESSAGE, id="three-octets"),
        pytest.param("10.0.0.0/8", 8, ADDRESS_MESSAGE, id="cidr-in-address"),
        pytest.param("::1", 24, ADDRESS_MESSAGE, id="ipv6"),
        pytest.param(167772160, 24, ADDRESS_MESSAGE, id="address-as-number"),
        pytest.param("10.0.0.0", 33, BITS_MESSAGE, id="bits-33"),
        pytest.param("10.0.0.0", -1, BITS_MESSAGE, id="bits-negative"),
        pytest.param("10.0.0.0", True, BITS_MESSAGE, id="bits-true"),
        pytest.param("10.0.0.0", "x", BITS_MESSAGE, id="bits-text"),
        pytest.param("10.0.0.0", 24.5, BITS_MESSAGE, id="bits-fraction"),
        pytest.param("10.0.0.0", [24], BITS_MESSAGE, id="bits-array"),
        pytest.param(
            "10.0.0.0", "\u0662\u0664", BITS_MESSAGE, id="bits-arabic-indic-digits"
        ),
    ],
)
def test_invalid_network_is_refused(
    client: TestClient,
    alice: dict[str, str],
    address: object,
    bits: object,
    message: str,
) -> None:
    """An address or prefix length that is not IPv4 is NETWORK_ADDRESS_INVALID,
    with a message that names the value at fault."""
    subnet = {"network_address": address, "subnet_bits": bits, "name": "bad"}

    response = client.post(SUBNETS, json=subnet, headers=alice)

    assert response.status_code == 400
    assert response.json() == {"status": "NETWORK_ADDRESS_INVALID", "message": message}
    assert client.get(SUBNETS, headers=alice).json()["subnets"] == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"network_address=10.0.0.0", id="form-text"),
        pytest.param(b'{"name": "lab"', id="truncated-json"),
        pytest.param(b"", id="empty-body"),
        pytest.param(b"[1, 2]", id="array"),
        pytest.param(b'"10.0.0.0/8"', id="string"),
        pytest.param(b"null", id="null"),
        pytest.param(b"24", id="number"),
        pytest.param(b"\xff\xfe\x00", id="not-utf8"),
    ],
)
def test_body_not_a_json_object_is_invalid_request(
    client: TestClient, alice: dict[str, str], body: bytes
) -> None:
    """A JSON-labelled body that is not a JSON object is INVALID_REQUEST."""
    response = post_raw(client, alice, body)

    assert response.status_code == 400
    assert response.json()["status"] == "INVALID_REQUEST"


def test_body_over_the_limit_is_too_large(
    client: TestClient, alice: dict[str, str]
) -> None:
    """A body one byte over 16 KiB is refused with 413 REQUEST_TOO_LARGE."""
    compact = json.dumps(LAB).encode()
    # Trailing whitespace keeps it valid JSON, so only its size is wrong.
    body = compact + b" " * (BODY_LIMIT + 1 - len(compact))

    response = post_raw(client, alice, body)

    assert response.status_code == 413
    assert response.json()["status"] == "REQUEST_TOO_LARGE"
    assert client.get(SUBNETS, headers=alice).json()["subnets"] == []


def test_body_at_the_limit_is_accepted(
    client: TestClient, alice: dict[str, str]
) -> None:
    """A body of exactly 16 KiB is still read."""
    compact = json.dumps(LAB).encode()
    body = compact + b" " * (BODY_LIMIT - len(compact))

    response = post_raw(client, alice, body)

    assert response.status_code == 200
    assert response.json()["status"] == "OK"


# --- isolation between accounts --------------------------------------------


def test_other_account_lists_none_of_mine(
    client: TestClient, alice: dict[str, str], bob: dict[str, str]
) -> None:
    """One account's list never shows another account's subnets."""
    mine = save(client, alice, LAB)
    theirs = save(client, bob, LAB | {"name": "bob's"})

    alices = client.get(SUBNETS, headers=alice).json()["subnets"]
    bobs = client.get(SUBNETS, headers=bob).json()["subnets"]

    assert alices == [mine]
    assert bobs == [theirs]


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_other_accounts_id_looks_like_a_made_up_id(
    client: TestClient, alice: dict[str, str], bob: dict[str, str], method: str
) -> None:
    """Another account's subnet id answers exactly as an id nobody saved."""
    mine = save(client, alice, LAB)

    probe = client.request(method, f"{SUBNETS}/{mine['id']}", headers=bob)
    made_up = client.request(method, f"{SUBNETS}/{uuid.uuid4().hex}", headers=bob)

    assert probe.status_code == 400
    assert probe.json()["status"] == "NOT_FOUND"
    assert made_up.status_code == probe.status_code
    assert made_up.json() == probe.json()
    still_there = client.get(f"{SUBNETS}/{mine['id']}", headers=alice)
    assert still_there.status_code == 200
    assert still_there.json() == {"status": "OK", "subnets": [mine]}


@pytest.mark.parametrize(
    "name", ["   ", "\u200b\u200b", "\ufeff", " \u2060 ", "\u115f\u3164"]
)
def test_blank_name_is_missing_values(
    client: TestClient, alice: dict[str, str], name: str
) -> None:
    """A name of only spaces or characters that draw nothing counts as no name."""
    subnet = {"network_address": "10.0.0.0", "subnet_bits": 8, "name": name}
    response = client.post(SUBNETS, json=subnet, headers=alice)
    assert response.status_code == 400
    assert response.json()["status"] == "MISSING_VALUES"


@pytest.mark.parametrize(
    "name",
    [7, ["lab"], "n" * 101, "\ud800", "ok\udfff", "nul\u0000", "bell\u0007"],
    ids=[
        "number",
        "array",
        "too-long",
        "surrogate",
        "trailing-surrogate",
        "nul",
        "bell",
    ],
)
def test_name_of_wrong_shape_is_invalid_request(
    client: TestClient, alice: dict[str, str], name: object
) -> None:
    """A name that is not printable text of at most 100 characters is refused."""
    subnet = {"network_address": "10.0.0.0", "subnet_bits": 8, "name": name}
    # json.dumps escapes lone surrogates as JSON allows; httpx would refuse them.
    response = post_raw(client, alice, json.dumps(subnet).encode())
    assert response.status_code == 400
    assert response.json()["status"] == "INVALID_REQUEST"


def test_bits_as_ascii_digits_accepted(
    client: TestClient, alice: dict[str, str]
) -> None:
    """subnet_bits may be sent as a string of ASCII digits."""
    saved = save(
        client, alice, {"network_address": "10.9.8.7", "subnet_bits": "16", "name": "s"}
    )
    assert saved["cidr_notation"] == "10.9.0.0/16"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", SUBNETS, "GET, HEAD, POST"),
        ("PATCH", SUBNETS + "/0123456789abcdef", "DELETE, GET, HEAD"),
    ],
)
def test_a_method_no_route_takes_names_every_method_that_does(
    client: TestClient, alice: dict[str, str], method: str, path: str, allow: str
) -> None:
    """A 405 lists every method answered at the path, not just the first
    route's, in its Allow header and its message (RFC 9110 §15.5.6)."""
    response = client.request(method, path, headers=alice)
    assert response.status_code == 405
    assert response.json() == {
        "status": "METHOD_NOT_ALLOWED",
        "message": f"This endpoint only accepts {allow}.",
    }
    assert response.headers["allow"] == allow


# --- how many an account may keep -------------------------------------------


def test_an_account_saves_at_most_its_limit(
    tmp_path: Path, database_url: str, console: Console
) -> None:
    """Past NETCALC_SUBNETS_PER_ACCOUNT the save is refused, naming the limit;
    deleting one makes room again."""
    settings = make_settings(tmp_path, database_url=database_url, subnets_per_account=2)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        headers = bearer_for(client, console, "full@example.com")
        subnet = {"network_address": "10.0.0.0", "subnet_bits": 8, "name": "lab"}
        first, _ = save(client, headers, subnet), save(client, headers, subnet)

        refused = client.post(SUBNETS, json=subnet, headers=headers)
        assert refused.status_code == 400
        assert refused.json() == {
            "status": "SUBNET_LIMIT_REACHED",
            "message": "This account has saved 2 subnets, as many as it may: "
            "delete one before saving another.",
        }
        assert len(client.get(SUBNETS, headers=headers).json()["subnets"]) == 2

        client.delete(f"{SUBNETS}/{first['id']}", headers=headers)
        save(client, headers, subnet)


def test_saves_at_once_never_pass_the_limit(console: Console) -> None:
    """Twelve saves sent together to an account allowed three store three."""
    owner = console.account("racing@example.com")
    subnet = new_subnet({"network_address": "10.0.0.0", "subnet_bits": 8, "name": "x"})

    async def save_together(engine: AsyncEngine) -> list[bool]:
        async def one() -> bool:
            try:
                await save_subnet(engine, owner, subnet, limit=3)
            except SubnetLimitReached:
                return False
            return True

        return list(await asyncio.gather(*(one() for _ in range(12))))

    assert sorted(console.run(save_together)) == [False] * 9 + [True] * 3

    async def kept(engine: AsyncEngine) -> int:
        query = select(func.count()).where(subnets.c.account_id == owner)
        async with engine.connect() as connection:
            return int(await connection.scalar(query) or 0)

    assert console.run(kept) == 3
