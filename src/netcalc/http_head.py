"""Writing a response head, checking each distinct head only once.

uvicorn checks every field of every response head against two regular
expressions and lower-cases its name before writing it. Nearly all heads
repeat from one response to the next: the same status, the security
headers, the content types, often the same length. `CheckedHeadsCycle`
keeps each head it has checked, encoded, so a repeated head costs one
dictionary lookup; a new head reuses the fields already checked in others.
The server's date, new each second, is kept apart, so that a head is kept
once, not once a second. A head is found by equality: a read-only
memoryview of kept bytes, which ASGI does not allow and uvicorn fails on,
is written as those bytes. Fields that change how the connection or the
body is written (`connection`, `transfer-encoding`) and fields it will not
keep (`set-cookie`, whose values are sessions) are written by uvicorn
itself, as are fields that fail the checks, so uvicorn still refuses them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    RequestResponseCycle,
)
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

Field = tuple[bytes, bytes]

_LEFT_TO_UVICORN = frozenset({b"connection", b"transfer-encoding", b"set-cookie"})

KEPT_FIELDS = 1024
"""How many checked fields are kept; all are dropped when it is reached, since
some values (a redirect's location, say) come from requests."""

KEPT_HEADS = 1024
"""How many checked heads are kept; all are dropped when it is reached."""

_NO_LENGTH = -1

_checked: dict[Field, tuple[bytes, int]] = {}
"""Each checked field: its encoded line and, for `content-length`, its value."""

_heads: dict[tuple[object, ...], _KeptHead] = {}
"""Each checked head, by its status and the app's fields."""


def checked_field(field: Field) -> tuple[bytes, int] | None:
    """The field's encoded line and declared body length, if it may be kept.

    None for a field uvicorn must write itself: one that fails its checks,
    changes the connection or the framing, carries a session, or is not a
    pair of bytes (ASGI also allows lists and bytearrays).
    """
    try:
        known = _checked.get(field)
    except (TypeError, ValueError):
        # Unhashable: a list, a bytearray, a memoryview of one (ValueError).
        return None
    if known is not None:
        return known
    if type(field) is not tuple or len(field) != 2:
        return None
    name, value = field
    if type(name) is not bytes or type(value) is not bytes:
        return None
    if HEADER_RE.search(name) or HEADER_VALUE_RE.search(value):
        return None
    name = name.lower()
    if name in _LEFT_TO_UVICORN:
        return None
    length = _NO_LENGTH
    if name == b"content-length":
        # Plain digits of a sane length; uvicorn judges anything else.
        if not value.isdigit() or len(value) > _LONGEST_LENGTH:
            return None
        length = int(value)
    if len(_checked) >= KEPT_FIELDS:
        _checked.clear()
    known = _checked[field] = (name + b": " + value + b"\r\n", length)
    return known


_LONGEST_LENGTH = 18
"""Digits of the longest content-length kept; past that is not a real body."""


def checked_head(
    status: object, defaults: Sequence[Field], fields: Sequence[Field]
) -> tuple[bytes, int] | None:
    """The status line and encoded fields of a head, the server's `defaults`
    first, and its body length; None if uvicorn must write this head itself."""
    try:
        key = (status, *fields)
        known = _heads.get(key)
    except (TypeError, ValueError):
        # A field ASGI allows but no dictionary takes: a list, a bytearray,
        # a memoryview of one (ValueError).
        return None
    if known is None:
        known = _checked_app_head(status, fields)
        if known is None:
            return None
        if len(_heads) >= KEPT_HEADS:
            _heads.clear()
        _heads[key] = known
    # One read of the pair: servers on other threads may write it meanwhile.
    server_fields, written = known.last
    if server_fields is not defaults:
        return known.written_with(defaults)
    return written


class _KeptHead:
    """A checked head's status line and app fields, and the whole head as
    last written with the server's own fields: uvicorn makes a new list of
    them, with the date, each second."""

    __slots__ = ("_fields", "_length", "_line", "last")

    def __init__(self, line: bytes, fields: bytes, length: int) -> None:
        self._line = line
        self._fields = fields
        self._length = length
        self.last: tuple[Sequence[Field] | None, tuple[bytes, int] | None]
        self.last = (None, None)
        """The server's fields last written with, and the whole head then."""

    def written_with(self, server_fields: Sequence[Field]) -> tuple[bytes, int] | None:
        """The whole head and its body length, None if uvicorn must write it."""
        encoded = _encoded_fields(server_fields)
        written = None
        if encoded is not None:
            lines, length = encoded
            if length == _NO_LENGTH:
                length = self._length
            written = (self._line + lines + self._fields, length)
        # The list is held, so never taken for a later one at its address.
        self.last = (server_fields, written)
        return written


def _checked_app_head(status: object, fields: Sequence[Field]) -> _KeptHead | None:
    line = STATUS_LINE.get(status) if type(status) is int else None
    encoded = _encoded_fields(fields)
    if line is None or encoded is None:
        return None
    return _KeptHead(line, *encoded)


def _encoded_fields(fields: Sequence[Field]) -> tuple[bytes, int] | None:
    """The fields' lines and the first body length declared among them;
    None if uvicorn must write any of them."""
    lines = []
    length = _NO_LENGTH
    for field in fields:
        known = checked_field(field)
        if known is None:
            return None
        lines.append(known[0])
        if length == _NO_LENGTH:
            length = known[1]
    return b"".join(lines), length


class CheckedHeadsCycle(RequestResponseCycle):
    """uvicorn's request-response cycle, with checked fields written from
    `checked_field`; anything unusual is sent by uvicorn's own code."""

    async def send(self, message: ASGISendEvent) -> None:
        if (
            message["type"] != "http.response.start"
            or self.response_started
            or self.disconnected
            or self.flow.write_paused
        ):
            await super().send(message)
            return
        try:
            # Read once: ASGI allows any iterable, an iterator included.
            fields = tuple(message.get("headers", ()))
        except TypeError:
            await super().send(message)
            return
        checked = checked_head(message["status"], self.default_headers, fields)
        if checked is None:
            unchecked = {**message, "headers": list(fields)}
            await super().send(cast(ASGISendEvent, unchecked))
            return
        head, length = checked
        self._write_head(head, message["status"], length)

    def _write_head(self, head: bytes, status: int, length: int) -> None:
        self.response_started = True
        self.waiting_for_100_continue = False
        if self.access_log:
            self.access_logger.info(
                '%s - "%s %s HTTP/%s" %d',
                get_client_addr(self.scope),
                self.scope["method"],
                get_path_with_query_string(self.scope),
                self.scope["http_version"],
                status,
            )
        if length != _NO_LENGTH:
            self.expected_content_length = length
            self.chunked_encoding = False
        # What this connection and this request add, after the kept fields.
        added = b""
        if not self.keep_alive:
            added += b"connection: close\r\n"
        if (
            self.chunked_encoding is None
            and self.scope["method"] != "HEAD"
            and status not in (204, 304)
        ):
            # Neither a length nor a framing was given: uvicorn chunks the body.
            self.chunked_encoding = True
            added += b"transfer-encoding: chunked\r\n"
        self.transport.write(head + added + b"\r\n")
