"""A response's writes leave together at the end of the event-loop turn."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Coroutine
from typing import Any

from netcalc.gathered_writes import GATHER_LIMIT, GatheredWrites


class Peer(asyncio.Protocol):
    """The far end's protocol; the test reads the raw socket instead."""


async def _pair() -> tuple[GatheredWrites, socket.socket, asyncio.Transport]:
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_accepted_socket(Peer, ours)
    return GatheredWrites(transport, loop), theirs, transport


def _received(sock: socket.socket) -> bytes:
    try:
        return sock.recv(1 << 20)
    except BlockingIOError:
        return b""


def run(test: Coroutine[Any, Any, None]) -> None:
    asyncio.run(test)


def test_writes_of_one_turn_leave_together() -> None:
    """Nothing is sent while the turn runs; head and body go out as one."""

    async def scenario() -> None:
        writes, theirs, transport = await _pair()
        writes.write(b"HTTP/1.1 200 OK\r\n\r\n")
        writes.write(b"{}")
        assert _received(theirs) == b""
        await asyncio.sleep(0.01)
        assert _received(theirs) == b"HTTP/1.1 200 OK\r\n\r\n{}"
        transport.close()
        theirs.close()

    run(scenario())


def test_large_writes_are_not_held() -> None:
    """Past the gather limit, what is gathered is sent at once."""

    async def scenario() -> None:
        writes, theirs, transport = await _pair()
        writes.write(b"x" * (GATHER_LIMIT + 1))
        assert len(_received(theirs)) > 0
        transport.close()
        theirs.close()

    run(scenario())


def test_close_sends_what_is_gathered() -> None:
    """Closing sends the pending answer before the connection ends."""

    async def scenario() -> None:
        writes, theirs, _ = await _pair()
        writes.write(b"last words")
        writes.close()
        assert writes.is_closing()
        await asyncio.sleep(0.01)
        assert _received(theirs) == b"last words"
        assert _received(theirs) == b""
        theirs.close()

    run(scenario())
