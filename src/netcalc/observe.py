"""Logs and metrics: one structured line and one count per token request."""

from __future__ import annotations

import json
import logging
import sys
from functools import cache
from typing import Any

import structlog
from prometheus_client import Counter, Histogram

from netcalc.auth.client_secrets import is_client_id

TOKEN_REQUESTS = Counter(
    "netcalc_token_requests_total",
    "Token requests answered, by endpoint and contract status.",
    ["endpoint", "status"],
)
TOKEN_LATENCY = Histogram(
    "netcalc_token_request_seconds",
    "Time to answer a token request.",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)

token_log = structlog.get_logger("netcalc.auth")


def observe_token_request(
    *, endpoint: str, client_id: str | None, status: str, seconds: float, address: str
) -> None:
    """Count and log one answered token request; never the secret or token."""
    _count(endpoint, status).inc()
    _latency(endpoint).observe(seconds)
    token_log.info(
        "token_request",
        endpoint=endpoint,
        client_id=_loggable_id(client_id),
        status=status,
        latency_ms=round(seconds * 1000, 3),
        remote_addr=address,
    )


@cache
def _count(endpoint: str, status: str) -> Counter:
    # Looking a labelled child up costs more than counting with it; the
    # endpoints and statuses are a small fixed set, so each is kept.
    return TOKEN_REQUESTS.labels(endpoint, status)


@cache
def _latency(endpoint: str) -> Histogram:
    return TOKEN_LATENCY.labels(endpoint)


def _loggable_id(client_id: str | None) -> str | None:
    # A caller may send anything as an id, even a secret pasted by mistake:
    # only ids of the shape netcalc issues are logged as they are.
    if client_id is None or is_client_id(client_id):
        return client_id
    return f"<unrecognised, {len(client_id)} chars>"


_LINE_ENCODER = json.JSONEncoder(default=repr)


def _json_line(event: dict[str, Any], **_: Any) -> str:
    # json.dumps builds a new encoder on every call that passes `default`,
    # which structlog's renderer does; this one is built once.
    return _LINE_ENCODER.encode(event)


def configure_logging(level: str) -> None:
    """Send structured JSON lines to stderr, unless the host set up logging."""
    root = logging.getLogger()
    # The stdlib's record, caller lookup and handler lock cost as much as
    # the rest of a token request's line: when nobody else handles logging,
    # the lines are written to stderr directly.
    factory: Any = structlog.stdlib.LoggerFactory()
    if not root.handlers:
        logging.basicConfig(stream=sys.stderr, format="%(message)s", level=level)
        factory = structlog.WriteLoggerFactory(sys.stderr)
    structlog.configure(
        processors=[
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.add_log_level,
            structlog.processors.JSONRenderer(serializer=_json_line),
        ],
        logger_factory=factory,
        # Filters by level before any processor runs: a line below the
        # level costs one method call.
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        cache_logger_on_first_use=True,
    )
