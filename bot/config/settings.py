"""Process-wide settings from the environment and `.env` (pydantic-settings), and the validators they share."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot import durations
from bot.channels import parse_clock
from bot.commands import known_timezone
from bot.config.problems import problem_lines
from bot.errors import ConfigError
from bot.text import has_control

MAX_DURATION = timedelta(days=3650)


def parse_duration(value: Any) -> timedelta:
    """`30m`, `24h`, `7d`, `90s` or a plain number of seconds (decimals allowed), at most 3650 days."""
    if isinstance(value, timedelta):
        return value
    return durations.parse_duration(value, longest=MAX_DURATION, bare_numbers=True, decimals=True, spaces=True)


MIN_METRICS_TOKEN = 16


class Settings(BaseSettings):
    """Process-wide settings, read from environment variables and `.env`."""

    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", hide_input_in_errors=True, populate_by_name=True
    )

    config_path: Path | None = Field(None, alias="CREDITBOT_CONFIG")
    database_url: str = Field("sqlite+aiosqlite:///./data/creditbot.db", alias="CREDITBOT_DATABASE_URL")
    concurrency: int = Field(16, ge=1, le=1000, alias="CREDITBOT_CONCURRENCY")
    per_host_concurrency: int = Field(4, ge=1, le=100, alias="CREDITBOT_PER_HOST_CONCURRENCY")
    fetch_timeout: timedelta = Field(timedelta(seconds=10), alias="CREDITBOT_FETCH_TIMEOUT")
    stale_after: timedelta = Field(timedelta(hours=24), alias="CREDITBOT_STALE_AFTER")
    cache_seconds: float = Field(60, ge=0, le=86400, allow_inf_nan=False, alias="CREDITBOT_CACHE_SECONDS")
    answer_seconds: float = Field(2.5, gt=0, le=60, allow_inf_nan=False, alias="CREDITBOT_ANSWER_SECONDS")
    retention_days: int = Field(400, ge=1, le=3660, alias="CREDITBOT_RETENTION_DAYS")
    # Breakdowns by model, project and key fetched after polls (at most hourly per account); off, they are
    # fetched only when asked for (`creditbot breakdown`, `credits breakdown`).
    breakdowns: bool = Field(True, alias="CREDITBOT_BREAKDOWNS")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", alias="CREDITBOT_LOG_LEVEL"
    )
    log_format: Literal["text", "json"] = Field("text", alias="CREDITBOT_LOG_FORMAT")

    poll_seconds: float = Field(900, ge=1, le=86400, allow_inf_nan=False, alias="CREDITBOT_POLL_SECONDS")
    dispatch_seconds: float = Field(10, ge=0.1, le=3600, allow_inf_nan=False, alias="CREDITBOT_DISPATCH_SECONDS")
    delivery_concurrency: int = Field(8, ge=1, le=100, alias="CREDITBOT_DELIVERY_CONCURRENCY")
    stop_grace_seconds: float = Field(10, ge=1, le=300, allow_inf_nan=False, alias="CREDITBOT_STOP_GRACE_SECONDS")
    timezone: str = Field("UTC", alias="CREDITBOT_TIMEZONE")
    summary_time: str = Field("09:00", alias="CREDITBOT_SUMMARY_TIME")
    runway_warn_days: Decimal = Field(
        Decimal(7), ge=0, le=3650, allow_inf_nan=False, alias="CREDITBOT_RUNWAY_WARN_DAYS"
    )
    failures_before_alert: int = Field(3, ge=1, le=1000, alias="CREDITBOT_FAILURES_BEFORE_ALERT")
    hysteresis: Decimal = Field(Decimal("0.10"), ge=0, le=1, alias="CREDITBOT_HYSTERESIS")
    spike_min: Decimal = Field(
        Decimal(1), ge=0, le=Decimal("1e12"), allow_inf_nan=False, alias="CREDITBOT_SPIKE_MIN"
    )
    reminder_interval: timedelta | None = Field(None, alias="CREDITBOT_REMINDER_INTERVAL")
    port: int = Field(3000, ge=0, le=65535, alias="PORT")
    http_enabled: bool = Field(True, alias="CREDITBOT_HTTP")
    metrics_token: SecretStr | None = Field(None, alias="CREDITBOT_METRICS_TOKEN")
    metrics_public: bool = Field(False, alias="CREDITBOT_METRICS_PUBLIC")
    chart_dir: Path = Field(Path("data/charts"), alias="CREDITBOT_CHART_DIR")

    slack_bot_token: SecretStr | None = Field(None, alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(None, alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(None, alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field("https://slack.com/api/", alias="SLACK_API_URL")
    slack_calls_per_second: float = Field(20, gt=0, le=100, alias="SLACK_CALLS_PER_SECOND")
    slack_viewers: Annotated[list[str], NoDecode] = Field(default_factory=list, alias="CREDITBOT_SLACK_VIEWERS")
    slack_admins: Annotated[list[str], NoDecode] = Field(default_factory=list, alias="CREDITBOT_SLACK_ADMINS")

    discord_token: SecretStr | None = Field(None, alias="DISCORD_TOKEN")
    discord_guild_ids: Annotated[list[int], NoDecode] = Field(default_factory=list, alias="DISCORD_GUILD_IDS")
    discord_viewer_roles: Annotated[list[int], NoDecode] = Field(
        default_factory=list, alias="CREDITBOT_DISCORD_VIEWER_ROLES"
    )
    discord_api_url: str = Field("https://discord.com/api/v10", alias="DISCORD_API_URL")
    discord_gateway_url: str | None = Field(None, alias="DISCORD_GATEWAY_URL")

    openai_admin_key: SecretStr | None = Field(None, alias="OPENAI_ADMIN_KEY")
    anthropic_admin_key: SecretStr | None = Field(None, alias="ANTHROPIC_ADMIN_KEY")
    openrouter_api_key: SecretStr | None = Field(None, alias="OPENROUTER_API_KEY")
    deepseek_api_key: SecretStr | None = Field(None, alias="DEEPSEEK_API_KEY")
    moonshot_api_key: SecretStr | None = Field(None, alias="MOONSHOT_API_KEY")
    moonshot_base_url: str | None = Field(None, alias="MOONSHOT_BASE_URL")
    deepseek_currency: str | None = Field(None, alias="DEEPSEEK_CURRENCY")
    openai_session_key: SecretStr | None = Field(None, alias="OPENAI_SESSION_KEY")
    relay_api_key: SecretStr | None = Field(None, alias="RELAY_API_KEY")
    relay_base_url: str | None = Field(None, alias="RELAY_BASE_URL")
    siliconflow_api_key: SecretStr | None = Field(None, alias="SILICONFLOW_API_KEY")
    novita_api_key: SecretStr | None = Field(None, alias="NOVITA_API_KEY")
    xai_management_key: SecretStr | None = Field(None, alias="XAI_MANAGEMENT_KEY")
    venice_api_key: SecretStr | None = Field(None, alias="VENICE_API_KEY")
    stepfun_api_key: SecretStr | None = Field(None, alias="STEPFUN_API_KEY")
    deepinfra_api_key: SecretStr | None = Field(None, alias="DEEPINFRA_API_KEY")
    elevenlabs_api_key: SecretStr | None = Field(None, alias="ELEVENLABS_API_KEY")

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # A PostgreSQL URL carries its password: the repr shows the URL without it.
        for name, value in super().__repr_args__():
            password = database_password(value) if name == "database_url" else None
            yield name, value.replace(password, "***") if password else value

    @field_validator("config_path", "chart_dir")
    @classmethod
    def _path(cls, value: Path | None) -> Path | None:
        # A NUL or other control character would make every later file operation raise, far from here.
        if value is not None and has_control(str(value)):
            raise ValueError("must not contain control characters")
        return value

    @field_validator("fetch_timeout", "stale_after", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta:
        return parse_duration(value)

    @field_validator("fetch_timeout")
    @classmethod
    def _fetch_timeout(cls, value: timedelta) -> timedelta:
        # Below a tenth of a second nothing answers; beyond five minutes a poll would wait on one account.
        if not timedelta(seconds=0.1) <= value <= timedelta(seconds=300):
            raise ValueError("must be between 0.1 s and 300 s")
        return value

    @field_validator("stale_after")
    @classmethod
    def _stale_after(cls, value: timedelta) -> timedelta:
        if value > timedelta(days=30):
            raise ValueError("must be at most 30 days")
        return value

    @field_validator(
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        "discord_token",
        "metrics_token",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        # .env.example ships these as empty lines: an empty value means "not configured".
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("deepseek_currency", mode="before")
    @classmethod
    def _currency(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        text = str(value).strip()
        if len(text) != 3 or not text.isalpha():
            raise ValueError("must be a three-letter currency code such as CNY or USD")
        return text.upper()

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        token = value.get_secret_value().strip()
        if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
            raise ValueError("must be printable ASCII without spaces (it travels in an HTTP header)")
        if len(token) < MIN_METRICS_TOKEN:
            raise ValueError(
                f"must be at least {MIN_METRICS_TOKEN} characters; make one with: openssl rand -hex 32"
            )
        return SecretStr(token)

    @field_validator("discord_guild_ids", "discord_viewer_roles", mode="before")
    @classmethod
    def _id_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            items = [item.strip() for item in value.split(",") if item.strip()]
            if not all(item.isdigit() for item in items):
                raise ValueError("must be comma-separated numeric IDs")
            return [int(item) for item in items]
        return value

    @field_validator("discord_api_url")
    @classmethod
    def _discord_url(cls, value: str) -> str:
        validate_base_url(value + "/x")  # keep a trailing /v10: it is part of the base here
        return value.rstrip("/")

    @field_validator("discord_gateway_url")
    @classmethod
    def _gateway_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if any(c.isspace() or not c.isprintable() for c in value.strip()):
            raise ValueError("must not contain spaces or control characters")
        parts = urlsplit(value.strip())
        if parts.scheme not in ("ws", "wss") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("must be a ws:// or wss:// URL without a query string")
        if parts.username or parts.password:
            raise ValueError("must not carry a user name or password")
        return value.strip()

    @property
    def discord_enabled(self) -> bool:
        """True when a Discord bot token is configured."""
        return self.discord_token is not None and bool(self.discord_token.get_secret_value().strip())

    @field_validator("slack_viewers", "slack_admins", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        # List settings are comma-separated in the environment: A,B,C.
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _slack_url(cls, value: str) -> str:
        validate_base_url(value)
        return value if value.endswith("/") else value + "/"

    @property
    def slack_enabled(self) -> bool:
        """True when a Slack bot token is configured."""
        return self.slack_bot_token is not None and bool(self.slack_bot_token.get_secret_value().strip())

    @field_validator("reminder_interval", mode="before")
    @classmethod
    def _reminder(cls, value: Any) -> timedelta | None:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "off", "none", "0")):
            return None
        return parse_duration(value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_timezone(value)

    @field_validator("summary_time")
    @classmethod
    def _summary_time(cls, value: str) -> str:
        parse_clock(value)
        return value.strip()

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    def given(self, variable: str) -> bool:
        """True when the setting read from this environment variable has a value that is not blank (a variable
        that is no setting of creditbot's, such as one an added platform reads, is looked up directly)."""
        name = next((name for name, info in type(self).model_fields.items() if info.alias == variable), None)
        value = getattr(self, name) if name else os.environ.get(variable)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        return value is not None and bool(str(value).strip())

    def discovery_key(self, variable: str) -> SecretStr | None:
        """The key behind one discovery variable, if it is set and not blank."""
        value: SecretStr | None = getattr(self, variable.lower())
        if value is None or not value.get_secret_value().strip():
            return None
        try:
            return SecretStr(check_key(value.get_secret_value()))
        except ValueError as exc:
            raise ConfigError([f"environment: {variable}: {exc}"]) from None


def check_timezone(value: str) -> str:
    """An IANA timezone name such as Europe/Paris, or ValueError."""
    if not known_timezone(value):
        raise ValueError(f"'{value[:60]}' is not an IANA timezone such as Europe/Paris or UTC")
    return value


def database_password(url: str) -> str | None:
    """The password inside a database URL, as written (still percent-encoded), if it has one."""
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def check_key(value: str) -> str:
    """A key without surrounding whitespace; refuses empty keys and characters no HTTP header can carry."""
    key = value.strip()
    if not key:
        raise ValueError("is empty")
    if not key.isascii() or not key.isprintable() or any(c.isspace() for c in key):
        raise ValueError("contains spaces, control or non-ASCII characters (check for a stray paste)")
    return key


def validate_base_url(value: str) -> str:
    """A provider base URL: http(s)://host[:port][/prefix], no query, fragment or credentials."""
    if any(c.isspace() or not c.isprintable() for c in value.strip()):
        # urlsplit silently drops tabs and newlines, so the URL checked would not be the URL used.
        raise ValueError("must not contain spaces or control characters")
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        raise ValueError("is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("has no host")
    if parts.username or parts.password:
        raise ValueError("must not carry a user name or password; put keys in api_key")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query string or fragment")
    if ".." in parts.path.split("/"):
        raise ValueError("must not contain '..' path segments")
    del port
    # Provider paths start at the host root (/v1/...), so an SDK-style ".../v1" base would double it.
    return value.strip().rstrip("/").removesuffix("/v1")


def validate_source_url(value: str) -> str:
    """A full http(s) URL of a JSON endpoint (http-json's `url`): a path and a query are allowed, credentials
    and a fragment are not."""
    base, _, query = value.strip().partition("?")
    if any(c.isspace() or not c.isprintable() for c in query):
        raise ValueError("must not contain spaces or control characters")
    if "#" in query:
        raise ValueError("must not have a fragment")
    validate_base_url(base)  # scheme, host, no credentials; its /v1 trimming is for provider prefixes only
    return base.rstrip("/") + (f"?{query}" if query else "")


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and `.env`, or a ConfigError naming each bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(problem_lines(exc, "environment", "settings")) from None
