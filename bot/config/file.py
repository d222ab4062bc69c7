"""The TOML configuration file: `[[accounts]]` and `[[channels]]` validated, `${VAR}` expanded, problems listed."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, field_validator, model_validator

from bot.channels import BUILT_IN_PLATFORMS
from bot.commands import Verb
from bot.config.account_rules import HTTP_JSON, HTTP_JSON_KEYS, check_headers, check_pointer, check_provider_keys
from bot.config.app import AppConfig
from bot.config.channel_tables import toml_channels
from bot.config.discovery import discovered_accounts
from bot.config.problems import did_you_mean, problem_lines
from bot.config.settings import Settings, check_key, validate_base_url, validate_source_url
from bot.config.variables import VAR_PATTERN, expand_table, expand_variables
from bot.errors import ConfigError
from bot.models import Account, JsonSource
from bot.money import AmountError, Money, normalise_unit, parse_amount
from bot.providers import OFFERED, PROVIDERS
from bot.text import one_line, redact

# Command words of the chat command layer: an account named like one would make commands ambiguous.
RESERVED_NAMES = frozenset(verb.value for verb in Verb)
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
TABLES = ("accounts", "channels")
DEFAULT_CONFIG_PATH = Path("creditbot.toml")


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
    api_key: SecretStr | None = None  # required by every provider but http-json (see account_rules)
    base_url: str | None = None
    currency: str | None = None
    team_id: str | None = None
    url: str | None = None
    headers: dict[str, SecretStr] | None = None
    balance: str | None = None
    scale: Decimal | None = None
    error: str | None = None
    spent_month: str | None = None
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
            raise ValueError(f"'{value}' is a command word (credits {value.lower()}); rename the account")
        return value

    @field_validator("provider")
    @classmethod
    def _provider(cls, value: str) -> str:
        if value not in PROVIDERS:
            suggestion = did_you_mean(value, OFFERED, "'{}'")
            raise ValueError(f"unknown provider '{value[:40]}'{suggestion}; use one of: {', '.join(OFFERED)}")
        return value

    @field_validator("api_key")
    @classmethod
    def _key(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else SecretStr(check_key(value.get_secret_value()))

    @field_validator("team_id")
    @classmethod
    def _team(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,100}", value):
            raise ValueError("must be the team's id as the xAI console shows it (letters, digits, '-')")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else validate_source_url(value)

    @field_validator("headers", mode="before")
    @classmethod
    def _headers(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ValueError('must be a table such as { Authorization = "Bearer ${GATEWAY_KEY}" }')
        return check_headers(value)

    @field_validator("balance", "error", "spent_month")
    @classmethod
    def _pointer(cls, value: str | None) -> str | None:
        return None if value is None else check_pointer(value)

    @field_validator("scale")
    @classmethod
    def _scale(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and value == 0:
            # Negative is allowed: some sources count credit as a negative amount owed (xAI, DeepInfra).
            raise ValueError(
                "must not be 0: a multiplier such as 0.01 (for cents), or -0.01 when credit is negative"
            )
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return None if value is None else validate_base_url(value)

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return normalise_unit(value, what="it")
        except AmountError as exc:
            raise ValueError(str(exc).removeprefix("it ")) from None

    @field_validator(
        "prepaid_credit",
        "monthly_budget",
        "warn_below",
        "critical_below",
        "warn_below_percent",
        "critical_below_percent",
        "scale",
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
        check_provider_keys(self)
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


def load_config(
    settings: Settings,
    environ: Mapping[str, str] | None = None,
    *,
    platforms: Sequence[str] = BUILT_IN_PLATFORMS,
    unconfigured: Mapping[str, str] | None = None,
    channel_keys: Mapping[str, Mapping[str, bool]] | None = None,
) -> AppConfig:
    """Accounts from the TOML file, or from discovery variables when the file defines none; `[[channels]]`
    (with `channel_keys`: which platforms take `url` and `secret`, and whether they must)
    may name any of `platforms` (those the composition root has adapters for) except the `unconfigured` ones
    (platform: the setting it lacks), whose messages could never be delivered."""
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
    unknown = [_unknown_key(path, key, value) for key, value in tables.items() if key not in TABLES]
    if unknown:
        # A misspelled table (`[[account]]`) would otherwise vanish, and its accounts with it.
        raise ConfigError(unknown)
    raw_accounts = tables.get("accounts", [])
    if not isinstance(raw_accounts, list) or not all(isinstance(a, dict) for a in raw_accounts):
        raise ConfigError([f"{path}: 'accounts' must be a list of [[accounts]] tables"])
    if raw_accounts:
        accounts = _toml_accounts(path, raw_accounts, env)
        source = str(path)
    else:
        accounts = discovered_accounts(settings)
        source = "environment"
    missing = dict(unconfigured or {})
    names = [a.name for a in accounts]
    raw_channels = tables.get("channels", [])
    channels = toml_channels(path, raw_channels, names, settings, platforms, missing, env, channel_keys)
    return AppConfig(settings, tuple(accounts), source, tables, tuple(channels), unconfigured=missing)


def _unknown_key(path: Path, key: str, value: Any) -> str:
    """The problem with a top-level key other than the known tables, with what was probably meant."""
    is_table = isinstance(value, dict) or (
        isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)
    )
    setting = next(
        (f.alias for n, f in Settings.model_fields.items() if key.lower() in (n, str(f.alias).lower())), None
    )
    if setting and not is_table:
        return f"{path}: {key}: is not set in this file; set {setting} in the environment or .env"
    shown = (f"[[{key}]]" if isinstance(value, list) else f"[{key}]") if is_table else key
    kind = "table" if is_table else "setting"
    return (
        f"{path}: {one_line(shown, limit=60)}: is not a known {kind}{did_you_mean(key, TABLES, '[[{}]]')}; "
        "the file holds [[accounts]] and [[channels]] tables"
    )


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


def _toml_accounts(path: Path, raw_accounts: list[dict[str, Any]], env: Mapping[str, str]) -> list[Account]:
    problems: list[str] = []
    accounts: list[Account] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_accounts):
        label = f"accounts[{index}]" + (f" '{raw['name']}'" if isinstance(raw.get("name"), str) else "")
        where = f"{path}: {label}"
        expanded, unset = expand_table(raw, env, where, problems)
        try:
            parsed = AccountConfig.model_validate(expanded)
        except ValidationError as exc:
            problems += problem_lines(exc, where, "account", skip=unset, known=AccountConfig.model_fields)
            continue
        if unset:
            continue
        folded = parsed.name.lower()
        if folded in seen:
            problems.append(f"{where}: name: '{parsed.name}' is already used by accounts[{seen[folded]}]")
            continue
        seen[folded] = index
        whole_variable = VAR_PATTERN.fullmatch(str(raw.get("api_key", "")).strip())
        accounts.append(_account(parsed, str(path), whole_variable.group(1) if whole_variable else None))
    if problems:
        keys = [str(expand_variables(table.get("api_key"), env, [])) for table in raw_accounts]
        for table in raw_accounts:
            headers = expand_variables(table.get("headers"), env, [])
            keys += [str(v) for v in headers.values()] if isinstance(headers, dict) else []
        raise ConfigError(_without_keys(problems, keys))
    return accounts


def _without_keys(problems: list[str], keys: list[str]) -> list[str]:
    """The problems without any key of the file, or anything shaped like a key: a key pasted into the wrong field
    (provider, name, an amount) would otherwise be quoted back."""
    return [redact(problem, keys) for problem in problems]


def _account(parsed: AccountConfig, origin: str, key_variable: str | None) -> Account:
    provider = PROVIDERS[parsed.provider]
    prepaid = None
    if parsed.prepaid_credit is not None:
        prepaid = Money(parsed.prepaid_credit, parsed.currency or "USD")
    source = None
    if parsed.provider == HTTP_JSON:
        assert parsed.url is not None
        assert parsed.balance is not None
        source = JsonSource(
            parsed.url,
            tuple((parsed.headers or {}).items()),
            parsed.balance,
            parsed.scale if parsed.scale is not None else Decimal(1),
            parsed.error,
            parsed.spent_month,
        )
    fields = parsed.model_dump(exclude=set(HTTP_JSON_KEYS))
    # The table's fields are the account's, with the provider's defaults filled in.
    return Account(
        **{
            **fields,
            "api_key": parsed.api_key or SecretStr(""),
            "base_url": parsed.base_url or provider.default_base_url or (parsed.url or ""),
            "prepaid_credit": prepaid,
            "origin": origin,
            "key_variable": key_variable,
            "spend_only": provider.spend_only,
            "json_source": source,
        }
    )
