"""Settings read from NETCALC_* variables: a bad value stops the start, named."""

from __future__ import annotations

from pathlib import Path

import pytest

from netcalc.errors import UsageError
from netcalc.settings import load_settings
from tests.support import ServerProcess


@pytest.mark.parametrize(
    "issuer",
    [
        "https://auth.example.com",
        "https://auth.example.com/tenant",
        "http://127.0.0.1:8000",
        "http://[::1]:8000",
    ],
)
def test_issuer_urls_are_taken_as_written(
    monkeypatch: pytest.MonkeyPatch, issuer: str
) -> None:
    """An http(s) URL is the issuer exactly as written, since `iss` is
    compared with it character for character."""
    monkeypatch.setenv("NETCALC_ISSUER", issuer)
    assert load_settings().issuer == issuer


@pytest.mark.parametrize(
    ("issuer", "reason"),
    [
        ("notaurl", "is not an http:// or https:// URL"),
        ("ftp://auth.example.com", "is not an http:// or https:// URL"),
        ("https://", "is not an http:// or https:// URL"),
        ("https://auth.example.com/?tenant=1", "may have no query or fragment"),
        ("https://auth.example.com/#top", "may have no query or fragment"),
        ("https://auth.example.com?", "may have no query or fragment"),
        ("https://auth.example.com#", "may have no query or fragment"),
        ("https://auth.example.com\n", "holds a space or a control character"),
        (" https://auth.example.com", "holds a space or a control character"),
        ("https://auth.example.com:99999", "has no valid port"),
        ("https://auth.example.com:https", "has no valid port"),
        ("https://admin:hunter2@auth.example.com", "may not name a user"),
    ],
)
def test_an_issuer_that_is_no_url_is_refused(
    monkeypatch: pytest.MonkeyPatch, issuer: str, reason: str
) -> None:
    """RFC 8414 §2: the issuer is a URL with no query or fragment."""
    monkeypatch.setenv("NETCALC_ISSUER", issuer)
    with pytest.raises(UsageError, match="NETCALC_ISSUER") as refused:
        load_settings()
    assert reason in refused.value.message
    assert "hunter2" not in refused.value.message


def test_sign_up_is_open_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without NETCALC_SIGNUP the console lets visitors create accounts."""
    monkeypatch.delenv("NETCALC_SIGNUP", raising=False)
    assert load_settings().signup_open


@pytest.mark.parametrize(("value", "is_open"), [("open", True), ("closed", False)])
def test_sign_up_is_open_or_closed(
    monkeypatch: pytest.MonkeyPatch, value: str, is_open: bool
) -> None:
    """NETCALC_SIGNUP takes `open` or `closed`."""
    monkeypatch.setenv("NETCALC_SIGNUP", value)
    assert load_settings().signup_open is is_open


@pytest.mark.parametrize(
    "value",
    ["off", "no", "Closed", "closed ", ""],
    ids=["off", "no", "capitalised", "trailing-space", "empty"],
)
def test_a_sign_up_mode_other_than_open_or_closed_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """Any other value of NETCALC_SIGNUP stops the start, named, with both
    choices."""
    monkeypatch.setenv("NETCALC_SIGNUP", value)
    with pytest.raises(UsageError, match="NETCALC_SIGNUP") as refused:
        load_settings()
    assert "'open' or 'closed'" in refused.value.message


@pytest.mark.server
def test_serve_stops_at_start_on_a_bad_setting(tmp_path: Path) -> None:
    """The server does not start on a bad issuer; it names the variable."""
    process = ServerProcess(tmp_path / "bad", NETCALC_ISSUER="notaurl")
    refused = process.cli("serve", "--port", str(process.port))
    assert refused.returncode == 1
    assert refused.stderr.startswith("Error: Invalid settings: NETCALC_ISSUER")
    assert "Traceback" not in refused.stderr
