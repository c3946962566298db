"""Serving the app with uvicorn: the address it listens on, and the issuer
it names when NETCALC_ISSUER is unset."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import tempfile
from typing import Any

import uvicorn

from netcalc.http_limits import LimitedHttpProtocol
from netcalc.metrics import FOLDER_VARIABLE
from netcalc.observe import configure_logging
from netcalc.settings import Settings
from netcalc.workers import serve_workers


def listen_host(host: str) -> str:
    """The host as a socket takes it: an IPv6 address without its brackets."""
    return host.strip("[]")


def served_url(host: str, port: int) -> str:
    """The http URL of `host` and `port`, an IPv6 address in brackets."""
    name = listen_host(host)
    if ":" in name:
        name = f"[{name}]"
    return f"http://{name}:{port}"


def is_every_interface(host: str) -> bool:
    """Whether `host` is an address of every interface, however written."""
    try:
        address = ipaddress.ip_address(listen_host(host))
    except ValueError:
        return not host
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_unspecified or (mapped is not None and mapped.is_unspecified)


def cannot_listen(host: str, port: int) -> str | None:
    """Why this machine cannot listen on `host` and `port`, if it cannot.

    Asked before anything is printed or started: uvicorn finds out only
    once its workers are on their way, and says it in a log line of its own.
    The port is bound as uvicorn binds it, then let go at once.
    """
    name = listen_host(host)
    family = socket.AF_INET6 if ":" in name else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((name, port))
        except OSError as error:
            return _refusal(served_url(host, port), error)
    return None


def _refusal(url: str, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return (
            f"Cannot listen on {url}: another program is using that port. "
            "Stop it, or choose another port with --port (PORT=N for make run)."
        )
    if error.errno == errno.EACCES:
        return (
            f"Cannot listen on {url}: this user may not use that port. "
            "Choose one above 1023 with --port."
        )
    reason = (error.strerror or str(error)).lower()
    return f"Cannot listen on {url}: {reason}. Check the --host address."


def serve_app(settings: Settings, host: str, port: int, workers: int) -> None:
    """Serve netcalc until stopped, each worker building its own app."""
    if workers == 1:
        _run(settings, host, port, workers)
        return
    # The workers inherit the environment: each leaves its metrics there.
    with tempfile.TemporaryDirectory(prefix="netcalc-metrics-") as folder:
        os.environ[FOLDER_VARIABLE] = folder
        try:
            _run(settings, host, port, workers)
        finally:
            del os.environ[FOLDER_VARIABLE]


def _run(settings: Settings, host: str, port: int, workers: int) -> None:
    proxies = settings.forwarded_allow_ips
    # uvicorn's own lines, such as a worker's death, are written as
    # netcalc's are, as JSON, rather than through uvicorn's plain handlers.
    configure_logging(settings.log_level)
    options: dict[str, Any] = {
        "app": "netcalc.app:create_app",
        "factory": True,
        "host": listen_host(host),
        "port": port,
        "workers": workers,
        "loop": "uvloop",
        # httptools, plus header, time and connection bounds (http_limits).
        "http": LimitedHttpProtocol,
        "access_log": False,
        "server_header": False,
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": proxies or None,
        "log_config": None,
        # Its own lines follow NETCALC_LOG_LEVEL too: at INFO, workers
        # starting, stopping and dying.
        "log_level": settings.log_level.lower(),
        "timeout_keep_alive": settings.keep_alive_seconds,
    }
    if workers == 1:
        uvicorn.run(**options)
    else:
        serve_workers(uvicorn.Config(**options))
