"""A start that fails for want of the database, told in one line.

Starlette answers a lifespan that fails to start with the whole traceback,
which uvicorn logs. A worker started while PostgreSQL is down fails so at
each try (`netcalc.workers` tries again), and its traceback, seventy lines
through the driver's connection pool, says only that the database cannot
be reached. That failure is logged in one line, as an outage is
(`netcalc.outages`); any other keeps its traceback.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from netcalc.outages import connection_failure, log_start_outage


class StartOutages:
    """ASGI middleware: a start that failed for want of the database or
    Redis is logged in one line, without Starlette's traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        failures: list[Message] = []

        async def hold_failure(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed":
                failures.append(message)
            else:
                await send(message)

        try:
            await self.app(scope, receive, hold_failure)
        except BaseException as exc:
            # Starlette sends the failure, then raises what caused it.
            if failures:
                await send(_told(failures[0], exc))
            raise


def _told(failure: Message, error: BaseException) -> Message:
    """The failure to send the server, once logged if it was an outage."""
    cause = connection_failure(error)
    if cause is None:
        return failure
    log_start_outage(cause)
    # uvicorn logs the message it is sent; the line above says it all.
    return {"type": "lifespan.startup.failed", "message": ""}
