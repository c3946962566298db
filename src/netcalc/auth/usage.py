"""`last_used_at`, written in batches off the token request's path."""

from __future__ import annotations

import asyncio
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from netcalc.auth.store import record_last_used
from netcalc.db import utcnow
from netcalc.outages import log_background_failure


class UsageRecorder:
    """Remembers when each client last got a token and flushes periodically."""

    def __init__(self, engine: AsyncEngine, interval: float) -> None:
        self._engine = engine
        self._interval = interval
        self._pending: dict[str, datetime] = {}
        self._task: asyncio.Task[None] | None = None

    def used(self, client_id: str) -> None:
        """Note a successful grant; costs a dict write on the hot path."""
        self._pending[client_id] = utcnow()

    async def flush(self) -> None:
        """Write what is pending; a failure keeps it for the next flush."""
        pending, self._pending = self._pending, {}
        try:
            await record_last_used(self._engine, pending)
        except Exception as exc:
            log_background_failure("recording the last use of credentials", exc)
            self._pending = pending | self._pending

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop the timer and write what is still pending."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.flush()
