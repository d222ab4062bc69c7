"""Executes parsed chat commands for every adapter: permissions, audit log, replies as core messages."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from bot.channels import Channel
from bot.commands import (
    DEFAULT_BREAKDOWN_DAYS,
    Command,
    CommandError,
    Verb,
    command_from_words,
    help_text,
    parse_command,
    with_account_option,
)
from bot.formatting import time_text
from bot.messages import Action, Message, credits_message, text_message
from bot.models import ChartMaker, Severity
from bot.money import Money
from bot.monitor import Monitor
from bot.store import AuditEntry, Store, Subscription, ThresholdOverride

if TYPE_CHECKING:
    from bot.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Requester:
    """Who asked, from where, and whether the adapter counts them as an admin."""

    platform: str
    user: str
    channel: str | None
    is_admin: bool
    name: str | None = None

    @property
    def label(self) -> str:
        """`platform:user` for the audit log."""
        return f"{self.platform}:{self.name or self.user}"


@dataclass(frozen=True)
class Reply:
    """A message to send back, privately unless `public`."""

    message: Message
    public: bool = False


@dataclass(frozen=True)
class KeyValue:
    """The small key-value store adapters may keep bookkeeping in (e.g. Discord's command-sync hash), and
    nothing else of the store."""

    store: Store

    async def get_value(self, key: str) -> str | None:
        """The value, if set."""
        return await self.store.settings.get_value(key)

    async def set_value(self, key: str, value: str) -> None:
        """Store a value."""
        await self.store.settings.set_value(key, value)


class CommandHandler:
    """The one place where chat commands do things; adapters hand it parsed commands."""

    def __init__(
        self,
        monitor: Monitor,
        store: Store,
        *,
        charts: ChartMaker,
        on_subscriptions_changed: Callable[[], Awaitable[None]] | None = None,
        default_timezone: str = "UTC",
        default_summary_time: str = "09:00",
        metrics: Metrics | None = None,
    ) -> None:
        self.monitor = monitor
        self.store = store
        self.charts = charts
        self.on_subscriptions_changed = on_subscriptions_changed
        self.default_timezone = default_timezone
        self.default_summary_time = default_summary_time
        self.metrics = metrics
        # A chat answer waits this long for a slow provider, then shows the stored reading.
        self.answer_seconds = monitor.settings.answer_seconds
        self.kv = KeyValue(store)

    @property
    def now(self) -> datetime:
        """The monitor's clock."""
        return self.monitor.clock()

    def account_names(self, visible: Collection[str] | None = None) -> list[str]:
        """Configured account names (those in `visible` only, when given), in configuration order."""
        return [a.name for a in self.monitor.accounts() if visible is None or a.name in visible]

    def parse(self, text: str, visible: Collection[str] | None = None) -> Command:
        """A typed command line (`credits ...`) as a command, or CommandError with usage."""
        return parse_command(text, self.account_names(visible))

    def typed(
        self,
        verb: Verb,
        arguments: Sequence[str] = (),
        visible: Collection[str] | None = None,
        *,
        account: str | None = None,
    ) -> Command:
        """A command from a verb and its typed options (Discord's slash commands), or CommandError.

        `account` is a separate account option: taken as an account name only, never a command word.
        """
        names = self.account_names(visible)
        command = command_from_words(verb, list(arguments), names)
        return command if account is None else with_account_option(command, account, names)

    def action(self, action: Action, visible: Collection[str] | None = None) -> Command:
        """The command of a button press: Snooze silences one account, Refresh fetches again."""
        if action.kind == "snooze" and action.account:
            return command_from_words(
                Verb.SNOOZE, [action.account, action.duration or "24h"], self.account_names(visible)
            )
        return Command(Verb.CREDITS, account=action.account, refresh=True)

    @staticmethod
    def usage(error: CommandError) -> Reply:
        """The reply to input that is not a valid command."""
        return Reply(text_message("Not a creditbot command", str(error), Severity.WARNING))

    async def handle(self, text: str, requester: Requester, visible: Collection[str] | None = None) -> Reply:
        """Parse and run one typed command line; malformed input gets usage, never an exception."""
        try:
            command = self.parse(text, visible)
        except CommandError as exc:
            return self.usage(exc)
        return await self.run(command, requester, visible)

    async def handle_action(
        self, action: Action, requester: Requester, visible: Collection[str] | None = None
    ) -> Reply:
        """A button press: Refresh re-fetches, Snooze silences one account."""
        try:
            command = self.action(action, visible)
        except CommandError as exc:
            return self.usage(exc)
        return await self.run(command, requester, visible)

    async def run(self, command: Command, requester: Requester, visible: Collection[str] | None = None) -> Reply:
        """Run a command for someone allowed to see `visible` (all accounts when None)."""
        started = time.monotonic()
        reply = await self._run(command, requester, self.account_names(visible))
        if self.metrics is not None:
            self.metrics.command_seconds.labels(requester.platform).observe(time.monotonic() - started)
        return reply

    async def _run(self, command: Command, requester: Requester, names: list[str]) -> Reply:
        if command.changes_settings and not requester.is_admin:
            log.info("refused %s from %s: not an admin", command.verb.value, requester.label)
            await self._audit(requester, command, "refused: not an admin")
            return Reply(
                text_message(
                    "Not allowed",
                    "Sorry, only admins can change creditbot settings. "
                    "Ask an admin, or use `credits` to see balances.",
                    Severity.WARNING,
                )
            )
        # An account outside `names` is not visible here: it is never shown (a forged button included).
        wanted = [n for n in ([command.account] if command.account else names) if n in names]
        match command.verb:
            case Verb.CREDITS | Verb.SHARE if command.refresh:
                views = await self.monitor.views(wanted, refresh=True) if wanted else []
                return Reply(credits_message(views, self.now))
            case Verb.CREDITS | Verb.SHARE:
                # An empty list means "no account visible here", never "all accounts".
                views = await self.monitor.views(wanted, wait=self.answer_seconds) if wanted else []
                return Reply(credits_message(views, self.now), public=command.verb is Verb.SHARE)
            case Verb.BREAKDOWN:
                return Reply(await self._breakdown(wanted, command.days or DEFAULT_BREAKDOWN_DAYS))
            case Verb.CHART if command.by_model:
                return Reply(await self._models_chart(wanted))
            case Verb.CHART:
                views = await self.monitor.views(wanted, wait=self.answer_seconds) if wanted else []
                message = credits_message(views, self.now, chart=await self.charts(views))
                return Reply(message)
            case Verb.ALERTS:
                return Reply(await self._alerts(names))
            case Verb.HELP:
                return Reply(text_message("creditbot commands", help_text()))
        return await self._change(command, requester)

    async def _breakdown(self, names: list[str], days: int) -> Message:
        from bot.breakdown import Dimension
        from bot.breakdown_messages import breakdown_message

        accounts = [a for a in self.monitor.accounts() if a.name in names]
        items = await self.monitor.breakdowns.tables(accounts, Dimension.MODEL, days, wait=self.answer_seconds)
        return breakdown_message(items, self.now)

    async def _models_chart(self, names: list[str]) -> Message:
        from bot.breakdown_messages import models_chart_message
        from bot.chart_stacked import render_stacked, stacked_by_model

        accounts = [a for a in self.monitor.accounts() if a.name in names]
        series, notes = await stacked_by_model(self.monitor, accounts, wait=self.answer_seconds)
        chart = None
        if series:
            # Drawing takes a moment of CPU: off the event loop, like the balance chart.
            chart = await asyncio.to_thread(render_stacked, series, "Spend by model", generated_at=self.now)
        return models_chart_message(series, notes, chart, self.now)

    async def _alerts(self, names: list[str]) -> Message:
        states = [s for s in await self.store.alerts.load() if s.account in names and s.level > 0]
        snoozed = {k: v for k, v in (await self.store.settings.snoozed_until(self.now)).items() if k in names}
        lines = [
            f"{s.account}: {s.rule.value} — {s.detail or 'active'} (since {time_text(s.since)})"
            for s in states
            if s.since
        ]
        lines += [f"{name}: snoozed until {time_text(until)}" for name, until in snoozed.items()]
        if not lines:
            return text_message("Alerts", "No open alerts.")
        return text_message("Alerts", "\n".join(lines), Severity.WARNING)

    async def _audit(self, requester: Requester, command: Command, detail: str) -> None:
        entry = AuditEntry(
            self.now,
            requester.platform,
            requester.name or requester.user,
            requester.channel,
            command.verb.value,
            detail,
        )
        await self.store.settings.add_audit(entry)

    async def _change(self, command: Command, requester: Requester) -> Reply:
        now = self.now
        reply, detail = await self._apply(command, requester, now)
        await self._audit(requester, command, detail)
        log.info("audit: %s by %s in %s: %s", command.verb.value, requester.label, requester.channel, detail)
        if command.verb in (Verb.SUBSCRIBE, Verb.UNSUBSCRIBE) and self.on_subscriptions_changed:
            await self.on_subscriptions_changed()
        return Reply(reply)

    async def _apply(self, command: Command, requester: Requester, now: datetime) -> tuple[Message, str]:
        """Carry out a setting change; returns the reply and the audit detail (refusals included)."""
        if command.verb is Verb.SNOOZE:
            assert command.account is not None
            assert command.duration is not None
            until = now + command.duration
            await self.store.settings.set_snooze(command.account, until, requester.label)
            return text_message(
                "Snoozed", f"Alerts for {command.account} are snoozed until {time_text(until)}."
            ), f"snoozed {command.account} until {until.isoformat()}"
        if command.verb is Verb.THRESHOLD:
            return await self._threshold(command, requester, now)
        if command.verb is Verb.TOPUP:
            assert command.account is not None
            assert command.amount is not None
            account = self.monitor.config.account(command.account)
            assert account is not None
            if not account.spend_only:
                return text_message(
                    "Not recorded",
                    f"{account.name} reports its own balance; top-ups are recorded "
                    "only for spend-only accounts (openai, anthropic).",
                    Severity.WARNING,
                ), (f"refused: {account.name} is not spend-only")
            money = Money(command.amount, account.currency or "USD")
            await self.monitor.record_topup(account, money, now.date(), "chat")
            return text_message("Top-up recorded", f"Recorded {money.format()} for {account.name} today."), (
                f"top-up of {money.format()} for {account.name}"
            )
        if command.verb is Verb.SUBSCRIBE:
            if requester.channel is None:
                return text_message("Not subscribed", "Subscribe from a channel.", Severity.WARNING), (
                    "refused: no channel"
                )
            configured = self.configured_channel(requester.platform, requester.channel)
            if configured is not None:
                where = (
                    "the demo's console; configure real accounts and channels to subscribe (see README)"
                    if configured.source == "demo"
                    else f"configured in {configured.source}; change its summary time there"
                )
                return text_message("Not subscribed", f"This channel is {where}.", Severity.WARNING), (
                    f"refused: channel is in {configured.source}"
                )
            at = command.at.strftime("%H:%M") if command.at else self.default_summary_time
            zone = command.timezone or self.default_timezone
            await self.store.settings.save_subscription(
                Subscription(
                    requester.platform, requester.channel, at, zone, Severity.WARNING.value, requester.label
                ),
                now,
            )
            return text_message(
                "Subscribed",
                f"This channel gets the daily summary at {at} ({zone}) and alerts of warning level and above.",
            ), (f"subscribed {requester.platform}:{requester.channel} at {at} {zone}")
        removed = requester.channel is not None and await self.store.settings.delete_subscription(
            requester.platform, requester.channel
        )
        if removed:
            return text_message("Unsubscribed", "This channel no longer gets summaries or alerts."), (
                f"unsubscribed {requester.platform}:{requester.channel}"
            )
        return text_message(
            "Not subscribed",
            "This channel has no subscription made from chat (channels in creditbot.toml are changed there).",
        ), "nothing to unsubscribe"

    def configured_channel(self, platform: str, channel: str) -> Channel | None:
        """The channel as the configuration lists it (the TOML file, or the demo), if it does."""
        return next((c for c in self.monitor.config.channels if c.platform == platform and c.id == channel), None)

    async def _threshold(self, command: Command, requester: Requester, now: datetime) -> tuple[Message, str]:
        assert command.account is not None
        assert command.warn_below is not None
        account = self.monitor.config.account(command.account)
        assert account is not None
        critical = command.critical_below
        if critical is None:
            current = (await self.store.settings.threshold_overrides()).get(account.name)
            in_force = (
                current.critical_below
                if current and current.critical_below is not None
                else (account.critical_below)
            )
            if in_force is not None and in_force > command.warn_below:
                return text_message(
                    "Thresholds not changed",
                    f"The critical level of {account.name} ({in_force}) is above {command.warn_below}; give both "
                    f"levels, e.g. `credits threshold {account.name} {command.warn_below} "
                    f"{min(in_force, command.warn_below / 4)}`.",
                    Severity.WARNING,
                ), f"refused: critical {in_force} above the new warning level {command.warn_below}"
            critical = in_force
        await self.store.settings.set_threshold_override(
            ThresholdOverride(account.name, command.warn_below, critical, requester.label, now)
        )

        def shown(value: Decimal) -> str:
            # In the account's currency when the configuration names it (DeepSeek's is known only once read).
            return Money(value, account.currency).format() if account.currency else str(value)

        text = (
            f"{account.name}: warn below {shown(command.warn_below)}"
            + (f", critical below {shown(critical)}" if critical is not None else "")
            + "."
        )
        return text_message("Thresholds set", text), (
            f"thresholds for {account.name}: warn {command.warn_below}, critical {critical}"
        )
