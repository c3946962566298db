"""The routes answered before FastAPI's routing behave as FastAPI's do."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.testclient import TestClient

from netcalc import subnets
from netcalc.accounts.service import IssuedSecret
from netcalc.app import create_app
from netcalc.auth import oauth, routes
from netcalc.calculator import routes as calculator_routes
from netcalc.direct import DirectApp
from netcalc.security_headers import HEADERS
from netcalc.settings import Settings
from tests.support import Console, token_body

DIRECT = [
    ("POST", "/api/auth/token"),
    ("POST", "/oauth2/token"),
    ("POST", "/oauth2/introspect"),
    ("GET", "/api/account/subnets"),
]


@pytest.fixture
def issued(console: Console) -> IssuedSecret:
    """Credentials of a fresh account."""
    return console.credentials(console.account("direct@example.com"))


def _app(client: TestClient) -> DirectApp:
    app = client.app
    assert isinstance(app, DirectApp)
    return app


def test_the_hot_routes_are_direct(client: TestClient) -> None:
    """Token issuance, introspection and the subnet list skip FastAPI's routing."""
    assert sorted(_app(client).direct_routes) == sorted(DIRECT)


@pytest.mark.parametrize(("method", "path"), DIRECT)
def test_direct_routes_are_documented_routes(
    client: TestClient, method: str, path: str
) -> None:
    """Each direct route runs the very function FastAPI routes and documents."""
    app = _app(client)
    routers = (routes.router, oauth.router, subnets.router)
    routed = [
        route
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute)
        and route.path == path
        and method in route.methods
    ]
    assert [route.endpoint for route in routed] == [
        app.direct_routes[(method, path)].endpoint
    ]
    assert method.lower() in app.openapi()["paths"][path]


@pytest.mark.parametrize(("method", "path"), DIRECT)
def test_direct_errors_match_the_contract(
    client: TestClient, method: str, path: str
) -> None:
    """A refused direct call is JSON, never cached, with the security headers."""
    response = client.request(method, path)
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    for name, value in HEADERS:
        assert response.headers[name.decode()] == value.decode()


def test_success_carries_the_security_headers(
    client: TestClient, issued: IssuedSecret
) -> None:
    """A token answered directly has the same headers as any other answer."""
    response = client.post("/api/auth/token", json=token_body(issued))
    assert response.status_code == 200
    for name, value in HEADERS:
        assert response.headers[name.decode()] == value.decode()


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/api/auth/token/", 404),
        ("DELETE", "/api/account/subnets", 405),
        ("PUT", "/oauth2/introspect", 405),
    ],
)
def test_other_calls_go_through_fastapi(
    client: TestClient, issued: IssuedSecret, method: str, path: str, status: int
) -> None:
    """Near-miss paths and other methods get FastAPI's usual answers."""
    response = client.request(method, path, json=token_body(issued))
    assert response.status_code == status


@pytest.mark.parametrize(
    ("path", "shape"),
    [
        ("/api/auth/token", {"status": "SYSTEM_ERROR"}),
        ("/oauth2/token", {"error": "server_error"}),
        ("/oauth2/introspect", {"error": "server_error"}),
        ("/oauth2/revoke", {"error": "server_error"}),
    ],
)
def test_unexpected_failure_is_logged_once(
    console: Console,
    issued: IssuedSecret,
    caplog: pytest.LogCaptureFixture,
    path: str,
    shape: dict[str, str],
) -> None:
    """A database failure is a 500 in the endpoint's own error shape, with
    one traceback in the log."""

    async def break_schema(engine: AsyncEngine) -> None:
        async with engine.begin() as connection:
            await connection.execute(text("DROP TABLE credentials"))

    console.run(break_schema)
    app = create_app(console.settings)
    credentials = token_body(issued)
    form = {"token": "x"} | credentials
    with TestClient(app) as client, caplog.at_level(logging.ERROR):
        if path == "/api/auth/token":
            response = client.post(path, json=credentials)
        else:
            response = client.post(path, data=form)
    assert response.status_code == 500
    assert shape.items() <= response.json().items()
    # On PostgreSQL the revocation feed also reports the missing table.
    failures = [r for r in caplog.records if f"POST {path!r}" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].exc_info is not None


def test_framework_failures_carry_the_security_headers(
    console: Console, issued: IssuedSecret
) -> None:
    """A 500 answered by FastAPI's own error middleware has the headers too."""
    app = create_app(console.settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        token = client.post("/api/auth/token", json=token_body(issued)).json()
        bearer = {"Authorization": "Bearer " + token["token"]["access_token"]}

        async def break_schema(engine: AsyncEngine) -> None:
            async with engine.begin() as connection:
                await connection.execute(text("DROP TABLE subnets"))

        console.run(break_schema)
        response = client.get("/api/account/subnets/abc", headers=bearer)
    assert response.status_code == 500
    assert response.json()["status"] == "SYSTEM_ERROR"
    for name, value in HEADERS:
        assert response.headers[name.decode()] == value.decode()


CALCULATOR_CALLS = [
    "/api/ip/10.0.0.0/24",
    "/api/ip/10.0.0.0%2F8?binary=1",
    "/api/ip/[10.0.0.0/24,192.168.1.0/30]?fields=cidr_notation,network_address",
    "/api/ip/10.0.0.0/24?binary=0&binary=true&fields=&fields=subnet_bits",
    "/api/ip/10.0.0.0/24?binary",
    "/api/ip/10.0.0.0/24/",
    "/api/ip/10.0.0.0/33",
    "/api/ip/not-a-subnet",
    "/api/ip/%E2%82%AC",
    "/api/ip/",
    "/api/ip",
]


@pytest.fixture
def framework(settings: Settings) -> Iterator[TestClient]:
    """The same app with nothing answered directly: FastAPI routes it all."""
    app = create_app(settings)
    app.direct_routes.clear()
    app.direct_prefixes.clear()
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def assert_same_answer(direct: httpx.Response, routed: httpx.Response) -> None:
    """Status, body and headers are FastAPI's own."""
    assert direct.status_code == routed.status_code
    assert direct.content == routed.content
    assert direct.headers == routed.headers


@pytest.mark.parametrize("url", CALCULATOR_CALLS)
def test_the_calculator_answers_directly_as_fastapi_does(
    client: TestClient, framework: TestClient, url: str
) -> None:
    """Status, body and headers match FastAPI's own answer, errors included."""
    assert_same_answer(client.get(url), framework.get(url))


def _bearer(client: TestClient, issued: IssuedSecret) -> str:
    answer = client.post("/api/auth/token", json=token_body(issued))
    return f"Bearer {answer.json()['token']['access_token']}"


@pytest.mark.parametrize(
    "caller", ["reader", "writer only", "no header", "two values", "revoked"]
)
def test_the_subnet_list_answers_directly_as_fastapi_does(
    client: TestClient, framework: TestClient, console: Console, caller: str
) -> None:
    """The list's scope handler and its FastAPI route answer every caller
    alike: a token that may read, one that may not, none, a malformed one,
    and one of revoked credentials."""
    account = console.account("lists@example.com")
    reader = console.credentials(account)
    writer = console.credentials(account, scopes=("subnets:write",))
    client.post(
        "/api/account/subnets",
        json={"network_address": "10.1.0.0", "subnet_bits": 16, "name": "lab"},
        headers={"Authorization": _bearer(client, reader)},
    )
    headers = {
        "reader": {"Authorization": _bearer(client, reader)},
        "writer only": {"Authorization": _bearer(client, writer)},
        "no header": {},
        "two values": {"Authorization": "Bearer a b"},
        "revoked": {"Authorization": _bearer(client, reader)},
    }[caller]
    if caller == "revoked":
        console.revoke(reader.client_id)

    direct = client.get("/api/account/subnets", headers=headers)

    assert_same_answer(direct, framework.get("/api/account/subnets", headers=headers))
    expected = {"reader": 200, "writer only": 403}.get(caller, 401)
    assert direct.status_code == expected


def _scope(method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path}


@pytest.mark.parametrize(
    ("method", "path", "direct"),
    [
        ("GET", "/api/ip/10.0.0.0/24", True),
        ("GET", "/api/ip/[10.0.0.0/24]", True),
        ("GET", "/api/ip/", False),
        ("GET", "/api/ip", False),
        ("GET", "/api/ip/10.0.0.0\n/24", True),
        ("GET", "/api/ip/10.0.0.1\n", True),
        ("HEAD", "/api/ip/10.0.0.0/24", False),
        ("POST", "/api/ip/10.0.0.0/24", False),
        ("GET", "/api/ipx/10.0.0.0/24", False),
    ],
)
def test_the_calculator_prefix_takes_only_what_its_route_would(
    client: TestClient, method: str, path: str, direct: bool
) -> None:
    route = _app(client)._direct_route(_scope(method, path))
    assert (route is not None) == direct
    if direct:
        assert route is not None
        assert route.endpoint is calculator_routes.calculate


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/healthz%0a"),
        ("GET", "/api/account/subnets%0A"),
        ("POST", "/api/auth/token%0A"),
        ("POST", "/oauth2/token%0A"),
    ],
)
def test_a_path_ending_in_a_line_break_is_no_endpoint(
    client: TestClient, method: str, path: str
) -> None:
    """The break is not dropped to reach the route the rest of the path names."""
    answer = client.request(method, path)
    assert answer.status_code == 404
    assert answer.json() == {"status": "NOT_FOUND", "message": "No such endpoint."}
    for name, value in HEADERS:
        assert answer.headers[name.decode()] == value.decode()


@pytest.mark.parametrize(
    "path", ["/api/ip/1.2.3.4%0A", "/api/ip/10.0.0.0%0A/24", "/api/ip/[1.1.1.1,%0A]"]
)
def test_a_line_break_in_a_subnet_is_an_invalid_address(
    client: TestClient, path: str
) -> None:
    """The calculator refuses a subnet holding a line break as the contract
    refuses any unreadable subnet, wherever the break is."""
    answer = client.get(path)
    assert answer.status_code == 400
    assert answer.json()["status"] == "INVALID_ADDRESS"
