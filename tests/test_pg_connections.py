"""The connections the hot reads share on PostgreSQL: never more than
allowed, none lost to a failure or a cancelled read, all ended on close."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from netcalc.pg_connections import ReadConnections
from tests.services import PostgresServer

BACKEND = "SELECT pg_backend_pid()"
SLOW_BACKEND = "SELECT pg_backend_pid() FROM pg_sleep($1)"

HANG_GUARD_SECONDS = 10
"""Long enough for any read here; reached only if a connection was lost."""


@pytest.fixture
def url(postgres: PostgresServer) -> str:
    return postgres.url()


def run_with(
    url: str, most: int, test: Callable[[ReadConnections], Awaitable[None]]
) -> None:
    async def main() -> None:
        connections = ReadConnections(url, most)
        try:
            await asyncio.wait_for(test(connections), HANG_GUARD_SECONDS)
        finally:
            await connections.close()

    asyncio.run(main())


async def backend(connections: ReadConnections, pause: float = 0.0) -> int:
    [(pid,)] = await connections.fetch(SLOW_BACKEND, (pause,))
    return int(pid)


async def is_running(url: str, pid: int) -> bool:
    observer = await asyncpg.connect(url)
    try:
        found = await observer.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid
        )
    finally:
        await observer.close()
    return bool(found)


async def until_ended(url: str, pid: int) -> bool:
    # The server ends a backend a moment after its client has gone.
    for _ in range(100):
        if not await is_running(url, pid):
            return True
        await asyncio.sleep(0.05)
    return False


def test_concurrent_reads_share_at_most_the_allowed_connections(url: str) -> None:
    async def test(connections: ReadConnections) -> None:
        pids = await asyncio.gather(*(backend(connections, 0.05) for _ in range(6)))
        assert len(set(pids)) == 2

    run_with(url, 2, test)


def test_reads_in_turn_reuse_one_connection(url: str) -> None:
    async def test(connections: ReadConnections) -> None:
        pids = [await backend(connections) for _ in range(3)]
        assert len(set(pids)) == 1

    run_with(url, 3, test)


def test_a_failed_read_ends_its_connection_and_the_next_read_answers(url: str) -> None:
    async def test(connections: ReadConnections) -> None:
        first = await backend(connections)
        with pytest.raises(asyncpg.DivisionByZeroError):
            await connections.fetch("SELECT 1 / 0", ())
        assert await until_ended(url, first)
        assert await backend(connections) != first

    run_with(url, 1, test)


def test_a_connection_the_server_ended_is_not_handed_out(url: str) -> None:
    async def test(connections: ReadConnections) -> None:
        first = await backend(connections)
        observer = await asyncpg.connect(url)
        try:
            assert await observer.fetchval("SELECT pg_terminate_backend($1)", first)
        finally:
            await observer.close()
        # asyncpg sees the closed socket once the loop has read it.
        await asyncio.sleep(0.2)
        assert await backend(connections) != first

    run_with(url, 1, test)


def test_a_read_cancelled_while_waiting_loses_no_connection(url: str) -> None:
    async def test(connections: ReadConnections) -> None:
        holder = asyncio.create_task(backend(connections, 0.2))
        await asyncio.sleep(0.05)
        waiter = asyncio.create_task(backend(connections))
        await asyncio.sleep(0.05)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert await backend(connections) == await holder

    run_with(url, 1, test)


def test_a_read_cancelled_once_handed_a_connection_gives_it_back(url: str) -> None:
    async def test(connections: ReadConnections) -> None:
        waiter: asyncio.Task[int] | None = None

        async def hold_then_cancel_the_waiter() -> int:
            pid = await backend(connections, 0.1)
            # The connection went to the waiter as this read ended; the
            # waiter has not run since.
            assert waiter is not None
            waiter.cancel()
            return pid

        holder = asyncio.create_task(hold_then_cancel_the_waiter())
        await asyncio.sleep(0.03)
        waiter = asyncio.create_task(backend(connections))
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert await backend(connections) == await holder

    run_with(url, 1, test)


def test_close_ends_the_idle_connections(url: str) -> None:
    async def main() -> None:
        connections = ReadConnections(url, 2)
        pids = await asyncio.gather(
            backend(connections, 0.05), backend(connections, 0.05)
        )
        await connections.close()
        for pid in pids:
            assert await until_ended(url, pid)

    asyncio.run(main())


def test_reads_busy_or_waiting_at_close_answer_then_end_their_connections(
    url: str,
) -> None:
    async def main() -> None:
        connections = ReadConnections(url, 1)
        holder = asyncio.create_task(backend(connections, 0.2))
        await asyncio.sleep(0.05)
        waiting = asyncio.create_task(backend(connections))
        await asyncio.sleep(0.05)
        await connections.close()
        pids = await asyncio.wait_for(
            asyncio.gather(holder, waiting), HANG_GUARD_SECONDS
        )
        for pid in pids:
            assert await until_ended(url, pid)

    asyncio.run(main())
