"""Unexpected errors in the log: a traceback for a bug, one line a second
for an outage, one line a try for background work or a start during an
outage.

While the database or Redis cannot be reached, every request that needs it
fails the same way, and a traceback for each buries every other line: one
instance wrote 36,773 lines during a ten-second PostgreSQL outage. Failures
to connect are therefore logged as one line without a traceback, at most
one each OUTAGE_LINE_SECONDS, the next line counting those left out. Any
other unexpected error is taken for a bug and logged with its traceback.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from asyncpg.exceptions import (
    AdminShutdownError,
    CannotConnectNowError,
    CrashShutdownError,
    PostgresConnectionError,
    TooManyConnectionsError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

logger = logging.getLogger("netcalc")

OUTAGE_LINE_SECONDS = 1.0
"""The least time between two logged connection failures in one process."""

CONNECTION_FAILURES: tuple[type[BaseException], ...] = (
    # Refused, reset, unreachable or timed out; ConnectionError is one too,
    # and asyncio's failure to reach every address of a host is a plain one.
    OSError,
    RedisConnectionError,
    RedisTimeoutError,
    PostgresConnectionError,
    AdminShutdownError,
    CrashShutdownError,
    CannotConnectNowError,
    TooManyConnectionsError,
    # No pooled connection came free: the database is slow to connect to.
    PoolTimeout,
)
"""Errors that say the database or Redis could not be reached."""

FILE_ERRORS: tuple[type[OSError], ...] = (
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)
"""OSErrors about files, not connections: a missing file is a bug to trace."""

_CAUSES_FOLLOWED = 16
"""How deep a chain of causes is searched for a connection failure."""


def connection_failure(error: BaseException) -> BaseException | None:
    """The failure to reach the database or Redis behind `error`, if any.

    Never a SQLAlchemy statement error itself, whose text holds the SQL and
    its parameters: for one that lost its connection, the driver's error.
    """
    current: BaseException | None = error
    for _ in range(_CAUSES_FOLLOWED):
        if current is None:
            return None
        if isinstance(current, CONNECTION_FAILURES) and not isinstance(
            current, FILE_ERRORS
        ):
            return current
        if isinstance(current, DBAPIError):
            if current.connection_invalidated and current.orig is not None:
                return current.orig
            current = current.orig
        elif current.__cause__ is not None or current.__suppress_context__:
            current = current.__cause__
        else:
            current = current.__context__
    return None


class OutageLog:
    """Logs connection failures, at most one line each `interval` seconds."""

    def __init__(
        self,
        interval: float = OUTAGE_LINE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._next_line_at = -math.inf
        self._left_out = 0

    def failed(self, method: str, path: str, cause: BaseException) -> None:
        """Log that answering `method path` failed for want of a connection,
        unless a line was written less than the interval ago."""
        now = self._clock()
        if now < self._next_line_at:
            self._left_out += 1
            return
        self._next_line_at = now + self._interval
        left_out, self._left_out = self._left_out, 0
        logger.error(
            "%s %r failed: the database or Redis cannot be reached (%s: %s)%s",
            method,
            path,
            type(cause).__name__,
            cause,
            f"; {left_out} more such failures since the last line" if left_out else "",
        )


_outages = OutageLog()


def log_unhandled(method: str, path: str, error: BaseException) -> None:
    """Log an error no route expected while answering `method path`."""
    cause = connection_failure(error)
    if cause is None:
        logger.error("unhandled error answering %s %r", method, path, exc_info=error)
    else:
        _outages.failed(method, path, cause)


def log_start_outage(cause: BaseException) -> None:
    """Log that this process cannot start serving: `cause` is the failure to
    reach the database or Redis. One line a try, without a traceback."""
    logger.error(
        "netcalc could not start serving: the database or Redis cannot be "
        "reached (%s: %s)",
        type(cause).__name__,
        cause,
    )


def log_background_failure(doing: str, error: BaseException) -> None:
    """Log that background work, tried again on a timer, failed: `doing`
    names it. An outage gets one line a try, without a traceback."""
    cause = connection_failure(error)
    if cause is None:
        logger.error("%s failed; trying again later", doing, exc_info=error)
        return
    logger.error(
        "%s failed: the database or Redis cannot be reached (%s: %s); "
        "trying again later",
        doing,
        type(cause).__name__,
        cause,
    )
