"""Daily summaries: one fan-out per summary time (views and chart drawn once per set of accounts), keyed by
the local day they fell due, and caught up once after downtime."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, timedelta

from bot.alerting import store_problem
from bot.alerts import open_alerts
from bot.breakdown import Dimension
from bot.breakdown_table import DRIVER_DAYS, Driver
from bot.channels import Channel
from bot.clock import Clock
from bot.formatting import signed_money_text
from bot.messages import Field, Message, balance_change, spend_change, summary_message
from bot.models import AccountView, ChartMaker
from bot.money import Money
from bot.monitor import Monitor
from bot.providers.spend import spent_on
from bot.store import NewMessage, Store
from bot.text import counted, one_line

log = logging.getLogger(__name__)

# A summary missed while the bot was down is sent at start if it fell due this recently (across midnight
# too), or if the bot was already running before it fell due; a new install does not post yesterday's.
CATCH_UP_WINDOW = timedelta(hours=12)
DAY = timedelta(days=1)
CHANGE_WINDOW = timedelta(hours=6)  # how far from "24 hours ago" a reading may be to compare with
TOP_YESTERDAY = "Top yesterday"
DRIVER_LABEL_CHARS = 40  # a long line item must not push the other drivers out of a chat field


@dataclass
class SummaryParts:
    """What the summaries of one fan-out share: views, chart and changes per set of accounts, open alerts."""

    views: dict[tuple[str, ...], tuple[list[AccountView], bytes | None, dict[str, Field]]] = field(
        default_factory=dict
    )
    open_alerts: dict[str, list[str]] | None = None
    drivers: dict[str, list[Driver]] | None = None  # yesterday's top models per account, for every channel


@dataclass
class Summaries:
    """Builds and queues daily summaries, then hands them to delivery."""

    monitor: Monitor
    store: Store
    channels: Callable[[], Awaitable[list[Channel]]]
    deliver: Callable[[Collection[str]], Awaitable[int]]
    charts: ChartMaker
    clock: Clock

    async def message(self, channel: Channel | None = None, *, shared: SummaryParts | None = None) -> Message:
        """The daily summary for a channel (or all accounts).

        `shared` carries what channels with the same accounts have in common (views, chart, changes, open
        alerts), so a fan-out to many channels reads and draws them once.
        """
        shared = shared if shared is not None else SummaryParts()
        names = [a.name for a in self.monitor.accounts()]
        if channel is not None:
            names = channel.visible(names)
        group = tuple(names)
        if group not in shared.views:
            views = await self.monitor.views(names)
            shared.views[group] = (views, await self.charts(views), await self._changes(views))
        views, chart, changes = shared.views[group]
        if shared.open_alerts is None:
            shared.open_alerts = open_alerts(await self.store.alerts.load())
        if shared.drivers is None:
            try:
                shared.drivers = await self._drivers()
            except Exception as exc:  # the drivers are a detail: the summary goes out without them
                log.warning("summary drivers left out: %s", store_problem(self.store, exc))
                shared.drivers = {}
        top = {
            v.name: drivers_field(shared.drivers[v.name], v.currency)
            for v in views
            if shared.drivers.get(v.name) and v.currency is not None
        }
        zone = channel.timezone if channel is not None else "UTC"
        return summary_message(views, self.clock(), changes, shared.open_alerts, chart, zone=zone, drivers=top)

    async def _drivers(self) -> dict[str, list[Driver]]:
        """The top models of yesterday (the UTC day before the summary's UTC date) of every account whose
        provider breaks spend down by model, read for all accounts at once. The days still due are fetched
        first, within the chat answer time: just after midnight UTC the stored yesterday may have been read
        while it ran, and the poller's refresh may not have come yet."""
        accounts = self.monitor.accounts()
        if self.monitor.settings.breakdowns:
            wait = self.monitor.settings.answer_seconds
            await self.monitor.breakdowns.refresh_within(accounts, DRIVER_DAYS, wait)
        yesterday = self.clock().astimezone(UTC).date() - DAY
        return await self.monitor.breakdowns.drivers(accounts, yesterday, Dimension.MODEL)

    async def _changes(self, views: Sequence[AccountView]) -> dict[str, Field]:
        """Each account's change over a day, like with like: a reported balance against the reading nearest
        to 24 hours earlier; a spend-only account's spend yesterday (UTC) against the day before."""
        now = self.clock()
        reported = [v.name for v in views if v.balance is not None and not v.account.spend_only]
        earlier = await self.store.readings.balances_near(reported, now - DAY, CHANGE_WINDOW)
        changes: dict[str, Field] = {}
        for view in views:
            before = earlier.get(view.name)
            if view.balance is not None and before is not None and before[1].currency == view.balance.currency:
                changes[view.name] = balance_change(view.balance - before[1])
            elif view.account.spend_only and view.fetched_at is not None:
                day = view.fetched_at.date() - DAY
                yesterday, before_that = spent_on(view.spend_series, day), spent_on(view.spend_series, day - DAY)
                if yesterday is not None:
                    changes[view.name] = spend_change(yesterday, before_that)
        return changes

    async def send(self, channels: Sequence[Channel], *, day: str | None = None) -> int:
        """Queue the summaries of several channels for their local day, then deliver them in one fan-out.

        Returns how many were newly queued (a channel whose summary for that day exists is skipped).
        """
        now = self.clock()
        shared = SummaryParts()
        keyed = {}
        for channel in channels:
            channel_day = day
            if channel_day is None:
                # Keyed by the day it fell due, so a run delayed past midnight is still that day's summary.
                due = channel.last_due(now)
                channel_day = channel.summary_date(due if due is not None else now)
            keyed[f"summary:{channel.key}:{channel_day}"] = channel
        existing = await self.store.outbox.existing_keys(keyed)
        queue = []
        for key, channel in keyed.items():
            if key in existing:
                continue
            try:
                message = await self.message(channel, shared=shared)
            except Exception:  # one channel's failure must not cost the others their summary
                log.exception("the summary for %s could not be built; it is tried again on the next run", key)
                continue
            queue.append(
                NewMessage(
                    key=key,
                    platform=channel.platform,
                    channel=channel.id,
                    kind="summary",
                    severity=message.severity.value,
                    message=message.to_json(),
                    not_before=now,
                )
            )
        keys = await self.store.outbox.enqueue_many(queue, now=now)
        if keys:
            log.info("daily summary queued for %s", counted(len(keys), "channel"))
            await self.deliver(set(keys))
        return len(keys)

    async def catch_up(self) -> None:
        """Send once any summary that fell due today (local time) while the bot was down."""
        now = self.clock()
        missed = []
        for channel in await self.channels():
            due = channel.last_due(now)
            if due is None:
                continue
            # Recent enough, or the bot was already at work before it fell due (it was down meanwhile).
            if now - due <= CATCH_UP_WINDOW or await self.store.readings.has_readings_before(due):
                missed.append(channel)
        if missed:
            await self.send(missed)


def drivers_field(drivers: Sequence[Driver], currency: str) -> Field:
    """ "gpt-4o $12.40 (62%, +$3.10 vs 7-day median) · ...": yesterday's top entries, their share of the day's
    spend and their change against their own 7-day median."""
    shown = []
    for driver in drivers:
        notes = []
        if driver.share is not None:
            notes.append(f"{driver.share * 100:.0f}%")
        if driver.change is not None:
            notes.append(f"{signed_money_text(Money(driver.change, currency))} vs 7-day median")
        text = f"{one_line(driver.label, DRIVER_LABEL_CHARS)} {Money(driver.cost, currency).format()}"
        shown.append(text + (f" ({', '.join(notes)})" if notes else ""))
    return Field(TOP_YESTERDAY, " · ".join(shown))
