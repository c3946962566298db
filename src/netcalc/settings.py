"""Settings: one object, read once at start from `NETCALC_*` variables.

A missing or malformed value fails at start with the variable named. The
server secret never shows in a `repr` or a log line.
"""

from __future__ import annotations

import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from limits import RateLimitItem, parse
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from netcalc.errors import UsageError

DEFAULT_DATABASE_URL = "sqlite:///./data/netcalc.db"

SigningAlgorithm = Literal["ES256", "EdDSA", "RS256"]

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

SignUp = Literal["open", "closed"]
"""Whether visitors may create accounts in the console: `closed` leaves
account creation to an operator's `netcalc accounts create`."""

MAX_ROTATION_GRACE = 30 * 86400
"""The longest an old secret may keep working after a rotation: 30 days."""


class Settings(BaseSettings):
    """Everything an operator can set, with the defaults of one machine."""

    model_config = SettingsConfigDict(env_prefix="NETCALC_", frozen=True)

    database_url: str = DEFAULT_DATABASE_URL
    secret_key: SecretStr | None = None
    secret_key_file: Path = Path("data/secret.key")
    issuer: str = "http://127.0.0.1:8000"
    audience: str = "netcalc"
    signing_alg: SigningAlgorithm = "ES256"
    token_ttl: int = Field(3600, ge=1, le=86400)
    token_ttl_max: int = Field(86400, ge=1, le=31 * 86400)
    rotation_grace: int = Field(86400, ge=0, le=MAX_ROTATION_GRACE)
    body_limit: int = Field(16384, ge=256, le=1 << 20)
    # What one connection may cost before it is answered or cut off; see
    # netcalc.http_limits and the measured bounds in SECURITY.md.
    header_limit: int = Field(16384, ge=1024, le=1 << 20)
    request_timeout_seconds: float = Field(10.0, gt=0, le=300)
    keep_alive_seconds: int = Field(30, ge=1, le=3600)
    max_connections: int = Field(1000, ge=1, le=100_000)
    failed_auth_per_client: str = "10/minute"
    failed_auth_per_address: str = "60/minute"
    failed_signin_per_email: str = "5/minute"
    failed_signin_per_address: str = "30/minute"
    signup: SignUp = "open"
    signups_per_address: str = "10/hour"
    key_refresh_seconds: float = Field(30.0, gt=0)
    usage_flush_seconds: float = Field(5.0, gt=0)
    clock_skew_seconds: int = Field(30, ge=0, le=300)
    log_level: LogLevel = "INFO"
    # Comma-separated proxy addresses whose X-Forwarded-For is believed;
    # empty trusts none, so callers cannot choose their own address.
    forwarded_allow_ips: str = ""
    redis_url: str | None = None
    revocation_resync_seconds: float = Field(10.0, gt=0)
    # Days an audit event is kept; 0 keeps every event.
    audit_retention_days: int = Field(365, ge=0, le=100 * 365)
    # Each account's saved subnets are listed whole in one answer.
    subnets_per_account: int = Field(1000, ge=1, le=100_000)

    @field_validator(
        "failed_auth_per_client",
        "failed_auth_per_address",
        "failed_signin_per_email",
        "failed_signin_per_address",
        "signups_per_address",
    )
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        try:
            parse(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a rate such as '10/minute'") from exc
        return value

    @field_validator("issuer")
    @classmethod
    def _issuer_url(cls, value: str) -> str:
        # RFC 8414 §2: clients find the metadata under the issuer's URL, and
        # resource servers compare `iss` with it character for character.
        # urlsplit drops tabs and line breaks silently, as an env file's
        # last newline: they are refused before it reads the value.
        if any(char.isspace() or not char.isprintable() for char in value):
            raise ValueError(f"{value!r} holds a space or a control character")
        url = urlsplit(value)
        try:
            url.port  # noqa: B018 (read for its check: a port must be a number)
        except ValueError:
            raise ValueError(f"{value!r} has no valid port") from None
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        if "?" in value or "#" in value:
            raise ValueError(f"{value!r} may have no query or fragment")
        if "@" in url.netloc:
            # Not quoted back: the value holds a password.
            raise ValueError("the URL may not name a user or a password")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_name(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @cached_property
    def client_limit(self) -> RateLimitItem:
        """Failed authentications allowed for one client id."""
        return parse(self.failed_auth_per_client)

    @cached_property
    def address_limit(self) -> RateLimitItem:
        """Failed authentications allowed from one remote address."""
        return parse(self.failed_auth_per_address)

    @property
    def signup_open(self) -> bool:
        """True when visitors may create accounts in the console."""
        return self.signup == "open"

    @property
    def is_sqlite(self) -> bool:
        """True when state lives in an SQLite file on this machine."""
        return self.database_url.startswith("sqlite")

    def server_secret(self) -> bytes:
        """The key that hashes client secrets and encrypts signing keys.

        Taken from NETCALC_SECRET_KEY when set; otherwise read from (or, on
        first start, written to) NETCALC_SECRET_KEY_FILE, so that one machine
        works without setup while many instances share one configured key.
        """
        if self.secret_key is not None:
            value = self.secret_key.get_secret_value().encode()
            if len(value) < 32:
                raise UsageError(
                    "NETCALC_SECRET_KEY must be at least 32 characters long."
                )
            return value
        return _key_file(self.secret_key_file)


def _key_file(path: Path) -> bytes:
    if path.exists():
        value = path.read_bytes().strip()
        if len(value) < 32:
            raise UsageError(f"The secret key file '{path}' is too short.")
        return value
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48).encode()
    # O_EXCL: when two workers start together only one key is ever written.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _key_file(path)
    with os.fdopen(fd, "wb") as handle:
        handle.write(value)
    return value


def load_settings() -> Settings:
    """Read the environment, naming any bad variable in the error."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"NETCALC_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise UsageError(f"Invalid settings: {problems}") from None
