"""The work of the one-off commands that read or record through the store: the views `check` shows, chat-set
thresholds, alert states and undelivered messages, top-ups, and `doctor`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from bot.app import COMMAND_HOUSEKEEPING_SECONDS, Check, platform_checks, services
from bot.config import AppConfig
from bot.errors import CommandFailure
from bot.models import Account
from bot.money import Money
from bot.store import OutboxItem
from bot.text import counted


async def current_views(config: AppConfig, names: Sequence[str], *, refresh: bool) -> tuple[list[Any], Any]:
    """The views of the named accounts (all when none), fetching what is due, and the time they are for."""
    async with services(config) as parts:
        views = await parts.monitor.views(list(names), refresh=refresh)
        # A command does a little of the housekeeping (the leader of `run` does the rest, in the background).
        await parts.monitor.prune(budget=COMMAND_HOUSEKEEPING_SECONDS)
        return views, parts.monitor.clock()


async def breakdowns(config: AppConfig, names: Sequence[str], by: str, days: int) -> tuple[list[Any], Any]:
    """The breakdown of the named accounts (all when none) by `by` over the last `days` days, fetching what is
    missing or over an hour old first, and the time it is for."""
    from bot.breakdown import Dimension

    accounts = [a for a in config.accounts if not names or a.name in names]
    async with services(config) as parts:
        items = await parts.monitor.breakdowns.tables(accounts, Dimension(by), days)
        return items, parts.monitor.clock()


async def threshold_overrides(config: AppConfig) -> dict[str, Any]:
    """Thresholds set from chat, per account."""
    async with services(config) as parts:
        return dict(await parts.store.settings.threshold_overrides())


async def alert_states(config: AppConfig) -> tuple[list[Any], list[OutboxItem]]:
    """Every stored alert state, and the messages not delivered (failed, or waiting for a retry)."""
    async with services(config) as parts:
        return await parts.store.alerts.load(), await parts.store.outbox.undelivered()


async def record_topup(config: AppConfig, account: Account, value: Decimal, on_day: str | None) -> str:
    """Record credit bought for a spend-only account (today, or on `on_day`), and say what the ledger holds."""
    async with services(config) as parts:
        monitor = parts.monitor
        today = monitor.clock().date()
        try:
            day = date.fromisoformat(on_day) if on_day else today
        except ValueError:
            raise CommandFailure(
                f"--on {on_day!r} is not a date; write it like {today.isoformat()}", usage=True
            ) from None
        if day > today:
            raise CommandFailure(f"--on {day} is in the future", usage=True)
        money = Money(value, account.currency or "USD")
        await monitor.record_topup(account, money, day, "cli")
        entries = (await monitor.ledger([account]))[account.name]
        total = sum((e.amount.amount for e in entries if e.amount.currency == money.currency), Decimal(0))
        return (
            f"Recorded a top-up of {money.format()} for {account.name} on {day}. "
            f"Credit recorded in all: {Money(total, money.currency).format()} in "
            f"{counted(len(entries), 'entry', 'entries')}."
        )


async def doctor(config: AppConfig, no_accounts_help: str) -> AsyncIterator[Check]:
    """Check the configuration, the database, every account's key and endpoint, and the platforms."""
    from bot.channels import merge_subscriptions

    yield Check(
        f"configuration: {counted(len(config.accounts), 'account')} from {config.source}, "
        f"{counted(len(config.channels), 'channel')} in the TOML file"
    )
    if not config.accounts:
        yield Check(f"  ! {no_accounts_help}", True)
    async with services(config) as parts:
        yield Check("database: ok")
        for reading in await parts.monitor.refresh():
            yield Check(
                f"account {reading.account}: " + ("ok" if reading.ok else f"! {reading.error}"), not reading.ok
            )
        subscribed = await parts.store.settings.subscriptions()
        failed = [item for item in await parts.store.outbox.undelivered() if item.status == "failed"]
        if failed:
            yield Check(
                f"outbox: ! {counted(len(failed), 'message')} not delivered; `creditbot alerts` lists them", True
            )
    for channel in merge_subscriptions(config.channels, subscribed):
        needs = config.unconfigured.get(channel.platform)
        if needs:
            yield Check(
                f"channel {channel.key} ({channel.source}): ! {needs} is not set, so its messages are marked "
                f"failed; set it, or unsubscribe the channel",
                True,
            )
    for check in await platform_checks(config):
        yield check
