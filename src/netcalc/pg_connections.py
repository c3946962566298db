"""A few PostgreSQL connections shared by the reads of one event loop.

asyncpg's pool guards every checkout with a shielded release task and two
timeouts, and for an indexed read that answers in a fraction of a
millisecond those cost as much again as the read itself. A read needs less:
take an idle connection, run one statement, give the connection back. A
connection on which anything went wrong is ended rather than reused, since
its state is then unknown, and the next read opens another.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import asyncpg


class ReadConnections:
    """At most `most` connections to `dsn`, opened when first needed."""

    def __init__(self, dsn: str, most: int) -> None:
        self._dsn = dsn
        self._most = most
        self._idle: list[asyncpg.Connection] = []
        # Each waiter gets a connection, or None: leave to open one.
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._allotted = 0
        """Connections open, being opened, or left to a waiter to open."""
        self._closed = False

    async def fetch(self, sql: str, arguments: tuple[Any, ...]) -> list[Any]:
        """The rows of one statement, run on a connection of the pool."""
        connection = self._idle_connection() or await self._new_or_freed()
        try:
            rows: list[Any] = await connection.fetch(sql, *arguments)
        except BaseException:
            self._end(connection)
            raise
        self._give_back(connection)
        return rows

    async def close(self) -> None:
        """End the idle connections now and the busy ones when given back.

        Reads still waiting open a connection of their own, ended after them.
        """
        self._closed = True
        while (waiter := self._next_waiter()) is not None:
            self._allotted += 1
            waiter.set_result(None)
        idle, self._idle = self._idle, []
        self._allotted -= len(idle)
        await asyncio.gather(
            *(connection.close() for connection in idle if not connection.is_closed())
        )

    def _idle_connection(self) -> asyncpg.Connection | None:
        # Most recently used first: the others may close while idle, when the
        # server restarts or ends them, and asyncpg notices that on its own.
        while self._idle:
            connection = self._idle.pop()
            if not connection.is_closed():
                return connection
            self._end(connection)
        return None

    async def _new_or_freed(self) -> asyncpg.Connection:
        if self._allotted < self._most:
            self._allotted += 1
            return await self._open()
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            connection = await waiter
        except asyncio.CancelledError:
            self._pass_on(waiter)
            raise
        return connection if connection is not None else await self._open()

    async def _open(self) -> asyncpg.Connection:
        try:
            return await asyncpg.connect(self._dsn)
        except BaseException:
            self._release_allotment()
            raise

    def _give_back(self, connection: asyncpg.Connection) -> None:
        if self._closed:
            self._end(connection)
            return
        waiter = self._next_waiter()
        if waiter is not None:
            waiter.set_result(connection)
        else:
            self._idle.append(connection)

    def _end(self, connection: asyncpg.Connection) -> None:
        connection.terminate()
        self._release_allotment()

    def _release_allotment(self) -> None:
        # A waiter takes over the allotment and opens a connection itself.
        waiter = None if self._closed else self._next_waiter()
        if waiter is not None:
            waiter.set_result(None)
        else:
            self._allotted -= 1

    def _pass_on(self, waiter: asyncio.Future[asyncpg.Connection | None]) -> None:
        # A waiter cancelled after it was handed a connection or an allotment
        # passes it on, so that neither is lost.
        if waiter.cancelled():
            return
        connection = waiter.result()
        if connection is not None:
            self._give_back(connection)
        else:
            self._release_allotment()

    def _next_waiter(self) -> asyncio.Future[asyncpg.Connection | None] | None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                return waiter
        return None
