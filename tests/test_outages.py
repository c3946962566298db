"""Unexpected errors in the log: an outage about once a second, a bug with
its traceback."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest
from asyncpg.exceptions import CannotConnectNowError
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import IntegrityError, OperationalError

from netcalc.outages import OutageLog, connection_failure

SUBNET = b'{"network_address": "10.0.0.0", "subnet_bits": 24, "name": "x"}'


def _raised(error: BaseException, cause: BaseException | None) -> BaseException:
    """`error` as raised from `cause`, with the chain Python would give it."""
    try:
        try:
            if cause is not None:
                raise cause
        except BaseException as caught:
            raise error from caught
        raise error
    except BaseException as raised:
        return raised


REFUSED = ConnectionRefusedError(111, "Connection refused")
SHUTTING_DOWN = CannotConnectNowError("the database system is shutting down")
REDIS_DOWN = RedisConnectionError("Error 111 connecting to 127.0.0.1:6379.")


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        pytest.param(REFUSED, REFUSED, id="refused"),
        pytest.param(REDIS_DOWN, REDIS_DOWN, id="redis"),
        pytest.param(
            _raised(OperationalError("SELECT 1", {}, SHUTTING_DOWN), SHUTTING_DOWN),
            SHUTTING_DOWN,
            id="sqlalchemy-around-asyncpg",
        ),
        pytest.param(
            _raised(RuntimeError("while saving"), REFUSED), REFUSED, id="caused-by"
        ),
    ],
)
def test_connection_failures_are_found_behind_what_wraps_them(
    error: BaseException, cause: BaseException
) -> None:
    """A failure to reach the database or Redis is found however it is wrapped."""
    assert connection_failure(error) is cause


def test_a_lost_connection_is_named_by_the_drivers_error() -> None:
    """An error SQLAlchemy marks as a lost connection is told by its driver's
    error, never by its own text, which holds the statement's parameters."""
    driver_error = Exception("connection was closed in the middle of operation")
    error = OperationalError(
        "SELECT secret_hash FROM credentials",
        {"id": 1},
        driver_error,
        connection_invalidated=True,
    )
    assert connection_failure(error) is driver_error


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(ValueError("bad value"), id="bug"),
        pytest.param(IntegrityError("INSERT", {}, ValueError("dup")), id="integrity"),
        pytest.param(_raised(KeyError("k"), None), id="uncaused"),
    ],
)
def test_other_errors_are_bugs(error: BaseException) -> None:
    """Errors without a connection failure behind them are not outages."""
    assert connection_failure(error) is None


def test_a_cause_hidden_with_from_none_is_not_followed() -> None:
    """`raise ... from None` says the cause is noise; it is not searched."""
    try:
        try:
            raise REFUSED
        except OSError:
            raise ValueError("translated") from None
    except ValueError as error:
        assert connection_failure(error) is None


@dataclass
class Clock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_outage_is_logged_once_a_second_with_the_count_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Failures within a second of a logged one are only counted; the next
    line says how many there were."""
    clock = Clock()
    outages = OutageLog(clock=clock)
    with caplog.at_level(logging.ERROR, logger="netcalc"):
        for _ in range(10):
            outages.failed("POST", "/api/account/subnets", REFUSED)
            clock.now += 0.05
        clock.now += 0.6
        outages.failed("DELETE", "/api/account/subnets/x", REFUSED)
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2
    assert "ConnectionRefusedError" in lines[0]
    assert "more such" not in lines[0]
    assert lines[1].startswith("DELETE '/api/account/subnets/x' failed")
    assert lines[1].endswith("; 9 more such failures since the last line")
    assert all(record.exc_info is None for record in caplog.records)
