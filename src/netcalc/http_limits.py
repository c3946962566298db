"""Bounds on one HTTP connection, kept where uvicorn parses the requests.

uvicorn's httptools protocol accepts a request head of any size and waits
for ever on a request that never finishes, so a few slow or bloated clients
could hold this process's memory and sockets. `LimitedHttpProtocol` adds
these bounds in the parser itself, with no per-request middleware:

- the request line and header fields together may hold at most
  NETCALC_HEADER_LIMIT bytes: 414 when the URL alone passes it, else 431;
- each request must arrive whole, head and body, within
  NETCALC_REQUEST_TIMEOUT_SECONDS of its first byte (or of the connection,
  for the first request): 408, then the connection is closed;
- past NETCALC_MAX_CONNECTIONS open connections in this process, a new
  connection takes the place of the oldest one that has sent nothing yet,
  else of the kept-alive connection idle longest, which is closed (RFC 9112
  §9.6 lets a server close an idle connection at any time); only when every
  other is busy with a request is its request answered 503 and the
  connection closed.
- a connection may pipeline at most PIPELINE_DEPTH requests ahead of the
  answers; past that it is answered 400 and closed, like a request that is
  not HTTP at all.
- an HTTP/1.1 request without exactly one Host field, or any request with
  more than one Authorization field, is answered 400 and the connection
  closed: a proxy in front of netcalc might have read it another way.
- the trailer fields of a chunked body are dropped, never read as headers.
- a body that cannot be read is never waited for (RFC 9112 §6): a
  Transfer-Encoding that does not end in chunked, or any on HTTP/1.0, is
  answered 400; chunked over another coding 501 (not implemented); a chunked
  body that turns out malformed 400 at once, the app reading it told of a
  disconnect. Then the connection is closed.

The answers are the contract's JSON error bodies from `netcalc.responses`,
with `Connection: close`. uvicorn closes kept-alive connections idle for
`timeout_keep_alive` (set from NETCALC_KEEP_ALIVE_SECONDS).

A connection is unused until its first request begins, and idle from the
moment its last answer is complete, with no request read and none
unanswered, until its next request begins. A server's unused and idle
connections are kept in two dicts, oldest first (`netcalc.closable`), so that
taking one out, putting one back and finding the oldest are each a step,
not a scan of every connection on every request.

The protocol also gathers a response's writes into one
(`netcalc.gathered_writes`): a small answer then costs one send and one
wake-up of the client, not two. Its response heads are written by
`netcalc.http_head.CheckedHeadsCycle`.
"""

from __future__ import annotations

import asyncio
import functools
import http
from dataclasses import dataclass
from typing import Any, cast

from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from netcalc.closable import closable_connections
from netcalc.db import Arrivals
from netcalc.errors import (
    HeadersTooLarge,
    InvalidRequest,
    NetcalcError,
    RequestTimeout,
    ServerBusy,
    UnknownTransferCoding,
    UnreadableBody,
    UriTooLong,
    quoted,
)
from netcalc.gathered_writes import GatheredWrites
from netcalc.http_head import CheckedHeadsCycle
from netcalc.metrics import TALLIES
from netcalc.responses import OAUTH_PATHS, JSONBody, error_body, oauth_error_body
from netcalc.security_headers import HEADERS as SECURITY_HEADERS
from netcalc.settings import Settings, load_settings

__all__ = ["ConnectionLimits", "LimitedHttpProtocol"]

FIELD_OVERHEAD = 4
"""Bytes of ': ' and CRLF around each header field, counted to the limit."""

PIPELINE_DEPTH = 32
"""Requests one connection may send ahead of the answers (RFC 9112 §9.3.2)."""

_NOT_HTTP = "The request is not valid HTTP/1.1."

_NOT_CHUNKED = (
    "The request's chunked body is malformed (RFC 9112 §7.1); send it again "
    "as valid chunks, or with Content-Length."
)


@dataclass(frozen=True)
class ConnectionLimits:
    """What one connection may cost before it is answered or cut off."""

    header_limit: int
    request_timeout: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        """The limits an operator configured."""
        return cls(
            settings.header_limit,
            settings.request_timeout_seconds,
            settings.max_connections,
        )


@functools.cache
def process_limits() -> ConnectionLimits:
    """This process's limits, read once.

    uvicorn builds its protocols itself, in every worker process, so they
    read the same environment that `netcalc serve` checked at start.
    """
    return ConnectionLimits.from_settings(load_settings())


def refused_codings(codings: bytes, http_version: str) -> UnreadableBody | None:
    """Why a body sent with Transfer-Encoding `codings` cannot be read, if it
    cannot: HTTP/1.0 has no transfer codings (RFC 9112 §6.1), a body not
    chunked last has no known end (§6.3), and chunked is the one coding
    implemented (§6.1). Coding names are case-insensitive (§7)."""
    if http_version == "1.0":
        return UnreadableBody(
            "An HTTP/1.0 request cannot use Transfer-Encoding; "
            "send the body with Content-Length."
        )
    codings = codings.lower()
    if codings == b"chunked":
        return None
    shown = quoted(codings.decode("latin-1"))
    if codings.rpartition(b",")[2].strip() != b"chunked":
        return UnreadableBody(
            f"Transfer-Encoding {shown} does not end in chunked, so where the "
            "body ends is unknown; send it with Content-Length, or with "
            "'Transfer-Encoding: chunked'."
        )
    return UnknownTransferCoding(
        f"Transfer-Encoding {shown} is not implemented: chunked is the only "
        "transfer coding read here. Send the body with Content-Length, or with "
        "'Transfer-Encoding: chunked' alone."
    )


class Refusal:
    """An ASGI app answering every request with one error and closing.

    A head refused for its fields, such as two Authorization fields, is an
    invalid request to the endpoint it names, and the RFC 6749 endpoints
    answer those in their own shape (§5.2). Refusals for size, time or
    load keep one shape everywhere: most come before the path is known.
    """

    def __init__(self, error: NetcalcError) -> None:
        self.response = _closing(error_body(error))
        self._oauth_response = self.response
        if isinstance(error, InvalidRequest):
            self._oauth_response = _closing(oauth_error_body(error))

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        response = self.response
        if scope["type"] == "http" and scope["path"] in OAUTH_PATHS:
            response = self._oauth_response
        await response(scope, receive, send)  # type: ignore[arg-type]

    def raw(self) -> bytes:
        """The answer as HTTP/1.1 bytes, for writing outside any request."""
        status = http.HTTPStatus(self.response.status_code)
        lines = [f"HTTP/1.1 {status.value} {status.phrase}".encode()]
        lines += [name + b": " + value for name, value in self.response.raw_headers]
        return b"\r\n".join([*lines, b"", self.response.body])


def _closing(response: JSONBody) -> JSONBody:
    response.headers["Connection"] = "close"
    response.raw_headers.extend(SECURITY_HEADERS)
    return response


class _Dropped(list[tuple[bytes, bytes]]):
    """A header list that keeps nothing appended to it."""

    def append(self, field: tuple[bytes, bytes]) -> None:
        pass


_DROPPED = _Dropped()
"""Where a chunked body's trailer fields go; shared, since it stays empty."""


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds of this module."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = process_limits()
        self._arrivals: Arrivals | None = app_state.get(Arrivals.ASGI_STATE)
        if self._arrivals is not None:
            self._arrivals.counted = True
        self.url = b""
        self._deadline: asyncio.TimerHandle | None = None
        self._in_message = False
        self._awaiting_head = True
        self._head_bytes = 0
        self._refusal_after_answers: bytes | None = None
        self._unreadable: UnreadableBody | None = None
        self._closable = closable_connections(server_state)

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        super().connection_made(transport)
        self.transport = GatheredWrites(transport, self.loop)  # type: ignore[assignment]
        if len(self.connections) > self.limits.max_connections:
            self._make_room()
        else:
            self._closable.unused[self] = None
        self._arm_deadline()

    def _make_room(self) -> None:
        """Close the oldest unused or idle connection for this one, or refuse
        this one with 503 when every other is busy with a request."""
        oldest = self._closable.take_oldest()
        if oldest is None:
            TALLIES.refusal("busy")
            self.app = Refusal(ServerBusy())
            return
        TALLIES.refusal("evicted")
        oldest.transport.close()
        self._closable.unused[self] = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closable.forget(self)
        self._cancel_deadline()
        super().connection_lost(exc)

    def eof_received(self) -> None:
        # A client that half-closes after its request gets the transport
        # closed right after this returns: its gathered answer goes first.
        cast(GatheredWrites, self.transport).flush()
        super().eof_received()

    def data_received(self, data: bytes) -> None:
        if self._refusal_after_answers is not None:
            # Read and dropped: bytes left unread when the connection closes
            # would reset it, and the client could lose the answers.
            return
        if self._arrivals is not None:
            self._arrivals.note()
        # Counted before parsing: a head that never ends must be cut off
        # while it arrives, not once it is complete.
        if self._awaiting_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._awaiting_head and self._head_bytes > self.limits.header_limit:
            self._refuse_unfinished_head()
        elif self._in_message:
            # Armed only for a request still unfinished once these bytes are
            # parsed: most arrive whole, and a timer set and cancelled within
            # one read cost each of them a microsecond or more.
            self._arm_deadline()

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers bytes the parser refuses in plain text; the
        # contract's errors are JSON. `msg` is uvicorn's, already logged.
        error = self._unreadable or InvalidRequest(_NOT_HTTP)
        cycle = self.cycle
        if not self._awaiting_head and not cycle.response_complete:
            # The refused bytes are the chunked body of the request read last
            # (RFC 9112 §7.1): it never arrives whole, so it is answered in
            # its turn, and never handed to the app as if it might.
            error = InvalidRequest(_NOT_CHUNKED)
            if not self.pipeline:
                self._close_with(error)
                return
            # Read ahead of its turn: it is never run.
            self.pipeline.popleft()
        refusal = Refusal(error).raw()
        if cycle is not None and not cycle.response_complete:
            # Requests read before the refused bytes are answered first, in
            # order, so that no answer is taken for another's. Nothing more
            # is read, so no request deadline runs meanwhile.
            self._refusal_after_answers = refusal
            self._in_message = False
            self._head_bytes = 0
            self._cancel_deadline()
            return
        self.transport.write(refusal)
        self.transport.close()

    def on_response_complete(self) -> None:
        last = not self.pipeline
        super().on_response_complete()
        if not last or self.transport.is_closing():
            return
        if self._refusal_after_answers:
            self.transport.write(self._refusal_after_answers)
            self.transport.close()
        elif not self._in_message:
            self._closable.idle[self] = None

    def on_message_begin(self) -> None:
        self._closable.forget(self)
        # Each request parsed ahead of its turn holds a scope, and one read
        # can carry thousands of them. Raising here stops the parser, and
        # the connection is answered 400 and closed.
        if len(self.pipeline) >= PIPELINE_DEPTH:
            TALLIES.refusal("pipeline")
            raise RuntimeError(f"More than {PIPELINE_DEPTH} requests pipelined.")
        super().on_message_begin()
        self._in_message = True

    def on_headers_complete(self) -> None:
        error = self._refused_head()
        if isinstance(error, UnreadableBody):
            # No byte after this head can be read, not knowing where its body
            # ends: it never becomes a request. Raising stops the parser, and
            # `send_400_response` answers it in its turn.
            self._unreadable = error
            raise RuntimeError(error.message)
        self._awaiting_head = False
        self._head_bytes = 0
        if error is not None:
            self.app = Refusal(error)
            if not isinstance(error, InvalidRequest):
                # httptools cannot split a URL over 64 KiB and would answer
                # a 400; a refusal for size needs no URL. One for the
                # fields keeps it, to answer in its endpoint's shape.
                self.url = b"/"
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope:
            # uvicorn names its cycle class inline; this one only adds a
            # faster way to write the response head.
            cycle.__class__ = CheckedHeadsCycle
            # httptools reports a chunked body's trailer fields as headers
            # too, and uvicorn would append them to the list the request's
            # scope holds, past the checks of the head: an Authorization or
            # Host no proxy saw. RFC 9110 §6.5.1: trailers are never merged
            # into the header section, so they are dropped as they come, and
            # never kept: nothing else bounds their length. (A WebSocket
            # upgrade makes no cycle and keeps its headers.)
            self.headers = _DROPPED

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._cancel_deadline()
        self._in_message = False
        self._awaiting_head = True
        if self.cycle.response_complete and not self.transport.is_closing():
            # Answered before its body had all arrived: idle only now.
            self._closable.idle[self] = None

    def handle_websocket_upgrade(self) -> None:
        self._cancel_deadline()
        super().handle_websocket_upgrade()

    def _refused_head(self) -> NetcalcError | None:
        """What a complete head is refused with, if anything: it is too
        large, its body cannot be read, or a proxy in front might read it
        another way, its Host or Authorization field not being one line
        (RFC 9112 §3.2, RFC 9110 §5.3). One pass over the fields, since
        every request takes it."""
        limit = self.limits.header_limit
        if len(self.url) > limit:
            TALLIES.refusal("head_too_large")
            return UriTooLong()
        size = len(self.url)
        hosts = authorizations = 0
        codings: bytes | None = None
        for name, value in self.headers:
            size += len(name) + len(value) + FIELD_OVERHEAD
            if name == b"host":
                hosts += 1
            elif name == b"authorization":
                authorizations += 1
            elif name == b"transfer-encoding":
                codings = value if codings is None else codings + b", " + value
        if size > limit:
            TALLIES.refusal("head_too_large")
            return HeadersTooLarge()
        if codings is not None:
            unreadable = refused_codings(codings, self.parser.get_http_version())
            if unreadable is not None:
                return unreadable
        # HTTP/1.0 has no Host field to require.
        if hosts > 1 or (hosts == 0 and self.parser.get_http_version() != "1.0"):
            return InvalidRequest("Send exactly one Host header.")
        if authorizations > 1:
            return InvalidRequest("Send at most one Authorization header.")
        return None

    def _refuse_unfinished_head(self) -> None:
        if self.transport.is_closing():
            return
        too_long = len(self.url) > self.limits.header_limit
        error = UriTooLong() if too_long else HeadersTooLarge()
        TALLIES.refusal("head_too_large")
        self._close_with(error)

    def _arm_deadline(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(
                self.limits.request_timeout, self._deadline_passed
            )

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _deadline_passed(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if not self._in_message:
            # Opened and never used: nobody is waiting for an answer.
            TALLIES.refusal("idle")
            self.transport.close()
            return
        TALLIES.refusal("timeout")
        self._close_with(RequestTimeout())

    def _close_with(self, error: NetcalcError) -> None:
        """Answer `error` if no other response is on the wire, then close."""
        if self._awaiting_head:
            answer = self.cycle is None or self.cycle.response_complete
        else:
            answer = not self.pipeline and not self.cycle.response_started
            # The app may still be waiting for the body; it now hears of a
            # disconnect, and anything it sends is dropped.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        if answer:
            self.transport.write(Refusal(error).raw())
        self.transport.close()
