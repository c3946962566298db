"""Logs and metrics: one structured line and one count per token request."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import Any, TextIO

import structlog

from netcalc.auth.token_request import ClientAuthentication
from netcalc.metrics import TALLIES

TOKEN_EVENT = "token_request"
"""The `event` of the line each token request writes."""

token_log = structlog.get_logger("netcalc.auth")


class TokenLines:
    """Writes token request lines to a stream netcalc owns, as structlog would.

    structlog's bound logger and processor chain cost as much again as
    rendering the line itself, and a token request writes one. When the
    lines go to netcalc's own stderr anyway, they are rendered here: the
    same keys in the same order, the same ISO timestamp.

    A write to stderr is a system call, and to a pipe it also wakes the
    reader, for every token request. Lines written during one event-loop
    turn are therefore written together at the end of that turn, or at once
    past GATHER_LINES. Other log lines of the same turn may come first.
    """

    GATHER_LINES = 256

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._pending: list[str] = []
        self._stamps = UtcStamps()

    def write(
        self,
        *,
        endpoint: str,
        client_id: str | None,
        status: str,
        latency_ms: float,
        remote_addr: str,
    ) -> None:
        line = _TOKEN_LINE % (
            _quote(endpoint),
            "null" if client_id is None else _quote(client_id),
            _quote(status),
            latency_ms,
            _quote(remote_addr),
            self._stamps.now(),
        )
        if not self._pending and not self._flush_at_end_of_turn():
            self._stream.write(line)
            self._stream.flush()
            return
        self._pending.append(line)
        if len(self._pending) >= self.GATHER_LINES:
            self.flush()

    def _flush_at_end_of_turn(self) -> bool:
        # Outside an event loop there is no turn to wait for.
        try:
            asyncio.get_running_loop().call_soon(self.flush)
        except RuntimeError:
            return False
        return True

    def flush(self) -> None:
        """Write the gathered lines, if there are any."""
        if self._pending:
            self._stream.write("".join(self._pending))
            self._pending.clear()
            self._stream.flush()


class UtcStamps:
    """The time now as structlog's `TimeStamper(fmt="iso", utc=True)` writes
    it: ISO 8601 in UTC, microseconds when there are any, then `Z`.

    Formatting an aware datetime, its offset above all, cost half of the
    whole line. The date and the time of day change once a second, so they
    are formatted once a second; the microseconds are cut from the clock's
    nanoseconds as `datetime.now` cuts them, rounding down.
    """

    def __init__(self, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self._clock_ns = clock_ns
        self._second: int | None = None
        self._to_the_second = ""

    def now(self) -> str:
        """The current time, formatted."""
        second, nanoseconds = divmod(self._clock_ns(), 1_000_000_000)
        if second != self._second:
            moment = datetime.fromtimestamp(second, UTC).replace(tzinfo=None)
            self._to_the_second = moment.isoformat()
            self._second = second
        microseconds = nanoseconds // 1000
        if microseconds:
            return f"{self._to_the_second}.{microseconds:06d}Z"
        return self._to_the_second + "Z"


_TOKEN_LINE = (
    '{"endpoint": %s, "client_id": %s, "status": %s, "latency_ms": %r, '
    f'"remote_addr": %s, "event": "{TOKEN_EVENT}", "timestamp": "%s", '
    '"level": "info"}\n'
)
"""The line structlog renders for a token request, its JSON written out:
filling it in costs a third of encoding the fields' dict."""

_quote = encode_basestring_ascii
"""A JSON string, escaped as the line encoder (ensure_ascii) escapes it."""

_direct_lines: TokenLines | None = None
"""Set by configure_logging when netcalc owns the log and INFO is on."""


def observe_token_request(
    *,
    endpoint: str,
    client: ClientAuthentication | None,
    status: str,
    seconds: float,
    address: str,
) -> None:
    """Count and log one answered token request; never the secret or token."""
    TALLIES.token_request(endpoint, status, seconds)
    client_id = _loggable_id(client)
    latency_ms = round(seconds * 1000, 3)
    if _direct_lines is not None:
        _direct_lines.write(
            endpoint=endpoint,
            client_id=client_id,
            status=status,
            latency_ms=latency_ms,
            remote_addr=address,
        )
    else:
        token_log.info(
            TOKEN_EVENT,
            endpoint=endpoint,
            client_id=client_id,
            status=status,
            latency_ms=latency_ms,
            remote_addr=address,
        )


def _loggable_id(client: ClientAuthentication | None) -> str | None:
    # A caller may send anything as an id, even a secret pasted by mistake:
    # only ids of the shape netcalc issues are logged as they are.
    if client is None:
        return None
    if client.id_is_ours:
        return client.client_id
    return f"<unrecognised, {len(client.client_id)} chars>"


_LINE_ENCODER = json.JSONEncoder(default=repr)


def _json_line(event: dict[str, Any], **_: Any) -> str:
    # json.dumps builds a new encoder on every call that passes `default`,
    # which structlog's renderer does; this one is built once.
    return _LINE_ENCODER.encode(event)


PROCESSORS: list[structlog.typing.Processor] = [
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.add_log_level,
    structlog.processors.JSONRenderer(serializer=_json_line),
]
"""How structlog renders every line: a JSON object with time and level."""


RECORDS = structlog.stdlib.ProcessorFormatter(
    foreign_pre_chain=[
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.add_log_level,
    ],
    processors=[
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        structlog.processors.format_exc_info,
        structlog.processors.JSONRenderer(serializer=_json_line),
    ],
)
"""How the standard library's records are rendered, netcalc's warnings and
errors and uvicorn's among them: JSON lines like structlog's, the logger
named and any traceback in `exception`."""


_OWN_HANDLER = "netcalc"
"""The name of the handler netcalc adds when nobody else handles logging."""


def configure_logging(level: str) -> None:
    """Send structured JSON lines to stderr, unless the host set up logging."""
    global _direct_lines
    root = logging.getLogger()
    threshold = logging.getLevelNamesMapping()[level.upper()]
    # The stdlib's record, caller lookup and handler lock cost as much as
    # the rest of a token request's line: when nobody else handles logging,
    # the lines are written to stderr directly.
    factory: Any = structlog.stdlib.LoggerFactory()
    _direct_lines = None
    # `serve` sets logging up before uvicorn, and each worker again.
    if all(handler.get_name() == _OWN_HANDLER for handler in root.handlers):
        if not root.handlers:
            records = logging.StreamHandler(sys.stderr)
            records.set_name(_OWN_HANDLER)
            records.setFormatter(RECORDS)
            root.addHandler(records)
        root.setLevel(threshold)
        factory = structlog.WriteLoggerFactory(sys.stderr)
        if threshold <= logging.INFO:
            _direct_lines = TokenLines(sys.stderr)
    structlog.configure(
        processors=PROCESSORS,
        logger_factory=factory,
        # Filters by level before any processor runs: a line below the
        # level costs one method call.
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        cache_logger_on_first_use=True,
    )
