"""One read shared by every caller that asks before it is sent.

A hot path that must see every change made before it began (a revocation,
a failure mark of another instance) cannot reuse an answer already on its
way: that read may have been sent before the change. It need not send a
read of its own either. A caller joins the next read to be sent, which
starts once the read on its way has come back, so each caller's answer
comes from a read sent after it asked, and a busy event loop sends about
one read a turn rather than one a request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class FreshRead(Generic[T]):
    """Answers of `read`, each from a read sent after its caller asked."""

    def __init__(self, read: Callable[[], Awaitable[T]]) -> None:
        self._read = read
        self._next: asyncio.Future[T] | None = None
        self._reader: asyncio.Task[None] | None = None

    async def answer(self) -> T:
        """The answer of the next read to be sent."""
        answer = self._next
        if answer is None:
            loop = asyncio.get_running_loop()
            answer = self._next = loop.create_future()
            if self._reader is None or self._reader.done():
                self._reader = loop.create_task(self._send())
        # Shielded: one caller cancelled must not cancel the others' answer.
        return await asyncio.shield(answer)

    async def _send(self) -> None:
        while self._next is not None:
            answer, self._next = self._next, None
            try:
                answer.set_result(await self._read())
            except Exception as error:
                answer.set_exception(error)
                # Callers queued behind a read that failed fail with it,
                # rather than wait for a failure of their own.
                queued, self._next = self._next, None
                if queued is not None:
                    queued.set_exception(error)

    def forget(self) -> None:
        """Drop the reads on their way: a later event loop sends its own."""
        self._next = self._reader = None
