"""The failure throttle's memory of recent failures, on a clock the test moves."""

from __future__ import annotations

import asyncio

import pytest
from limits import parse

from netcalc.auth.throttle import FailureThrottle, _LastFailures
from netcalc.errors import TooManyRequests


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_failure_is_remembered_for_its_window_only() -> None:
    """A key counts as recently failed until its limit's window has passed."""
    clock = Clock()
    failures = _LastFailures(clock)
    failures.note("address:192.0.2.1", parse("5/minute"))
    clock.now += 59
    assert failures.within_window("address:192.0.2.1")
    assert not failures.within_window("address:192.0.2.2")
    clock.now += 2
    assert not failures.within_window("address:192.0.2.1")


def test_any_failure_counts_until_the_last_window_ends() -> None:
    """With failures of keys whose windows differ, some failure is recent
    until the window that ends last has passed."""
    clock = Clock()
    failures = _LastFailures(clock)
    assert not failures.any_within_window()
    failures.note("client:long", parse("5/hour"))
    clock.now += 30
    failures.note("address:192.0.2.1", parse("5/minute"))
    clock.now += 3000
    assert failures.any_within_window()
    assert not failures.within_window("address:192.0.2.1")
    clock.now += 600
    assert not failures.any_within_window()


def test_expired_failures_are_forgotten() -> None:
    """Failures from ever new addresses do not grow the memory without bound."""
    clock = Clock()
    failures = _LastFailures(clock)
    for minute in range(20):
        for n in range(500):
            failures.note(f"address:{minute}.{n}", parse("5/minute"))
        clock.now += 61
    assert len(failures) < 2 * 1024


def test_a_success_after_failures_is_still_refused() -> None:
    """The shortcut for keys without failures never skips one that failed."""
    throttle = FailureThrottle(parse("2/minute"), parse("100/minute"))

    async def scenario() -> None:
        await throttle.check("nci_a", "192.0.2.1")
        await throttle.failed("nci_a", "192.0.2.1")
        await throttle.check("nci_a", "192.0.2.1")
        await throttle.failed("nci_a", "192.0.2.1")
        with pytest.raises(TooManyRequests):
            await throttle.check("nci_a", "192.0.2.1")
        await throttle.check("nci_b", "192.0.2.1")

    asyncio.run(scenario())


def test_failures_past_their_window_no_longer_refuse() -> None:
    """Once the last failure's window has passed, the caller is let through
    again, though its failures are still in memory."""
    clock = Clock()
    throttle = FailureThrottle(parse("1/minute"), parse("100/minute"), clock=clock)

    async def scenario() -> None:
        await throttle.failed("nci_a", "192.0.2.1")
        with pytest.raises(TooManyRequests):
            await throttle.failed("nci_a", "192.0.2.1")
        with pytest.raises(TooManyRequests):
            await throttle.check("nci_a", "192.0.2.1")
        clock.now += 61
        await throttle.check("nci_a", "192.0.2.1")

    asyncio.run(scenario())
