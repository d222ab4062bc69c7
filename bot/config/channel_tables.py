"""The `[[channels]]` tables of the TOML file, validated against the platforms and accounts in use."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from bot.channels import Channel, parse_clock, parse_quiet_hours
from bot.config.problems import did_you_mean, problem_lines
from bot.config.settings import Settings, check_timezone
from bot.config.variables import expand_table
from bot.errors import ConfigError
from bot.models import Severity
from bot.text import one_line


class ChannelConfig(BaseModel):
    """One `[[channels]]` table, validated."""

    # A channel's url and secret may be secrets: never quoted back in an error.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    platform: str = Field(min_length=1, max_length=32)
    id: str = Field(min_length=1, max_length=128)
    accounts: list[str] = ["*"]
    daily_summary: str | bool | None = None
    timezone: str | None = None
    alerts: Literal["info", "warning", "critical", "none"] = "warning"
    mention: str | None = Field(None, max_length=200)
    quiet_hours: str | None = None
    url: SecretStr | None = None  # push-only platforms (apprise, webhook): where to deliver
    secret: SecretStr | None = None  # webhook: the signing secret

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


def toml_channels(
    path: Path,
    raw: Any,
    account_names: list[str],
    settings: Settings,
    platforms: Sequence[str],
    unconfigured: Mapping[str, str],
    env: Mapping[str, str] | None = None,
    channel_keys: Mapping[str, Mapping[str, bool]] | None = None,
) -> list[Channel]:
    """The `[[channels]]` tables as channels, or a ConfigError listing every problem (an unknown or
    unconfigured platform, an unknown account, a channel listed twice, a key its platform does not take).

    `${VAR}` in a value is read from `env`; `channel_keys` says which platforms take `url` and `secret`
    (key -> required)."""
    env = env or {}
    channel_keys = channel_keys or {}
    if not isinstance(raw, list) or not all(isinstance(c, dict) for c in raw):
        raise ConfigError([f"{path}: 'channels' must be a list of [[channels]] tables"])
    problems: list[str] = []
    channels: list[Channel] = []
    seen: set[str] = set()
    for index, table in enumerate(raw):
        where = f"{path}: channels[{index}]" + (f" '{table['id']}'" if isinstance(table.get("id"), str) else "")
        expanded, unset = expand_table(table, env, where, problems)
        try:
            parsed = ChannelConfig.model_validate(expanded)
        except ValidationError as exc:
            problems += problem_lines(exc, where, "channel", skip=unset, known=ChannelConfig.model_fields)
            continue
        if unset:
            continue
        if parsed.platform not in platforms:
            shown = one_line(parsed.platform, limit=40)
            suggestion = did_you_mean(parsed.platform, platforms, "'{}'")
            problems.append(
                f"{where}: platform: unknown platform '{shown}'{suggestion}; use one of: {', '.join(platforms)}"
            )
            continue
        if parsed.platform in unconfigured:
            problems.append(
                f"{where}: platform: {parsed.platform} is not configured: set {unconfigured[parsed.platform]} "
                "(in the environment or .env) or remove this channel; its messages could never be delivered"
            )
            continue
        extra = _platform_keys(parsed, channel_keys, where)
        if extra:
            problems += extra
            continue
        if not parsed.accounts:
            # An empty list shows nothing; reading it as "all" would post every balance where none was meant.
            problems.append(f'{where}: accounts: is empty; list account names, or ["*"] for every account')
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
                accounts=tuple(parsed.accounts),
                daily_summary=None if summary is False else parse_clock(str(summary or settings.summary_time)),
                timezone=parsed.timezone or settings.timezone,
                alerts=None if parsed.alerts == "none" else Severity(parsed.alerts),
                mention=parsed.mention,
                quiet_hours=parse_quiet_hours(parsed.quiet_hours) if parsed.quiet_hours else None,
                source=str(path),
                url=parsed.url,
                secret=parsed.secret,
            )
        )
    if problems:
        raise ConfigError(problems)
    return channels


def _platform_keys(parsed: ChannelConfig, channel_keys: Mapping[str, Mapping[str, bool]], where: str) -> list[str]:
    """Problems with `url` and `secret`: given on a platform that takes neither, or missing where required."""
    taken = channel_keys.get(parsed.platform, {})
    problems = []
    for key in ("url", "secret"):
        given = getattr(parsed, key) is not None
        if given and key not in taken:
            users = ", ".join(p for p, keys in channel_keys.items() if key in keys) or "none"
            problems.append(f"{where}: {key}: is not used by platform {parsed.platform} (only by: {users})")
        elif not given and taken.get(key):
            problems.append(f"{where}: {key}: is required for platform {parsed.platform}")
    return problems
