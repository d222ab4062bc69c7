"""The `[[channels]]` tables of the TOML file, validated against the platforms and accounts in use."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.channels import Channel, parse_clock, parse_quiet_hours
from bot.config.problems import did_you_mean, problem_lines
from bot.config.settings import Settings, check_timezone
from bot.errors import ConfigError
from bot.models import Severity
from bot.text import one_line


class ChannelConfig(BaseModel):
    """One `[[channels]]` table, validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    platform: str = Field(min_length=1, max_length=32)
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


def toml_channels(
    path: Path,
    raw: Any,
    account_names: list[str],
    settings: Settings,
    platforms: Sequence[str],
    unconfigured: Mapping[str, str],
) -> list[Channel]:
    """The `[[channels]]` tables as channels, or a ConfigError listing every problem (an unknown or
    unconfigured platform, an unknown account, a channel listed twice)."""
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
            problems += problem_lines(exc, where, "channel", known=ChannelConfig.model_fields)
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
            )
        )
    if problems:
        raise ConfigError(problems)
    return channels
