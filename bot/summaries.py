"""Daily summaries: one fan-out per summary time (views and chart drawn once per set of accounts), keyed by
the local day they fell due, and caught up once after downtime."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from bot.alerts import open_alerts
from bot.channels import Channel
from bot.clock import Clock
from bot.messages import Message, summary_message
from bot.models import AccountView, ChartMaker
from bot.money import Money
from bot.monitor import Monitor
from bot.store import NewMessage, OutboxItem, Store

log = logging.getLogger(__name__)

# A summary missed while the bot was down is sent at start if it fell due this recently (across midnight
# too), or if the bot was already running before it fell due; a new install does not post yesterday's.
CATCH_UP_WINDOW = timedelta(hours=12)


@dataclass
class SummaryParts:
    """What the summaries of one fan-out share: views and chart per set of accounts, and the open alerts."""

    views: dict[tuple[str, ...], tuple[list[AccountView], bytes | None]] = field(default_factory=dict)
    open_alerts: dict[str, list[str]] | None = None
    last_sent: dict[tuple[str, str], OutboxItem] | None = None  # each channel's previous summary


@dataclass
class Summaries:
    """Builds and queues daily summaries, then hands them to delivery."""

    monitor: Monitor
    store: Store
    channels: Callable[[], Awaitable[list[Channel]]]
    deliver: Callable[[Collection[str]], Awaitable[int]]
    charts: ChartMaker
    clock: Clock

    async def message(
        self, channel: Channel | None = None, *, shared: SummaryParts | None = None
    ) -> tuple[Message, dict[str, Any]]:
        """The daily summary for a channel (or all accounts), and the values to compare with next time.

        `shared` carries what channels with the same accounts have in common (views, chart, open alerts), so
        a fan-out to many channels reads and draws them once.
        """
        shared = shared if shared is not None else SummaryParts()
        names = [a.name for a in self.monitor.accounts()]
        if channel is not None:
            names = channel.visible(names)
        group = tuple(names)
        if group not in shared.views:
            views = await self.monitor.views(names)
            shared.views[group] = (views, await self.charts(views))
        views, chart = shared.views[group]
        if shared.open_alerts is None:
            shared.open_alerts = open_alerts(await self.store.alerts.load())
        previous: dict[str, Money] = {}
        if channel is not None:
            if shared.last_sent is None:
                shared.last_sent = await self.store.outbox.latest_sent_per_channel("summary")
            last = shared.last_sent.get((channel.platform, channel.id))
            for name, value in ((last.message.get("values") or {}) if last else {}).items():
                previous[name] = Money(Decimal(value[0]), value[1])
        message = summary_message(views, self.clock(), previous, shared.open_alerts, chart)
        values = {}
        for view in views:
            value = view.balance if view.balance is not None else view.spent_month
            if value is not None:
                values[view.name] = [str(value.amount), value.currency]
        return message, values

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
                message, values = await self.message(channel, shared=shared)
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
                    message={**message.to_json(), "values": values},
                    not_before=now,
                )
            )
        keys = await self.store.outbox.enqueue_many(queue, now=now)
        if keys:
            log.info("daily summary queued for %d channel(s)", len(keys))
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
