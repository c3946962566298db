"""The token request line: the same JSON whichever way it is written."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog

from netcalc.auth.client_secrets import new_client_secret
from netcalc.auth.token_request import ClientAuthentication
from netcalc.observe import (
    PROCESSORS,
    TokenLines,
    UtcStamps,
    configure_logging,
    observe_token_request,
)

FIELDS = {
    "endpoint": "/api/auth/token",
    "client_id": "nci_0123456789abcdef0123456789abcdef",
    "status": "OK",
    "latency_ms": 0.125,
    "remote_addr": "127.0.0.1",
}
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z")


def both_lines(fields: dict[str, Any]) -> tuple[str, str]:
    """The line structlog writes for these fields, then the direct one."""
    through_structlog = io.StringIO()
    logger = structlog.wrap_logger(
        structlog.WriteLogger(through_structlog),
        processors=PROCESSORS,
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )
    logger.info("token_request", **fields)
    direct = io.StringIO()
    TokenLines(direct).write(**fields)
    return through_structlog.getvalue(), direct.getvalue()


def test_direct_lines_read_as_structlogs_own() -> None:
    """Keys, their order and every value but the time match structlog's line."""
    through_structlog, direct = both_lines(FIELDS)
    expected = json.loads(through_structlog)
    line = json.loads(direct)
    assert direct.count("\n") == 1
    assert list(line) == list(expected)
    assert {**line, "timestamp": None} == {**expected, "timestamp": None}
    assert ISO_UTC.fullmatch(line["timestamp"])


@pytest.mark.parametrize(
    "changes",
    [
        {"client_id": None},
        {"remote_addr": 'a "quoted" \\ back\nslash\x00'},
        {"remote_addr": "caf\u00e9 \U0001f600 \ud800"},
        {"latency_ms": 1e-05},
        {"latency_ms": 12345.678},
    ],
)
def test_direct_lines_escape_as_structlog_does(changes: dict[str, Any]) -> None:
    """Odd values give byte for byte structlog's line, but for the time."""
    through_structlog, direct = both_lines(FIELDS | changes)
    any_time = re.compile(r'"timestamp": "[^"]*"')
    assert any_time.sub("", direct) == any_time.sub("", through_structlog)


def structlog_stamp(nanoseconds: int) -> str:
    """What structlog's UTC ISO stamper writes at this time since the epoch."""
    moment = datetime(1970, 1, 1, tzinfo=UTC)
    moment += timedelta(microseconds=nanoseconds // 1000)
    return moment.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    "nanoseconds",
    [
        pytest.param(1_780_000_000_123_456_789, id="microseconds cut, not rounded"),
        pytest.param(1_780_000_000_000_000_999, id="no whole microsecond"),
        pytest.param(1_780_000_000_000_001_000, id="one microsecond"),
        pytest.param(1_780_000_000_999_999_999, id="last microsecond of a second"),
        pytest.param(951_782_400_500_000_000, id="leap day"),
    ],
)
def test_stamps_read_as_structlogs_own(nanoseconds: int) -> None:
    """The line's time is written as structlog writes that time."""
    assert UtcStamps(lambda: nanoseconds).now() == structlog_stamp(nanoseconds)


def test_stamps_follow_the_clock_into_the_next_second() -> None:
    """A stamp of a new second is not the second before's, nor is one of the
    same second written again."""
    times = iter([1_780_000_000_999_000_000, 1_780_000_001_000_000_000])
    stamps = UtcStamps(lambda: next(times))
    assert stamps.now() == "2026-05-28T20:26:40.999000Z"
    assert stamps.now() == "2026-05-28T20:26:41Z"


def test_stamps_tell_the_time_now() -> None:
    """With the system clock, a stamp falls between two reads of it."""
    before = datetime.now(UTC)
    stamp = datetime.fromisoformat(UtcStamps().now())
    assert before <= stamp <= datetime.now(UTC)


def take_stderr(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """stderr as a server has it: nobody else has set up logging or taken
    it. pytest sets up both only once the test runs, after its fixtures, so
    a test sets them aside itself."""
    stderr = io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", root.level)
    return stderr


@pytest.fixture
def restore_structlog() -> Iterator[None]:
    """structlog's defaults come back after a test configures it."""
    yield
    structlog.reset_defaults()


@pytest.mark.usefixtures("restore_structlog")
@pytest.mark.parametrize(("level", "lines"), [("INFO", 1), ("WARNING", 0)])
def test_level_decides_whether_the_line_is_written(
    monkeypatch: pytest.MonkeyPatch, level: str, lines: int
) -> None:
    """At INFO each token request writes its line; above INFO none."""
    own_stderr = take_stderr(monkeypatch)
    configure_logging(level)
    observe_token_request(
        endpoint="/api/auth/token",
        client=ClientAuthentication(
            FIELDS["client_id"],  # type: ignore[arg-type]
            "ncs_unchecked",
            used_basic=False,
        ),
        status="OK",
        seconds=0.000125,
        address="127.0.0.1",
    )
    written = own_stderr.getvalue().splitlines()
    assert len(written) == lines
    if lines:
        assert json.loads(written[0]) | {"timestamp": None} == FIELDS | {
            "event": "token_request",
            "timestamp": None,
            "level": "info",
        }


@pytest.mark.usefixtures("restore_structlog")
def test_an_id_not_shaped_as_ours_is_not_logged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A secret sent as the client id, as a caller might paste it, is logged
    only as its length."""
    own_stderr = take_stderr(monkeypatch)
    configure_logging("INFO")
    pasted = new_client_secret()
    observe_token_request(
        endpoint="/api/auth/token",
        client=ClientAuthentication(pasted, pasted, used_basic=False),
        status="CREDENTIALS_NOT_FOUND",
        seconds=0.000125,
        address="127.0.0.1",
    )
    written = own_stderr.getvalue()
    assert pasted not in written
    assert json.loads(written)["client_id"] == f"<unrecognised, {len(pasted)} chars>"


@pytest.mark.usefixtures("restore_structlog")
def test_warnings_and_errors_are_json_lines_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A standard library record, such as an outage's, is one JSON line with
    its time, level and logger, and its traceback inside it."""
    own_stderr = take_stderr(monkeypatch)
    configure_logging("INFO")
    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except OSError as error:
        logging.getLogger("netcalc").error(
            "POST %r failed", "/oauth2/token", exc_info=error
        )

    (line,) = own_stderr.getvalue().splitlines()
    written = json.loads(line)
    assert written["event"] == "POST '/oauth2/token' failed"
    assert (written["logger"], written["level"]) == ("netcalc", "error")
    assert ISO_UTC.fullmatch(written["timestamp"])
    assert written["exception"].startswith("Traceback (most recent call last):")
    assert "ConnectionRefusedError" in written["exception"]


class CountingStream(io.StringIO):
    """A stream that counts the writes it receives."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_lines_of_one_loop_turn_are_written_together() -> None:
    """Three lines of one turn reach the stream in one write, after the turn."""
    stream = CountingStream()
    lines = TokenLines(stream)

    async def three_requests() -> str:
        for _ in range(3):
            lines.write(**FIELDS)
        during_the_turn = stream.getvalue()
        await asyncio.sleep(0)
        return during_the_turn

    assert asyncio.run(three_requests()) == ""
    assert stream.writes == 1
    written = stream.getvalue().splitlines()
    assert [json.loads(line)["client_id"] for line in written] == [
        FIELDS["client_id"]
    ] * 3


def test_a_full_gather_is_written_before_the_turn_ends() -> None:
    """Past GATHER_LINES the lines are written at once, not held."""
    stream = CountingStream()
    lines = TokenLines(stream)

    async def many_requests() -> int:
        for _ in range(TokenLines.GATHER_LINES):
            lines.write(**FIELDS)
        return len(stream.getvalue().splitlines())

    assert asyncio.run(many_requests()) == TokenLines.GATHER_LINES


def test_outside_an_event_loop_each_line_is_written_at_once() -> None:
    """With no loop running there is no turn to wait for."""
    stream = CountingStream()
    TokenLines(stream).write(**FIELDS)
    assert stream.writes == 1
    assert json.loads(stream.getvalue())["status"] == "OK"
