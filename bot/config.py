"""Settings from the environment and `.env`, and accounts from an optional TOML file or zero-config discovery."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from dotenv import dotenv_values
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot import durations
from bot.channels import Channel, parse_clock, parse_quiet_hours
from bot.commands import Verb, known_timezone
from bot.errors import ConfigError
from bot.models import Account, Severity
from bot.money import AmountError, Money, parse_amount
from bot.providers import PROVIDERS
from bot.providers.moonshot import host_currency
from bot.text import has_control, mask_secret, redact

__all__ = ["Account", "AppConfig", "ConfigError", "Settings", "load_config", "load_settings", "mask_secret"]

# Command words of the chat command layer: an account named like one would make commands ambiguous.
RESERVED_NAMES = frozenset(verb.value for verb in Verb)
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
VAR_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
DEFAULT_CONFIG_PATH = Path("creditbot.toml")
MAX_DURATION = timedelta(days=3650)

# Zero-config discovery: variable -> provider (the account is named after the provider).
DISCOVERY_VARIABLES: tuple[tuple[str, str], ...] = (
    ("OPENAI_ADMIN_KEY", "openai"),
    ("ANTHROPIC_ADMIN_KEY", "anthropic"),
    ("OPENROUTER_API_KEY", "openrouter"),
    ("DEEPSEEK_API_KEY", "deepseek"),
    ("MOONSHOT_API_KEY", "moonshot"),
    ("OPENAI_SESSION_KEY", "openai-legacy"),
)


def parse_duration(value: Any) -> timedelta:
    """`30m`, `24h`, `7d`, `90s` or a plain number of seconds (decimals allowed), at most 3650 days."""
    if isinstance(value, timedelta):
        return value
    return durations.parse_duration(value, longest=MAX_DURATION, bare_numbers=True, decimals=True, spaces=True)


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
    cache_seconds: float = Field(60, ge=0, alias="CREDITBOT_CACHE_SECONDS")
    answer_seconds: float = Field(2.5, gt=0, le=60, alias="CREDITBOT_ANSWER_SECONDS")
    retention_days: int = Field(400, ge=1, alias="CREDITBOT_RETENTION_DAYS")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", alias="CREDITBOT_LOG_LEVEL"
    )
    log_format: Literal["text", "json"] = Field("text", alias="CREDITBOT_LOG_FORMAT")

    poll_seconds: float = Field(900, ge=1, alias="CREDITBOT_POLL_SECONDS")
    dispatch_seconds: float = Field(10, ge=0.1, alias="CREDITBOT_DISPATCH_SECONDS")
    delivery_concurrency: int = Field(8, ge=1, le=100, alias="CREDITBOT_DELIVERY_CONCURRENCY")
    timezone: str = Field("UTC", alias="CREDITBOT_TIMEZONE")
    summary_time: str = Field("09:00", alias="CREDITBOT_SUMMARY_TIME")
    runway_warn_days: Decimal = Field(Decimal(7), ge=0, alias="CREDITBOT_RUNWAY_WARN_DAYS")
    failures_before_alert: int = Field(3, ge=1, alias="CREDITBOT_FAILURES_BEFORE_ALERT")
    hysteresis: Decimal = Field(Decimal("0.10"), ge=0, le=1, alias="CREDITBOT_HYSTERESIS")
    spike_min: Decimal = Field(Decimal(1), ge=0, alias="CREDITBOT_SPIKE_MIN")
    reminder_interval: timedelta | None = Field(None, alias="CREDITBOT_REMINDER_INTERVAL")
    port: int = Field(3000, ge=0, le=65535, alias="PORT")
    http_enabled: bool = Field(True, alias="CREDITBOT_HTTP")
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
    openai_session_key: SecretStr | None = Field(None, alias="OPENAI_SESSION_KEY")

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

    @field_validator("slack_bot_token", "slack_signing_secret", "slack_app_token", "discord_token", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        # .env.example ships these as empty lines: an empty value means "not configured".
        if isinstance(value, str) and not value.strip():
            return None
        return value

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

    def discovery_key(self, variable: str) -> SecretStr | None:
        """The key behind one discovery variable, if it is set and not blank."""
        value: SecretStr | None = getattr(self, variable.lower())
        if value is None or not value.get_secret_value().strip():
            return None
        try:
            return SecretStr(check_key(value.get_secret_value()))
        except ValueError as exc:
            raise ConfigError([f"environment: {variable}: {exc}"]) from None


def _decimal(value: Any) -> Any:
    # TOML floats go through their repr so that 0.1 stays 0.1 rather than its binary neighbour.
    if value is None or isinstance(value, Decimal):
        return value
    try:
        return parse_amount(value, what="value")
    except AmountError as exc:
        raise ValueError(str(exc).replace("value ", "")) from None


class AccountConfig(BaseModel):
    """One `[[accounts]]` table, validated."""

    # The input of a failed field may be the key itself (a stray character in api_key, a key in the wrong field).
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    name: str
    provider: str
    api_key: SecretStr
    base_url: str | None = None
    currency: str | None = None
    prepaid_credit: Decimal | None = None
    prepaid_since: date | None = None
    monthly_budget: Decimal | None = None
    warn_below: Decimal | None = None
    critical_below: Decimal | None = None
    warn_below_percent: Decimal | None = None
    critical_below_percent: Decimal | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_PATTERN.fullmatch(value):
            raise ValueError("use 1 to 64 letters, digits, '-' or '_'")
        if value.lower() in RESERVED_NAMES:
            raise ValueError(f"'{value}' is a command word; choose another name")
        return value

    @field_validator("provider")
    @classmethod
    def _provider(cls, value: str) -> str:
        if value not in PROVIDERS:
            raise ValueError(f"unknown provider '{value[:40]}'; use one of: {', '.join(PROVIDERS)}")
        return value

    @field_validator("api_key")
    @classmethod
    def _key(cls, value: SecretStr) -> SecretStr:
        return SecretStr(check_key(value.get_secret_value()))

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return None if value is None else validate_base_url(value)

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if len(value) != 3 or not value.isalpha():
            raise ValueError("must be a three-letter currency code such as USD or CNY")
        return value.upper()

    @field_validator(
        "prepaid_credit",
        "monthly_budget",
        "warn_below",
        "critical_below",
        "warn_below_percent",
        "critical_below_percent",
        mode="before",
    )
    @classmethod
    def _amount(cls, value: Any) -> Any:
        return _decimal(value)

    @field_validator("prepaid_credit", "monthly_budget", "warn_below", "critical_below")
    @classmethod
    def _not_negative(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and value < 0:
            raise ValueError("must not be negative")
        return value

    @field_validator("warn_below_percent", "critical_below_percent")
    @classmethod
    def _percent(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and not 0 <= value <= 100:
            raise ValueError("must be a percentage between 0 and 100")
        return value

    @model_validator(mode="after")
    def _pairs(self) -> AccountConfig:
        if (self.prepaid_credit is None) != (self.prepaid_since is None):
            raise ValueError("prepaid_credit and prepaid_since go together: set both or neither")
        if self.prepaid_credit is not None and not PROVIDERS[self.provider].spend_only:
            raise ValueError(
                f"prepaid_credit is for spend-only providers (openai, anthropic); {self.provider} reports "
                "its own balance"
            )
        if PROVIDERS[self.provider].spend_only and self.currency not in (None, "USD"):
            raise ValueError(f"{self.provider} reports costs in USD only; leave currency out or set it to USD")
        if (
            self.warn_below is not None
            and self.critical_below is not None
            and self.critical_below > self.warn_below
        ):
            raise ValueError("critical_below must not be above warn_below")
        return self


def check_timezone(value: str) -> str:
    """An IANA timezone name such as Europe/Paris, or ValueError."""
    if not known_timezone(value):
        raise ValueError(f"'{value[:60]}' is not an IANA timezone such as Europe/Paris or UTC")
    return value


class ChannelConfig(BaseModel):
    """One `[[channels]]` table, validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    platform: Literal["console", "slack", "discord"]
    id: str = Field(min_length=1, max_length=128)
    accounts: list[str] = ["*"]
    daily_summary: str | bool | None = None
    timezone: str | None = None
    alerts: Literal["info", "warning", "critical", "none"] = "warning"
    mention: str | None = Field(None, max_length=200)
    quiet_hours: str | None = None

    @field_validator("daily_summary")
    @classmethod
    def _daily(cls, value: str | bool | None) -> str | bool | None:
        if value is True:
            raise ValueError('use a time such as "09:00", or false')
        if isinstance(value, str):
            parse_clock(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: str | None) -> str | None:
        if value is not None:
            parse_quiet_hours(value)
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


@dataclass(frozen=True)
class AppConfig:
    """Settings plus the accounts and channels they define."""

    settings: Settings
    accounts: tuple[Account, ...]
    source: str  # human description of where accounts came from
    raw_tables: Mapping[str, Any] = field(default_factory=dict, repr=False)  # holds literal keys
    channels: tuple[Channel, ...] = ()
    demo: bool = False  # nothing configured: a simulated account and the console

    def account(self, name: str) -> Account | None:
        """The account with this name, if configured."""
        return next((a for a in self.accounts if a.name == name), None)

    def secrets(self) -> list[str]:
        """Every secret value in use, so that logs can be scrubbed of them."""
        values = [a.api_key.get_secret_value() for a in self.accounts]
        for secret in (
            self.settings.slack_bot_token,
            self.settings.slack_signing_secret,
            self.settings.slack_app_token,
            self.settings.discord_token,
        ):
            if secret is not None:
                values.append(secret.get_secret_value())
        password = database_password(self.settings.database_url)
        if password:
            values += [password, unquote(password)]
        return values


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and `.env`, or a ConfigError naming each bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            variable = ".".join(str(part) for part in error["loc"]) or "settings"
            problems.append(f"environment: {variable}: {_reason(error['msg'])}")
        raise ConfigError(problems) from None


def load_config(settings: Settings, environ: Mapping[str, str] | None = None) -> AppConfig:
    """Accounts from the TOML file, or from discovery variables when the file defines none."""
    env = _environment(environ)
    path = settings.config_path
    explicit = path is not None
    path = path if path is not None else DEFAULT_CONFIG_PATH
    tables: dict[str, Any] = {}
    if path.exists() and not path.is_file():
        # A directory fails to open; a device such as /dev/zero would be read forever.
        raise ConfigError([f"{path}: is not a regular file (CREDITBOT_CONFIG names the TOML configuration file)"])
    if path.exists():
        tables = _read_toml(path)
    elif explicit:
        raise ConfigError([f"{path}: CREDITBOT_CONFIG names a file that does not exist"])
    raw_accounts = tables.get("accounts", [])
    if not isinstance(raw_accounts, list) or not all(isinstance(a, dict) for a in raw_accounts):
        raise ConfigError([f"{path}: 'accounts' must be a list of [[accounts]] tables"])
    if raw_accounts:
        accounts = _toml_accounts(path, raw_accounts, env)
        source = str(path)
    else:
        accounts = _discovered_accounts(settings)
        source = "environment"
    channels = _toml_channels(path, tables.get("channels", []), [a.name for a in accounts], settings)
    return AppConfig(settings, tuple(accounts), source, tables, tuple(channels))


def _toml_channels(path: Path, raw: Any, account_names: list[str], settings: Settings) -> list[Channel]:
    if not isinstance(raw, list) or not all(isinstance(c, dict) for c in raw):
        raise ConfigError([f"{path}: 'channels' must be a list of [[channels]] tables"])
    problems: list[str] = []
    channels: list[Channel] = []
    seen: set[str] = set()
    for index, table in enumerate(raw):
        where = f"{path}: channels[{index}]" + (f" '{table['id']}'" if isinstance(table.get("id"), str) else "")
        try:
            parsed = ChannelConfig.model_validate(table)
        except ValidationError as exc:
            for error in exc.errors():
                name = ".".join(str(p) for p in error["loc"]) or "channel"
                reason = {"missing": "is required", "extra_forbidden": "is not a known setting"}.get(
                    error["type"], _reason(error["msg"])
                )
                problems.append(f"{where}: {name}: {reason}")
            continue
        unknown = [a for a in parsed.accounts if a != "*" and a not in account_names]
        if unknown:
            problems.append(f"{where}: accounts: unknown account(s) {', '.join(unknown)}")
            continue
        key = f"{parsed.platform}:{parsed.id}"
        if key in seen:
            problems.append(f"{where}: id: {key} is listed twice")
            continue
        seen.add(key)
        summary = parsed.daily_summary
        channels.append(
            Channel(
                platform=parsed.platform,
                id=parsed.id,
                accounts=tuple(parsed.accounts) or ("*",),
                daily_summary=None if summary is False else parse_clock(str(summary or settings.summary_time)),
                timezone=parsed.timezone or settings.timezone,
                alerts=None if parsed.alerts == "none" else Severity(parsed.alerts),
                mention=parsed.mention,
                quiet_hours=parse_quiet_hours(parsed.quiet_hours) if parsed.quiet_hours else None,
                source=str(path),
            )
        )
    if problems:
        raise ConfigError(problems)
    return channels


def _environment(environ: Mapping[str, str] | None) -> dict[str, str]:
    if environ is not None:
        return dict(environ)
    # ${VAR} may name a variable that only .env sets; the real environment wins, as in Settings.
    values = {k: v for k, v in dotenv_values(".env").items() if v is not None} if Path(".env").exists() else {}
    values.update(os.environ)
    return values


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot be read: {exc.__class__.__name__}"]) from None


def _reason(message: str) -> str:
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _expand(value: Any, env: Mapping[str, str], missing: list[str]) -> Any:
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env or env[name] == "":
            missing.append(name)
            return ""
        return env[name]

    return VAR_PATTERN.sub(substitute, value)


def _toml_accounts(path: Path, raw_accounts: list[dict[str, Any]], env: Mapping[str, str]) -> list[Account]:
    problems: list[str] = []
    accounts: list[Account] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_accounts):
        label = f"accounts[{index}]" + (f" '{raw['name']}'" if isinstance(raw.get("name"), str) else "")
        where = f"{path}: {label}"
        expanded: dict[str, Any] = {}
        unset: set[str] = set()
        for key, value in raw.items():
            missing: list[str] = []
            expanded[key] = _expand(value, env, missing)
            for variable in missing:
                problems.append(f"{where}: {key}: environment variable {variable} is not set")
                unset.add(key)
                expanded[key] = "unset"  # keep validating the other fields
        try:
            parsed = AccountConfig.model_validate(expanded)
        except ValidationError as exc:
            for error in exc.errors():
                field_name = ".".join(str(part) for part in error["loc"]) or "account"
                if field_name in unset:
                    continue
                if error["type"] == "missing":
                    reason = "is required"
                elif error["type"] == "extra_forbidden":
                    reason = "is not a known setting"
                else:
                    reason = _reason(error["msg"])
                problems.append(f"{where}: {field_name}: {reason}")
            continue
        if unset:
            continue
        folded = parsed.name.lower()
        if folded in seen:
            problems.append(f"{where}: name: '{parsed.name}' is already used by accounts[{seen[folded]}]")
            continue
        seen[folded] = index
        accounts.append(_account(parsed, str(path)))
    if problems:
        keys = [str(_expand(table.get("api_key"), env, [])) for table in raw_accounts]
        raise ConfigError(_without_keys(problems, keys))
    return accounts


def _without_keys(problems: list[str], keys: list[str]) -> list[str]:
    """The problems without any key of the file, or anything shaped like a key: a key pasted into the wrong field
    (provider, name, an amount) would otherwise be quoted back."""
    return [redact(problem, keys) for problem in problems]


def _account(parsed: AccountConfig, origin: str) -> Account:
    provider = PROVIDERS[parsed.provider]
    base_url = parsed.base_url or provider.default_base_url
    currency = parsed.currency
    prepaid = None
    if parsed.prepaid_credit is not None:
        prepaid = Money(parsed.prepaid_credit, currency or "USD")
    return Account(
        name=parsed.name,
        provider=parsed.provider,
        api_key=parsed.api_key,
        base_url=base_url,
        origin=origin,
        currency=currency,
        prepaid_credit=prepaid,
        prepaid_since=parsed.prepaid_since,
        monthly_budget=parsed.monthly_budget,
        warn_below=parsed.warn_below,
        critical_below=parsed.critical_below,
        warn_below_percent=parsed.warn_below_percent,
        critical_below_percent=parsed.critical_below_percent,
        spend_only=provider.spend_only,
    )


def _discovered_accounts(settings: Settings) -> list[Account]:
    accounts = []
    for variable, provider_name in DISCOVERY_VARIABLES:
        key = settings.discovery_key(variable)
        if key is None:
            continue
        provider = PROVIDERS[provider_name]
        base_url = provider.default_base_url
        currency = None
        if provider_name == "moonshot" and settings.moonshot_base_url:
            try:
                base_url = validate_base_url(settings.moonshot_base_url)
            except ValueError as exc:
                raise ConfigError([f"environment: MOONSHOT_BASE_URL: {exc}"]) from None
            currency = host_currency(base_url)
        accounts.append(
            Account(
                name=provider_name,
                provider=provider_name,
                api_key=key,
                base_url=base_url,
                origin=f"env {variable}",
                currency=currency,
                spend_only=provider.spend_only,
            )
        )
    return accounts


DEMO_BANNER = """\
============================================================================
 creditbot DEMO MODE: nothing is configured, so this runs a simulated
 account named 'demo' and prints to this console. No real API is called.
 To watch your accounts, put a key in .env (e.g. OPENAI_ADMIN_KEY=sk-admin-...,
 DEEPSEEK_API_KEY=sk-...) or list [[accounts]] in creditbot.toml; see README.
============================================================================"""


def demo_config(config: AppConfig) -> AppConfig:
    """The configuration of the demo: one simulated account and the console as its channel."""
    settings = config.settings
    account = Account(
        name="demo",
        provider="demo",
        api_key=SecretStr("demo-key-not-secret"),
        base_url=PROVIDERS["demo"].default_base_url,
        origin="demo",
        warn_below=Decimal(15),
        critical_below=Decimal(5),
    )
    channel = Channel(
        platform="console",
        id="stdout",
        daily_summary=parse_clock(settings.summary_time),
        timezone=settings.timezone,
        alerts=Severity.INFO,
        source="demo",
    )
    return AppConfig(settings, (account,), "demo", config.raw_tables, (channel, *config.channels), demo=True)
