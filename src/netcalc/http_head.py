"""Writing a response head, checking each distinct header field only once.

uvicorn checks every field of every response head against two regular
expressions and lower-cases its name before writing it. Nearly all fields
repeat from one response to the next: the security headers, the content
types, the date of the current second. `CheckedHeadsCycle` keeps the
encoded form of each field it has checked, so a repeated field costs a
dictionary lookup. Fields that change how the connection or the body is
written (`connection`, `transfer-encoding`) and fields it will not keep
(`set-cookie`, whose values are sessions) are written by uvicorn itself, as
are fields that fail the checks, so uvicorn still refuses them.
"""

from __future__ import annotations

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

_NO_LENGTH = -1

_checked: dict[Field, tuple[bytes, int]] = {}
"""Each checked field: its encoded line and, for `content-length`, its value."""


def checked_field(field: Field) -> tuple[bytes, int] | None:
    """The field's encoded line and declared body length, if it may be kept.

    None for a field uvicorn must write itself: one that fails its checks,
    changes the connection or the framing, or carries a session.
    """
    try:
        known = _checked.get(field)
    except TypeError:
        # ASGI allows fields as lists, or values as bytearrays: unhashable,
        # so not kept.
        return None
    if known is not None:
        return known
    name, value = field
    if HEADER_RE.search(name) or HEADER_VALUE_RE.search(value):
        return None
    name = name.lower()
    if name in _LEFT_TO_UVICORN:
        return None
    length = _NO_LENGTH
    if name == b"content-length":
        if not value.isdigit():
            return None
        length = int(value)
    if len(_checked) >= KEPT_FIELDS:
        _checked.clear()
    known = _checked[field] = (name + b": " + value + b"\r\n", length)
    return known


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
        head = [STATUS_LINE[message["status"]]]
        length = _NO_LENGTH
        for field in (*self.default_headers, *message.get("headers", ())):
            known = checked_field(field)
            if known is None:
                await super().send(message)
                return
            head.append(known[0])
            if length == _NO_LENGTH:
                length = known[1]
        self._write_head(head, message["status"], length)

    def _write_head(self, head: list[bytes], status: int, length: int) -> None:
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
        if not self.keep_alive:
            head.append(b"connection: close\r\n")
        if (
            self.chunked_encoding is None
            and self.scope["method"] != "HEAD"
            and status not in (204, 304)
        ):
            # Neither a length nor a framing was given: uvicorn chunks the body.
            self.chunked_encoding = True
            head.append(b"transfer-encoding: chunked\r\n")
        head.append(b"\r\n")
        self.transport.write(b"".join(head))
