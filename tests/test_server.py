"""A real `netcalc serve` on loopback, driven by HTTP and by the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from netcalc.accounts import service
from netcalc.accounts.passwords import verify_password
from netcalc.cli.server import issuer_served_at
from tests.support import PASSWORD, Console, ServerProcess, make_settings
from tests.test_console import CSRF

pytestmark = pytest.mark.server


def create_credentials(server: ServerProcess, email: str, *args: str) -> dict[str, Any]:
    """Make an account and credentials through the CLI; returns the JSON it prints."""
    made = server.cli("accounts", "create", email, "--password-stdin", stdin=PASSWORD)
    assert made.returncode == 0, made.stderr
    created = server.cli("credentials", "create", "--account", email, "--json", *args)
    assert created.returncode == 0, created.stderr
    result: dict[str, Any] = json.loads(created.stdout)
    return result


def token_answer(server: ServerProcess, issued: dict[str, Any]) -> httpx.Response:
    """The server's answer to a token request with the issued credentials."""
    return httpx.post(
        server.url + "/api/auth/token",
        json={
            "client_id": issued["client_id"],
            "client_secret": issued["client_secret"],
            "grant_type": "client_credentials",
        },
        timeout=10,
    )


def get_token(server: ServerProcess, issued: dict[str, Any]) -> str:
    response = token_answer(server, issued)
    assert response.status_code == 200, response.text
    return str(response.json()["token"]["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_whole_flow(server: ServerProcess) -> None:
    """Credentials from the CLI get a token that saves and reads a subnet."""
    issued = create_credentials(server, "flow@example.com")
    token = get_token(server, issued)
    saved = httpx.post(
        server.url + "/api/account/subnets",
        json={"network_address": "192.168.7.9", "subnet_bits": 24, "name": "lab"},
        headers=bearer(token),
    )
    assert saved.status_code == 200
    assert saved.json()["subnet"]["cidr_notation"] == "192.168.7.0/24"
    listed = httpx.get(server.url + "/api/account/subnets", headers=bearer(token))
    assert listed.status_code == 200
    assert [s["name"] for s in listed.json()["subnets"]] == ["lab"]
    public = httpx.get(server.url + "/api/ip/192.168.7.9/24")
    assert public.status_code == 200
    assert public.json()["address"]["broadcast_address"] == "192.168.7.255"


def test_token_verifies_with_pyjwt_from_served_jwks(server: ServerProcess) -> None:
    """PyJWT's JWKS client verifies a token with the keys the server publishes."""
    token = get_token(server, create_credentials(server, "jwks@example.com"))
    keys = jwt.PyJWKClient(server.url + "/.well-known/jwks.json")
    signing_key = keys.get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        signing_key,
        algorithms=["ES256"],
        audience="netcalc",
        issuer=server.url,
    )
    assert claims["client_id"] == claims["sub"]


def test_tokens_requested_at_once_each_carry_their_own_client(
    server: ServerProcess,
) -> None:
    """Token requests from two clients sent at once, so that the server signs
    many in one turn, each get a valid token of their own client."""
    scopes = ("subnets:read", "subnets:write")
    clients = [
        create_credentials(server, f"burst{n}@example.com", "--scope", scope)
        | {"scope": scope}
        for n, scope in enumerate(scopes)
    ]

    async def burst() -> list[tuple[dict[str, Any], str]]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:

            async def token_of(issued: dict[str, Any]) -> tuple[dict[str, Any], str]:
                body = {
                    "client_id": issued["client_id"],
                    "client_secret": issued["client_secret"],
                    "grant_type": "client_credentials",
                }
                response = await client.post("/api/auth/token", json=body)
                assert response.status_code == 200, response.text
                return issued, response.json()["token"]["access_token"]

            return await asyncio.gather(*(token_of(c) for c in clients * 20))

    keys = jwt.PyJWKClient(server.url + "/.well-known/jwks.json")
    jtis = set()
    for issued, token in asyncio.run(burst()):
        claims = jwt.decode(
            token,
            keys.get_signing_key_from_jwt(token),
            algorithms=["ES256"],
            audience="netcalc",
            issuer=server.url,
        )
        assert claims["client_id"] == issued["client_id"]
        assert claims["scope"] == issued["scope"]
        jtis.add(claims["jti"])
    assert len(jtis) == 40


def test_cli_round_trip(server: ServerProcess) -> None:
    """Create, list, rotate and revoke through the CLI, as the contract lists."""
    issued = create_credentials(
        server, "cli@example.com", "--name", "ci", "--scope", "subnets:read"
    )
    listed = server.cli("credentials", "list", "--account", "cli@example.com", "--json")
    assert listed.returncode == 0
    (row,) = json.loads(listed.stdout)
    assert row["client_id"] == issued["client_id"]
    assert (row["name"], row["scopes"], row["status"]) == (
        "ci",
        ["subnets:read"],
        "active",
    )
    assert issued["client_secret"] not in listed.stdout

    rotated = server.cli("credentials", "rotate", issued["client_id"], "--json")
    assert rotated.returncode == 0
    new = json.loads(rotated.stdout)
    assert new["client_secret"] != issued["client_secret"]
    assert new["previous_secret_expires_at"] is not None
    get_token(server, issued)
    get_token(server, new)

    revoked = server.cli("credentials", "revoke", issued["client_id"])
    assert revoked.returncode == 0
    listed = server.cli("credentials", "list", "--account", "cli@example.com", "--json")
    assert json.loads(listed.stdout)[0]["status"] == "revoked"


def test_cli_create_json_says_what_the_credentials_may_do(
    server: ServerProcess,
) -> None:
    """`credentials create --json` prints the name, scopes and token lifetime
    beside the new secret, and nothing about a rotation that never happened."""
    issued = create_credentials(
        server,
        "shown@example.com",
        "--name",
        "nightly",
        "--scope",
        "subnets:read",
        "--ttl",
        "600",
    )
    assert set(issued) == {
        "client_id",
        "client_secret",
        "name",
        "scopes",
        "token_ttl",
    }
    assert (issued["name"], issued["scopes"], issued["token_ttl"]) == (
        "nightly",
        ["subnets:read"],
        600,
    )

    rotated = server.cli("credentials", "rotate", issued["client_id"], "--json")
    assert rotated.returncode == 0, rotated.stderr
    assert set(json.loads(rotated.stdout)) == {
        "client_id",
        "client_secret",
        "previous_secret_expires_at",
        "ended_grace_of_older_secret",
    }


def test_cli_rotate_says_until_when_the_old_secret_works(
    server: ServerProcess,
) -> None:
    """Rotating says when the previous secret stops, to the second, or that it
    stopped already when there is no grace."""
    issued = create_credentials(server, "grace@example.com")

    graced = server.cli("credentials", "rotate", issued["client_id"], "--grace", "60")
    assert graced.returncode == 0, graced.stderr
    (line,) = [x for x in graced.stdout.splitlines() if x.startswith("The previous")]
    assert re.fullmatch(
        r"The previous secret keeps working until "
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00\.",
        line,
    )

    ended = server.cli("credentials", "rotate", issued["client_id"], "--grace", "0")
    assert ended.returncode == 0, ended.stderr
    assert "The previous secret no longer works." in ended.stdout.splitlines()


def test_cli_rotate_says_when_it_stopped_an_older_secret(tmp_path: Path) -> None:
    """Rotating while an older secret is still in its grace says that secret
    stopped working, in the text and in --json, and says nothing of it
    otherwise."""
    process = ServerProcess(tmp_path / "older")
    assert process.cli("migrate").returncode == 0
    issued = create_credentials(process, "older@example.com")
    ended = "The secret before it, still in its grace period, stopped working now."

    first = process.cli("credentials", "rotate", issued["client_id"])
    assert first.returncode == 0, first.stderr
    assert ended not in first.stdout
    second = process.cli("credentials", "rotate", issued["client_id"])
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[-1] == ended

    as_json = [
        json.loads(process.cli("credentials", "rotate", *args, "--json").stdout)
        for args in (
            (issued["client_id"], "--grace", "0"),
            (issued["client_id"],),
        )
    ]
    assert [told["ended_grace_of_older_secret"] for told in as_json] == [True, False]


def test_credentials_table_shows_lifetime_and_grace(server: ServerProcess) -> None:
    """The table, like --json, tells a token lifetime and a rotation's grace."""
    issued = create_credentials(server, "table@example.com", "--ttl", "900")
    rotated = server.cli(
        "credentials", "rotate", issued["client_id"], "--grace", "3600", "--json"
    )
    assert rotated.returncode == 0, rotated.stderr
    until = json.loads(rotated.stdout)["previous_secret_expires_at"][:19]
    listed = server.cli("credentials", "list", "--account", "table@example.com")
    header, row = listed.stdout.splitlines()
    assert "TOKEN TTL" in header and "OLD SECRET UNTIL" in header
    assert "900 s" in row and until in row
    assert issued["client_secret"] not in listed.stdout


def test_demo_a_second_time_says_how_to_get_a_secret(server: ServerProcess) -> None:
    """Once accounts exist, `demo` makes none and names commands that run as
    the CLI was run."""
    first = server.cli("demo")
    assert first.returncode == 0, first.stderr
    assert "client_secret:" in first.stdout
    again = server.cli("demo")
    assert again.returncode == 0, again.stderr
    assert "no demo credentials were made" in again.stdout
    assert "client_secret:" not in again.stdout
    # The suite runs the CLI as `python -m netcalc`.
    listing = "'python -m netcalc credentials list --account demo@example.com'"
    assert listing in again.stdout
    # What it advises works even once the demo credentials are revoked.
    client_id = first.stdout.split("client_id:")[1].split()[0]
    assert server.cli("credentials", "revoke", client_id).returncode == 0
    advised = re.search(r"'python -m netcalc (credentials create [^']*)'", again.stdout)
    assert advised is not None, again.stdout
    made = server.cli(*advised.group(1).split())
    assert made.returncode == 0, made.stderr
    assert "client_secret:" in made.stdout


def test_demo_beside_other_accounts_names_commands_that_work(
    server: ServerProcess,
) -> None:
    """Beside accounts that are not the demo's, `demo` makes nothing and
    points at the accounts that exist instead of a demo account that does not."""
    create_credentials(server, "someone@example.com")
    again = server.cli("demo")
    assert again.returncode == 0, again.stderr
    assert "no demo account was made" in again.stdout
    assert "demo@example.com" not in again.stdout
    listed = server.cli("accounts", "list")
    assert "someone@example.com" in listed.stdout


def test_cli_says_when_an_account_is_in_that_state_already(
    server: ServerProcess,
) -> None:
    """`accounts disable` and `enable` tell a change from a repeat."""
    create_credentials(server, "state@example.com")
    said = [
        server.cli("accounts", command, "state@example.com").stdout.strip()
        for command in ("disable", "disable", "enable", "enable")
    ]
    assert said == [
        "Disabled state@example.com.",
        "state@example.com was disabled already; nothing changed.",
        "Enabled state@example.com.",
        "state@example.com was enabled already; nothing changed.",
    ]


def test_cli_errors_are_sentences(server: ServerProcess) -> None:
    """Mistakes get one clear message and a non-zero exit, no traceback."""
    result = server.cli("credentials", "create", "--account", "nobody@example.com")
    assert result.returncode == 1
    assert "No account has the email 'nobody@example.com'" in result.stderr
    assert "Traceback" not in result.stderr
    result = server.cli("credentials", "revoke", "nci_" + "0" * 32)
    assert result.returncode == 1
    assert "No credentials have the client id" in result.stderr


@pytest.mark.parametrize("command", ["serve", "demo"])
@pytest.mark.parametrize("port", ["0", "65536", "70000"])
def test_ports_outside_the_tcp_range_are_refused(
    tmp_path: Path, command: str, port: str
) -> None:
    """A port TCP cannot have is refused, not wrapped around to another."""
    refused = ServerProcess(tmp_path / "ports").cli(command, "--port", port)
    assert refused.returncode == 2
    assert "Invalid value for '--port'" in refused.stderr
    assert not (tmp_path / "ports" / "netcalc.db").exists()


def test_a_port_in_use_is_named_before_serving(tmp_path: Path) -> None:
    """`serve` on a port another program holds says so in one sentence,
    before it claims to serve or creates a database."""
    server = ServerProcess(tmp_path / "busy")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", server.port))
        holder.listen()
        refused = server.cli("serve", "--port", str(server.port))
    assert refused.returncode == 1
    assert refused.stderr == (
        f"Error: Cannot listen on {server.url}: another program is using that "
        "port. Stop it, or choose another port with --port (PORT=N for make run).\n"
    )
    assert not (tmp_path / "busy" / "netcalc.db").exists()


def test_an_address_not_of_this_machine_is_refused(tmp_path: Path) -> None:
    """A --host this machine has no interface for is named, not retried."""
    refused = ServerProcess(tmp_path / "away").cli("serve", "--host", "192.0.2.1")
    assert refused.returncode == 1
    assert refused.stderr.startswith("Error: Cannot listen on http://192.0.2.1:8000")
    assert refused.stderr.endswith("Check the --host address.\n")


def test_a_bracketed_ipv6_host_is_served(tmp_path: Path) -> None:
    """`--host '[::1]'`, written as in a URL, listens on ::1."""
    server = ServerProcess(tmp_path / "v6", host="[::1]")
    server.start()
    try:
        assert httpx.get(server.url + "/healthz").json() == {"status": "OK"}
        assert f"serving on {server.url} with 1 worker." in server.log()
    finally:
        server.stop()


def test_another_server_secret_is_named_in_one_sentence(tmp_path: Path) -> None:
    """Served with a secret other than the one that sealed its signing keys,
    as an instance of a deployment given another one, `serve` stops with a
    sentence naming the setting, not a traceback."""
    server = ServerProcess(tmp_path / "secret")
    server.start()
    server.stop()
    server.env["NETCALC_SECRET_KEY"] = "another-server-secret-0123456789abcdef"
    refused = server.cli("serve", "--port", str(server.port))
    assert refused.returncode == 1
    assert refused.stderr.startswith(
        "Error: The server secret does not open the signing keys stored in "
        "this database: set NETCALC_SECRET_KEY"
    )
    assert "Traceback" not in refused.stderr
    assert len(refused.stderr.splitlines()) == 1


ANOTHER_SECRET = "another-server-secret-0123456789abcdef"


@pytest.mark.parametrize(
    "command",
    [
        ("credentials", "create", "--account", "keys@example.com"),
        ("credentials", "rotate", "CLIENT_ID"),
        ("keys", "rotate"),
    ],
    ids=["credentials-create", "credentials-rotate", "keys-rotate"],
)
def test_commands_refuse_a_secret_that_does_not_open_the_keys(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    """A command that hashes a client secret or seals a key, given another
    server secret than the servers', refuses and changes nothing: what it
    made would never work on them."""
    served = ServerProcess(tmp_path / "d")
    served.start()
    served.stop()
    issued = create_credentials(served, "keys@example.com")
    server = ServerProcess(tmp_path / "d", NETCALC_SECRET_KEY=ANOTHER_SECRET)
    before = server.cli("credentials", "list", "--account", "keys@example.com")
    keys_before = server.cli("audit", "--json").stdout.count("keys.rotated")

    argv = [issued["client_id"] if arg == "CLIENT_ID" else arg for arg in command]
    refused = server.cli(*argv)

    assert refused.returncode == 1
    assert refused.stderr.startswith(
        "Error: The server secret does not open the signing keys stored in "
        "this database"
    )
    assert refused.stdout == ""
    after = server.cli("credentials", "list", "--account", "keys@example.com")
    assert after.stdout == before.stdout
    assert server.cli("audit", "--json").stdout.count("keys.rotated") == keys_before
    served.start()
    try:
        get_token(served, issued)
    finally:
        served.stop()


def test_demo_with_another_secret_makes_no_account(tmp_path: Path) -> None:
    """`demo` refused for a wrong server secret leaves no account behind,
    so a second try with the right secret still makes the demo."""
    served = ServerProcess(tmp_path / "d")
    served.start()
    served.stop()
    wrong = ServerProcess(tmp_path / "d", NETCALC_SECRET_KEY=ANOTHER_SECRET)
    refused = wrong.cli("demo")
    assert refused.returncode == 1
    assert "does not open the signing keys" in refused.stderr
    assert served.cli("accounts", "list", "--json").stdout.strip() == "[]"
    made = served.cli("demo")
    assert made.returncode == 0, made.stderr
    assert "client_secret:" in made.stdout


def test_the_first_command_that_hashes_pins_the_secret(tmp_path: Path) -> None:
    """On a database without keys, the first command that hashes a client
    secret makes the first key with its server secret, so a command run
    with another secret afterwards is refused."""
    first = ServerProcess(tmp_path / "d")
    assert first.cli("migrate").returncode == 0
    issued = create_credentials(first, "first@example.com")

    other = ServerProcess(tmp_path / "d", NETCALC_SECRET_KEY=ANOTHER_SECRET)
    refused = other.cli("credentials", "create", "--account", "first@example.com")
    assert refused.returncode == 1
    assert "does not open the signing keys" in refused.stderr
    first.start()
    try:
        get_token(first, issued)
    finally:
        first.stop()


def test_a_missing_secret_is_not_made_anew_for_existing_keys(tmp_path: Path) -> None:
    """With the secret file gone but keys in the database, a command says
    which secret it needs and writes no new one."""
    server = ServerProcess(tmp_path / "d")
    server.start()
    server.stop()
    create_credentials(server, "gone@example.com")
    key_file = tmp_path / "d" / "secret.key"
    key_file.unlink()

    refused = server.cli("credentials", "create", "--account", "gone@example.com")

    assert refused.returncode == 1
    assert refused.stderr == (
        "Error: This database's signing keys were sealed with a server secret, "
        "and none is set: set NETCALC_SECRET_KEY (or put it in the file "
        f"NETCALC_SECRET_KEY_FILE names, now '{key_file}') to the secret the "
        "servers use.\n"
    )
    assert not key_file.exists()


def test_cli_does_not_make_a_database_it_was_not_asked_to(tmp_path: Path) -> None:
    """A command reading a database that is not there says so and creates
    nothing, since the setting is likelier mistyped than new."""
    cli = ServerProcess(tmp_path / "none").cli
    listed = cli("credentials", "list", "--account", "a@example.com")
    assert listed.returncode == 1
    assert "There is no database at" in listed.stderr
    assert "migrate" in listed.stderr
    assert not (tmp_path / "none" / "netcalc.db").exists()
    created = cli("migrate")
    assert created.returncode == 0
    assert created.stdout.startswith("Created the database at ")
    assert (tmp_path / "none" / "netcalc.db").exists()
    assert cli("migrate").stdout.startswith("The database is up to date")


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("file", "file is not a database"),
        (
            "postgresql://netcalc:hunter2@127.0.0.1:1/netcalc",
            "postgresql://netcalc:***@",
        ),
        ("postgresql://netcalc@127.0.0.1:1/netcalc?password=hunter2", "127.0.0.1:1"),
        ("postgresql://netcalc:hunter2@127.0.0.1:port/netcalc", "is not a URL"),
    ],
    ids=["not-a-database", "unreachable-server", "password-in-query", "bad-port"],
)
def test_cli_names_a_database_it_cannot_use(
    tmp_path: Path, url: str, said: str
) -> None:
    """One line names the database and the reason, without its password."""
    folder = tmp_path / "unusable"
    if url == "file":
        folder.mkdir()
        (folder / "netcalc.db").write_text("not a database\n")
        process = ServerProcess(folder)
    else:
        process = ServerProcess(folder, NETCALC_DATABASE_URL=url)
    refused = process.cli("credentials", "list", "--account", "a@example.com")
    assert refused.returncode == 1
    assert said in refused.stderr
    assert "Traceback" not in refused.stderr
    assert "hunter2" not in refused.stderr
    assert len(refused.stderr.splitlines()) == 1


def test_password_on_stdin_that_is_not_text_is_refused(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 get one sentence, not a traceback."""
    process = ServerProcess(tmp_path / "bytes")
    assert process.cli("migrate").returncode == 0
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "netcalc",
            "accounts",
            "create",
            "x@example.com",
            "--password-stdin",
        ],
        input=b"Secret\xff\xfe-1234567\n",
        capture_output=True,
        env=process.env,
        cwd=process.folder,
        timeout=60,
        check=False,
    )
    assert made.returncode == 1
    assert b"not UTF-8" in made.stderr
    assert b"Traceback" not in made.stderr


NEW_PASSWORD = "a new and longer one"


def test_cli_sets_a_new_password(tmp_path: Path) -> None:
    """`accounts password` reads a password from stdin under the rules of
    `accounts create`, and from then on only the new password is right."""
    process = ServerProcess(tmp_path / "password")
    assert process.cli("migrate").returncode == 0
    for email in ("reset@example.com", "other@example.com"):
        made = process.cli(
            "accounts", "create", email, "--password-stdin", stdin=PASSWORD
        )
        assert made.returncode == 0, made.stderr

    too_short = process.cli(
        "accounts",
        "password",
        "reset@example.com",
        "--password-stdin",
        stdin="too short",
    )
    created_too_short = process.cli(
        "accounts", "create", "x@example.com", "--password-stdin", stdin="too short"
    )
    assert (too_short.returncode, too_short.stderr) == (
        created_too_short.returncode,
        created_too_short.stderr,
    )
    assert too_short.stderr == "Error: A password needs at least 10 characters.\n"

    changed = process.cli(
        "accounts",
        "password",
        "Reset@Example.com",
        "--password-stdin",
        stdin=NEW_PASSWORD + "\n",
    )
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout == (
        "Set a new password for reset@example.com; every console session of the "
        "account has ended.\n"
    )
    assert NEW_PASSWORD not in changed.stdout + changed.stderr
    database = Console(make_settings(process.folder))
    stored = {
        email: database.run(lambda e, email=email: service.find_account(e, email))
        for email in ("reset@example.com", "other@example.com")
    }
    reset, other = (account["password_hash"] for account in stored.values())
    assert verify_password(reset, NEW_PASSWORD)
    assert not verify_password(reset, PASSWORD)
    assert verify_password(other, PASSWORD)


def test_cli_password_for_an_unknown_email_fails_as_other_commands_do(
    tmp_path: Path,
) -> None:
    """`accounts password` for an email no account has gives the error and
    exit code `credentials list` gives for it."""
    process = ServerProcess(tmp_path / "unknown")
    assert process.cli("migrate").returncode == 0
    listed = process.cli("credentials", "list", "--account", "nobody@example.com")
    refused = process.cli(
        "accounts",
        "password",
        "nobody@example.com",
        "--password-stdin",
        stdin=NEW_PASSWORD,
    )
    assert (refused.returncode, refused.stderr) == (1, listed.stderr)
    assert refused.stderr.startswith(
        "Error: No account has the email 'nobody@example.com'"
    )


def test_revocation_through_cli_bites_at_once(server: ServerProcess) -> None:
    """From the moment `credentials revoke` returns, the token is refused."""
    issued = create_credentials(server, "revoke@example.com")
    token = get_token(server, issued)
    url = server.url + "/api/account/subnets"
    assert httpx.get(url, headers=bearer(token)).status_code == 200
    assert server.cli("credentials", "revoke", issued["client_id"]).returncode == 0
    refused = httpx.get(url, headers=bearer(token))
    assert refused.status_code == 401
    assert refused.json()["status"] == "INVALID_GRANT"


def test_restart_keeps_accounts_credentials_and_keys(server: ServerProcess) -> None:
    """After a restart the same secret works and old tokens still verify."""
    issued = create_credentials(server, "restart@example.com")
    token = get_token(server, issued)
    kids = httpx.get(server.url + "/.well-known/jwks.json").json()["keys"]
    server.stop()
    server.start()
    assert httpx.get(server.url + "/.well-known/jwks.json").json()["keys"] == kids
    response = httpx.get(server.url + "/api/account/subnets", headers=bearer(token))
    assert response.status_code == 200
    get_token(server, issued)


def published_kids(server: ServerProcess, count: int) -> list[str]:
    """The key ids of the served key set, once it holds `count` keys."""
    deadline = time.monotonic() + 10
    kids: list[str] = []
    while time.monotonic() < deadline and len(kids) < count:
        time.sleep(0.2)
        jwks = httpx.get(server.url + "/.well-known/jwks.json").json()
        kids = [key["kid"] for key in jwks["keys"]]
    assert len(kids) == count, kids
    return kids


def test_keys_rotate_publishes_before_signing(tmp_path: Path) -> None:
    """`keys rotate` publishes a new key while the old one goes on signing;
    `--now` signs with a new key at once; every token keeps working."""
    server = ServerProcess(tmp_path / "rotate", NETCALC_KEY_REFRESH_SECONDS="0.5")
    server.start()
    try:
        issued = create_credentials(server, "keys@example.com")
        first = get_token(server, issued)
        staged = server.cli("keys", "rotate")
        assert staged.returncode == 0, staged.stderr
        assert "publish it at their next key refresh" in staged.stdout
        published_kids(server, 2)
        second = get_token(server, issued)
        assert kid_of(second) == kid_of(first)
        assert server.cli("keys", "rotate", "--now").returncode == 0
        kids = published_kids(server, 3)
        deadline = time.monotonic() + 10
        third = get_token(server, issued)
        while kid_of(third) == kid_of(first) and time.monotonic() < deadline:
            time.sleep(0.2)
            third = get_token(server, issued)
        assert kid_of(third) == kids[0] != kid_of(first)
        for token in (first, second, third):
            url = server.url + "/api/account/subnets"
            assert httpx.get(url, headers=bearer(token)).status_code == 200
    finally:
        server.stop()


def test_keys_rotate_withdraw_refuses_the_old_keys_tokens(tmp_path: Path) -> None:
    """`keys rotate --withdraw`, for a key that may have leaked: from the
    server's next key refresh, the old key is no longer published and a
    token it signed is refused; new tokens are signed with the new key."""
    server = ServerProcess(tmp_path / "withdraw", NETCALC_KEY_REFRESH_SECONDS="0.5")
    server.start()
    try:
        issued = create_credentials(server, "withdraw@example.com")
        old = get_token(server, issued)
        url = server.url + "/api/account/subnets"
        assert httpx.get(url, headers=bearer(old)).status_code == 200
        withdrawn = server.cli("keys", "rotate", "--withdraw")
        assert withdrawn.returncode == 0, withdrawn.stderr
        assert "withdrawn" in withdrawn.stdout
        deadline = time.monotonic() + 10
        while (
            httpx.get(url, headers=bearer(old)).status_code == 200
            and time.monotonic() < deadline
        ):
            time.sleep(0.2)
        assert httpx.get(url, headers=bearer(old)).status_code == 401
        (kid,) = published_kids(server, 1)
        new = get_token(server, issued)
        assert kid_of(new) == kid != kid_of(old)
        assert httpx.get(url, headers=bearer(new)).status_code == 200
    finally:
        server.stop()


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def test_a_changed_signing_alg_is_published_before_it_signs(tmp_path: Path) -> None:
    """Restarted with another NETCALC_SIGNING_ALG, `serve` stages a key of it
    as `keys rotate` does, once: the old key goes on signing while both are
    published, and the metadata names both algorithms."""
    server = ServerProcess(tmp_path / "alg")
    server.start()
    try:
        issued = create_credentials(server, "alg@example.com")
        first = get_token(server, issued)
    finally:
        server.stop()
    server.env["NETCALC_SIGNING_ALG"] = "RS256"
    for _ in range(2):
        server.start()
        try:
            second = get_token(server, issued)
            assert kid_of(second) == kid_of(first)
            assert jwt.get_unverified_header(second)["alg"] == "ES256"
            published_kids(server, 2)
            metadata_url = server.url + "/.well-known/oauth-authorization-server"
            algs = httpx.get(metadata_url).json()[
                "access_token_signing_alg_values_supported"
            ]
            assert algs == ["ES256", "RS256"]
        finally:
            server.stop()
    assert server.log().count("NETCALC_SIGNING_ALG is now RS256") == 1
    assert "Until then tokens are signed ES256." in server.log()


def test_token_log_line_has_no_secret(server: ServerProcess) -> None:
    """Each token request logs one JSON line with id and status, never secrets;
    a refused grant_type is logged with the client id that came with it."""
    issued = create_credentials(server, "log@example.com")
    token = get_token(server, issued)
    for secret, grant_type in (
        ("ncs_wrong", "client_credentials"),
        (issued["client_secret"], "password"),
    ):
        httpx.post(
            server.url + "/api/auth/token",
            json={
                "client_id": issued["client_id"],
                "client_secret": secret,
                "grant_type": grant_type,
            },
        )
    server.stop()
    lines = [
        json.loads(line)
        for line in server.log().splitlines()
        if '"token_request"' in line
    ]
    assert [line["status"] for line in lines] == [
        "OK",
        "INVALID_CREDENTIALS",
        "INVALID_GRANT_TYPE",
    ]
    assert all(line["client_id"] == issued["client_id"] for line in lines)
    assert all("latency_ms" in line and line["remote_addr"] for line in lines)
    log = server.log()
    assert issued["client_secret"] not in log
    assert token not in log and token.split(".")[2] not in log


def test_operations_endpoints(server: ServerProcess) -> None:
    """Health, readiness and metrics answer; metrics count token requests."""
    get_token(server, create_credentials(server, "ops@example.com"))
    assert httpx.get(server.url + "/healthz").json() == {"status": "OK"}
    assert httpx.get(server.url + "/readyz").json() == {"status": "OK"}
    metrics = httpx.get(server.url + "/metrics").text
    assert (
        'netcalc_token_requests_total{endpoint="/api/auth/token",status="OK"} 1.0'
        in (metrics)
    )
    assert "netcalc_token_request_seconds_bucket" in metrics


def token_requests_counted(metrics: str) -> float:
    """The OK token requests a scrape of /metrics reports."""
    line = 'netcalc_token_requests_total{endpoint="/api/auth/token",status="OK"} '
    found = [row for row in metrics.splitlines() if row.startswith(line)]
    return float(found[0].removeprefix(line)) if found else 0.0


def test_every_scrape_counts_every_workers_requests(tmp_path: Path) -> None:
    """With two workers behind one port, each scrape, whichever worker takes
    it, reports the token requests both workers answered.

    The requests and the scrapes each come on a connection of their own, 16
    at a time, so the workers share them; a worker that reported only its
    own requests would fail most scrapes.
    """
    server = ServerProcess(tmp_path / "two", workers=2)
    server.start()
    try:
        issued = create_credentials(server, "workers@example.com")
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda _: get_token(server, issued), range(64)))
            deadline = time.monotonic() + 15
            first = 0.0
            while first != 64 and time.monotonic() < deadline:
                time.sleep(0.2)
                first = token_requests_counted(httpx.get(server.url + "/metrics").text)
            scrapes = pool.map(lambda _: httpx.get(server.url + "/metrics"), range(32))
            counted = [token_requests_counted(scrape.text) for scrape in scrapes]
    finally:
        server.stop()
    assert first == 64
    assert counted == [64.0] * 32


def worker_pids(server: ServerProcess) -> list[int]:
    """The worker processes of a multi-worker server."""
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text()
    return [
        int(pid)
        for pid in children.split()
        if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def test_a_worker_that_dies_is_logged_as_json(tmp_path: Path) -> None:
    """A worker killed outright leaves a JSON line saying so, and another
    takes its place."""
    server = ServerProcess(tmp_path / "dying", workers=2)
    server.start()
    try:
        doomed = worker_pids(server)[0]
        os.kill(doomed, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while f"Child process [{doomed}] died" not in server.log():
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.2)
        assert httpx.get(server.url + "/healthz").status_code == 200
    finally:
        server.stop()
    (line,) = [row for row in server.log().splitlines() if "died" in row]
    assert json.loads(line)["level"] == "info"


def test_issuer_follows_the_address_served_unless_set(tmp_path: Path) -> None:
    """Without NETCALC_ISSUER, the metadata and the tokens' `iss` name the
    port `serve` listens on, in every worker."""
    server = ServerProcess(tmp_path / "issuer", workers=2)
    del server.env["NETCALC_ISSUER"]
    server.start()
    try:
        metadata_url = server.url + "/.well-known/oauth-authorization-server"
        metadata = httpx.get(metadata_url).json()
        assert metadata["issuer"] == server.url
        assert f"netcalc serving on {server.url} with 2 workers." in server.log()
        assert metadata["token_endpoint"] == server.url + "/oauth2/token"
        issued = create_credentials(server, "issuer@example.com")
        for _ in range(4):
            claims = jwt.decode(
                get_token(server, issued), options={"verify_signature": False}
            )
            assert claims["iss"] == server.url
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("host", "issuer", "warned"),
    [
        ("0.0.0.0", "http://127.0.0.1:9000", True),  # noqa: S104
        ("::", "http://127.0.0.1:9000", True),
        ("0:0:0:0:0:0:0:0", "http://127.0.0.1:9000", True),
        ("::ffff:0.0.0.0", "http://127.0.0.1:9000", True),
        ("::1", "http://[::1]:9000", False),
        ("[::1]", "http://[::1]:9000", False),
        ("10.0.0.5", "http://10.0.0.5:9000", False),
    ],
)
def test_issuer_named_from_the_listening_address(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    host: str,
    issuer: str,
    warned: bool,
) -> None:
    """An address of every interface names loopback and asks for the setting."""
    # Set, then removed: the test's end puts the environment back as it was.
    monkeypatch.setenv("NETCALC_ISSUER", "http://replaced.example")
    monkeypatch.delenv("NETCALC_ISSUER")
    assert issuer_served_at(host, 9000).issuer == issuer
    assert ("set it to the URL clients reach" in capsys.readouterr().err) is warned


def test_an_unset_issuer_on_a_shared_database_is_warned_of(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Instances sharing a database would each name their own address and
    refuse one another's tokens, so the issuer must be set on all of them."""
    monkeypatch.setenv("NETCALC_ISSUER", "http://replaced.example")
    monkeypatch.delenv("NETCALC_ISSUER")
    issuer_served_at("10.0.0.5", 8000, shared=True)
    assert "the same on every instance" in capsys.readouterr().err


def test_revocation_reaches_every_worker(tmp_path: Path) -> None:
    """With several workers, no worker accepts a token after its revocation."""
    server = ServerProcess(tmp_path / "workers", workers=2)
    server.start()
    try:
        issued = create_credentials(server, "workers@example.com")
        token = get_token(server, issued)
        assert server.cli("credentials", "revoke", issued["client_id"]).returncode == 0
        url = server.url + "/api/account/subnets"
        # Fresh connections spread over both workers.
        statuses = {
            httpx.get(url, headers=bearer(token)).status_code for _ in range(20)
        }
        assert statuses == {401}
    finally:
        server.stop()


def test_concurrent_guesses_cannot_pass_the_throttle(tmp_path: Path) -> None:
    """A burst of wrong secrets sent at once gets at most the limit of answers."""
    server = ServerProcess(
        tmp_path / "burst", NETCALC_FAILED_AUTH_PER_CLIENT="5/minute"
    )
    server.start()
    try:
        issued = create_credentials(server, "burst@example.com")
        body = {
            "client_id": issued["client_id"],
            "client_secret": "ncs_" + "A" * 49,
            "grant_type": "client_credentials",
        }

        async def burst() -> list[str]:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                responses = await asyncio.gather(
                    *(client.post("/api/auth/token", json=body) for _ in range(30))
                )
            return [response.json()["status"] for response in responses]

        statuses = asyncio.run(burst())
        assert statuses.count("INVALID_CREDENTIALS") == 5
        assert statuses.count("TOO_MANY_REQUESTS") == 25
    finally:
        server.stop()


def test_forwarded_for_is_not_trusted_by_default(tmp_path: Path) -> None:
    """A caller cannot dodge the address limit by claiming another address."""
    server = ServerProcess(tmp_path / "xff", NETCALC_FAILED_AUTH_PER_ADDRESS="3/minute")
    server.start()
    try:
        url = server.url + "/api/auth/token"
        for index in range(3):
            body = {
                "client_id": f"nci_{index:032x}",
                "client_secret": "x",
                "grant_type": "client_credentials",
            }
            assert (
                httpx.post(url, json=body).json()["status"] == "CREDENTIALS_NOT_FOUND"
            )
        spoofed = httpx.post(url, json=body, headers={"X-Forwarded-For": "10.9.9.9"})
        assert spoofed.status_code == 429
    finally:
        server.stop()


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM)."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmHWM:\s+(\d+) kB$", status, re.MULTILINE)
    assert found, status
    return int(found.group(1)) / 1024


def test_sign_ups_sent_together_hash_a_few_at_a_time(tmp_path: Path) -> None:
    """Twelve sign-ups at once all succeed, and the server's memory peaks at
    a few argon2id hashes' worth (64 MiB each), not twelve."""
    server = ServerProcess(tmp_path / "signups", NETCALC_SIGNUPS_PER_ADDRESS="20/hour")
    server.start()
    try:
        before = peak_rss_mib(server.pid)

        async def sign_up(number: int) -> int:
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                page = await client.get("/signup")
                csrf = CSRF.search(page.text)
                assert csrf, page.text
                form = {
                    "csrf_token": csrf.group(1),
                    "email": f"together{number}@example.com",
                    "password": PASSWORD,
                    "password_again": PASSWORD,
                }
                return (await client.post("/signup", data=form)).status_code

        async def together() -> list[int]:
            return list(await asyncio.gather(*(sign_up(n) for n in range(12))))

        assert asyncio.run(together()) == [303] * 12
        assert peak_rss_mib(server.pid) - before < 4 * 64
    finally:
        server.stop()


def test_revoked_while_the_body_arrives_saves_nothing(server: ServerProcess) -> None:
    """Credentials revoked after a save's head was read but before its body
    arrived: the save is refused, and nothing is stored."""
    issued = create_credentials(server, "slowbody@example.com")
    token = get_token(server, issued)
    body = b'{"network_address": "10.1.2.0", "subnet_bits": 24, "name": "late"}'
    head = (
        "POST /api/account/subnets HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\n"
        f"Authorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as held:
        held.sendall(head)
        # The head is read and the token checked while the body is awaited.
        time.sleep(0.5)
        assert server.cli("credentials", "revoke", issued["client_id"]).returncode == 0
        held.sendall(body)
        answer = held.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 401 "), answer
    created = server.cli(
        "credentials", "create", "--account", "slowbody@example.com", "--json"
    )
    assert created.returncode == 0, created.stderr
    fresh = get_token(server, json.loads(created.stdout))
    listed = httpx.get(server.url + "/api/account/subnets", headers=bearer(fresh))
    assert listed.json()["subnets"] == []


def test_every_save_of_a_deep_pipeline_is_answered(server: ServerProcess) -> None:
    """40 saves pipelined in one write, past the depth of 32: each save that
    ran is answered 200, in order, before the 400 that refuses the rest."""
    issued = create_credentials(server, "pipeline@example.com")
    token = get_token(server, issued)
    body = b'{"network_address": "10.9.0.0", "subnet_bits": 24, "name": "p"}'
    save = (
        b"POST /api/account/subnets HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: Bearer " + token.encode() + b"\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(save * 40)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    *saved, refused = [int(code) for code in re.findall(rb"HTTP/1.1 (\d{3}) ", reply)]
    assert saved and set(saved) == {200}
    assert refused == 400
    listed = httpx.get(server.url + "/api/account/subnets", headers=bearer(token))
    assert len(listed.json()["subnets"]) == len(saved)
