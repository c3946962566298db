"""One write for what one event-loop turn wrote to a connection."""

from __future__ import annotations

import asyncio
from typing import Any

GATHER_LIMIT = 65536
"""Bytes gathered into one write before it is sent without waiting."""


class GatheredWrites:
    """A transport that sends what one event-loop turn wrote as one write.

    uvicorn writes a response's head and body separately, and on loopback
    each write is a segment of its own, waking the client twice. Gathered,
    they leave together at the end of the turn, or at once past
    GATHER_LIMIT bytes; everything but `write` and `close` is the transport's.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)
        self._size += len(data)
        if self._size > GATHER_LIMIT:
            self.flush()

    def flush(self) -> None:
        """Send what is gathered, if the connection is still open."""
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._size = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def is_closing(self) -> bool:
        # Defined, not left to __getattr__: it is asked several times a
        # request, and a failed attribute lookup costs more than the call.
        return self._transport.is_closing()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
