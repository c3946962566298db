"""The peers under test: each started as it runs in production, checked, measured.

Every peer serves one confidential client for the client credentials grant
with WORKERS processes on 127.0.0.1: node-oidc-provider as a node `cluster`
(opaque tokens, then JWT access tokens), Authlib's Flask server and
django-oauth-toolkit under gunicorn's sync workers (the toolkit with its
default hashed client secret, then with a plain one). Before a peer is
measured, one real token request must answer 200 with an access_token of
the expected shape; a peer that fails is reported, and the others still run.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import secrets
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from loadgen import TOKEN, Load, Result, Section, Workload, measure
from peer_install import Installed
from processes import (
    HOST,
    BenchError,
    basic_credentials,
    form_post,
    free_port,
    run_command,
    server,
    url,
    wait_until,
)
from report import log_notes

WORKERS = 2
"""Processes per peer, and netcalc's in the side-by-side rows: one per core."""

PEERS_DIR = Path(__file__).resolve().parent / "peers"
"""The peers' apps and configuration, written for this benchmark."""

SETUP_SECONDS = 120.0
"""How long creating a peer's database and client may take."""

DRAIN_SECONDS = 120.0
"""How long a peer may take to answer once its warm-up queue is through."""

GRANT = "grant_type=client_credentials"
"""The token request's form body; the client authenticates with Basic."""

PEER_ERROR = re.compile(r"Traceback|\bError\b|\[ERROR\]|ERROR in|CRITICAL")
"""A peer log line that reports a failure."""


OIDC, AUTHLIB, DOT = "oidc-provider", "authlib", "django-oauth-toolkit"
"""The three peer programs, as `Peer.program` names them."""

GUNICORN_APPS = {
    AUTHLIB: (PEERS_DIR, "authlib_server:app"),
    DOT: (PEERS_DIR / "dot", "wsgi:application"),
}
"""The folder and WSGI app gunicorn serves for each Python peer."""


@dataclass(frozen=True)
class Peer:
    """One peer setup: which program, how it is set, what its tokens look like."""

    program: str
    name: str
    server: str
    backend: str
    path: str
    jwt_alg: str | None
    """The `alg` in the header of its access tokens; None for opaque tokens."""
    env: dict[str, str]

    def command(self, installed: Installed, port: int, scratch: Path) -> list[str]:
        """The command that serves this peer on `port`."""
        if self.program == OIDC:
            return [installed.node, str(_beside_modules(installed, scratch))]
        folder, app = GUNICORN_APPS[self.program]
        return [
            *(str(_python(installed, self.program)), "-m", "gunicorn"),
            *("--workers", str(WORKERS), "--bind", f"{HOST}:{port}"),
            # Its default control socket would go into the home folder.
            *("--control-socket", str(scratch / "gunicorn.ctl")),
            *("--chdir", str(folder), app),
        ]

    def setup(self, installed: Installed) -> list[str] | None:
        """The command that creates the peer's database and client, if any."""
        if self.program == AUTHLIB:
            script = PEERS_DIR / "authlib_server.py"
            return [str(installed.authlib_python), str(script), "setup"]
        if self.program == DOT:
            return [str(installed.dot_python), str(PEERS_DIR / "dot" / "register.py")]
        return None


def _python(installed: Installed, program: str) -> Path:
    return installed.authlib_python if program == AUTHLIB else installed.dot_python


def _beside_modules(installed: Installed, scratch: Path) -> Path:
    """A copy of the node server in `scratch`, next to a link to node_modules.

    Node resolves an ES module's imports from the script's own folder up,
    and ignores NODE_PATH for them.
    """
    script = scratch / "oidc_server.mjs"
    shutil.copyfile(PEERS_DIR / script.name, script)
    (scratch / "node_modules").symlink_to(installed.node_modules)
    return script


def peers(installed: Installed) -> list[Peer]:
    """Every peer setup, in the order they are measured."""
    v = installed.versions
    oidc = f"node-oidc-provider {v['oidc-provider']}"
    authlib = f"Authlib {v['authlib']} + Flask {v['flask']}"
    dot = f"django-oauth-toolkit {v['django-oauth-toolkit']} + Django {v['django']}"
    node = {"NODE_ENV": "production", "PEER_WORKERS": str(WORKERS)}
    opaque = node | {"PEER_TOKEN_FORMAT": "opaque"}
    rs256, es256 = (
        node | {"PEER_TOKEN_FORMAT": "jwt", "PEER_JWT_ALG": alg}
        for alg in ("RS256", "ES256")
    )
    return [
        Peer(OIDC, "POST /token, opaque", oidc, "memory", "/token", None, opaque),
        Peer(
            OIDC,
            "POST /token, JWT RS256 (its default)",
            oidc,
            "memory",
            "/token",
            "RS256",
            rs256,
        ),
        Peer(OIDC, "POST /token, JWT ES256", oidc, "memory", "/token", "ES256", es256),
        Peer(AUTHLIB, "POST /oauth/token", authlib, "SQLite", "/oauth/token", None, {}),
        Peer(
            DOT,
            "POST /o/token/, hashed secret",
            dot,
            "SQLite",
            "/o/token/",
            None,
            {"PEER_HASH_SECRET": "1"},
        ),
        Peer(
            DOT,
            "POST /o/token/, plain secret",
            dot,
            "SQLite",
            "/o/token/",
            None,
            {"PEER_HASH_SECRET": "0"},
        ),
    ]


def bench_peers(installed: Installed, load: Load, scratch: Path) -> Section:
    """Measure every peer's token endpoint, one peer at a time."""
    section = Section(setup=_setup_lines(installed))
    for number, peer in enumerate(peers(installed), 1):
        folder = scratch / f"peer-{number}"
        folder.mkdir()
        log = folder / "server.log"
        try:
            section.results.append(_bench_peer(installed, peer, load, folder, log))
        except BenchError as error:
            print(f"{peer.server}, {peer.name}: {error}", file=sys.stderr)
            # The first line only: the log tail after it went to stderr.
            reason = str(error).splitlines()[0]
            section.notes.append(f"{peer.server}, {peer.name}: not measured. {reason}")
            continue
        section.notes += log_notes(f"{peer.server} log, {peer.name}", [log], PEER_ERROR)
    return section


def _bench_peer(
    installed: Installed, peer: Peer, load: Load, folder: Path, log: Path
) -> Result:
    client_id, client_secret = "bench-client", secrets.token_urlsafe(32)
    port = free_port()
    env = (
        _clean_env()
        | peer.env
        | {
            "PEER_PORT": str(port),
            "PEER_DB": str(folder / "peer.db"),
            "PEER_CLIENT_ID": client_id,
            "PEER_CLIENT_SECRET": client_secret,
            "PEER_DJANGO_KEY": secrets.token_urlsafe(50),
        }
    )
    if (setup := peer.setup(installed)) is not None:
        run_command(setup, env, SETUP_SECONDS)
    basic = basic_credentials(client_id, client_secret)
    address = url(port, peer.path)
    with server(peer.command(installed, port, folder), env, log) as process:
        wait_until(
            lambda: form_post(address, GRANT, basic)[0] == 200,
            process,
            log,
            f"{peer.server} answering 200 on {peer.path}",
        )
        _check_token(peer, address, basic)
        workload = Workload(
            peer.name,
            (address,),
            "form_token.lua",
            peer.backend,
            {"BENCH_BASIC": basic},
            WORKERS,
            peer.server,
            TOKEN,
        )
        # Also waits out the requests the warm-up left queued at a slow peer.
        drained = functools.partial(_check_token, peer, address, basic, DRAIN_SECONDS)
        return measure(workload, load, (process.pid,), drained)


def _check_token(peer: Peer, address: str, basic: str, seconds: float = 10.0) -> None:
    """Fail unless one real request gets a token of the expected shape."""
    try:
        status, answer = form_post(address, GRANT, basic, seconds)
    except OSError as error:
        raise BenchError(
            f"{address} gave no answer in {seconds:.0f} s: {error}"
        ) from error
    token = answer.get("access_token")
    if status != 200 or not isinstance(token, str):
        raise BenchError(f"{address} answered {status} without an access_token.")
    if _jwt_alg(token) != peer.jwt_alg:
        shape = f"a {peer.jwt_alg} JWT" if peer.jwt_alg else "an opaque token"
        raise BenchError(f"{address} granted a token that is not {shape}.")


def _jwt_alg(token: str) -> str | None:
    """The `alg` of a JWT's header; None for a token of any other shape."""
    # A JWT is three dot-separated parts, the first a JSON object.
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header = json.loads(
            base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4))
        )
    except ValueError:
        return None
    alg = header.get("alg") if isinstance(header, dict) else None
    return alg if isinstance(alg, str) else None


def _clean_env() -> dict[str, str]:
    # Nothing of the caller's configuration reaches a peer, apart from PATH,
    # HOME and the locale; the peers read only PEER_* variables.
    keep = ("PATH", "LANG", "LC_ALL", "HOME")
    return {name: os.environ[name] for name in keep if name in os.environ}


def _setup_lines(installed: Installed) -> list[str]:
    """How the peers run, for the report."""
    v = installed.versions
    return [
        f"Peers, each with {WORKERS} worker processes on 127.0.0.1, one confidential "
        "client, `POST grant_type=client_credentials` with HTTP Basic "
        "(`form_token.lua`); every answer that is not a 2xx carrying an "
        "access_token counts as failed. Installed from npm and PyPI into "
        "a cache under /tmp, not the repository; apps in `bench/peers/`.",
        f"node-oidc-provider {v['oidc-provider']} on node {v['node']}: a node "
        f"`cluster` of {WORKERS}, NODE_ENV=production, the library's memory adapter "
        "(tokens are not written anywhere); opaque tokens, then JWT access tokens "
        "through a resource indicator, signed with RS256 (the library's default, "
        "a 2048-bit key), then with ES256 (netcalc's default)."
        f"{_node_warning(v['node'])}",
        f"Authlib {v['authlib']}, Flask {v['flask']}, SQLAlchemy {v['sqlalchemy']}: "
        f"gunicorn {v['gunicorn']} sync workers, opaque tokens saved to SQLite "
        "(WAL, synchronous=NORMAL), the client secret stored plain as Authlib's "
        "mixin keeps it.",
        f"django-oauth-toolkit {v['django-oauth-toolkit']}, Django {v['django']}: "
        "gunicorn sync workers, DEBUG off, SQLite (WAL, synchronous=NORMAL), "
        "opaque tokens; once with the client secret hashed (the toolkit's "
        "default: Django's PBKDF2 on every token request), once plain.",
        "gunicorn's sync workers close the connection after each answer, as "
        "that worker class always does, so wrk reconnects for every request there.",
    ]


def _node_warning(version: str) -> str:
    # oidc-provider 9 prints "Unsupported runtime" below node 22, and runs.
    if int(version.split(".")[0]) >= 22:
        return ""
    return f" It warns that node {version} is not a runtime it supports (22 or later)."
