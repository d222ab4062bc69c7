"""Alert evaluation: the rules over fresh views, their states persisted, their messages queued per channel."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.alerts import evaluate
from bot.channels import Channel
from bot.clock import Clock
from bot.messages import alert_message, alert_title
from bot.models import AccountView, AlertEvent, AlertKind, AlertSettings, AlertState, Rule, Severity, SourceHealth
from bot.store import NewMessage, Store

log = logging.getLogger(__name__)


@dataclass
class Alerting:
    """Runs the alert rules after each poll and queues what must be said."""

    store: Store
    settings: AlertSettings
    channels: Callable[[], Awaitable[list[Channel]]]
    clock: Clock

    async def evaluate(self, views: Sequence[AccountView]) -> list[AlertEvent]:
        """Run the rules over fresh views, persist the new states and queue the resulting messages."""
        now = self.clock()
        stored: dict[str, dict[Rule, AlertState]] = {}
        for state in await self.store.alerts.load():
            stored.setdefault(state.account, {})[state.rule] = state
        latest = await self.store.readings.latest_readings(v.name for v in views)
        snoozed = await self.store.settings.snoozed_until(now)
        all_states: list[AlertState] = []
        all_events: list[AlertEvent] = []
        for view in views:
            last, streak = latest[view.name].latest, latest[view.name].streak
            ok = last is not None and last.ok
            if not ok and streak is None:  # the newest attempt was stored before streaks were counted
                streak = await self.store.readings.failure_streak(view.name)
            health = SourceHealth(
                latest_ok=ok,
                failure_streak=0 if ok else streak or 0,
                latest_error=None if ok or last is None else last.error,
                latest_error_kind=None if ok or last is None else last.error_kind,
            )
            states, events = evaluate(
                view, health, stored.get(view.name, {}), self.settings, now, snoozed=view.name in snoozed
            )
            all_states.extend(states)
            all_events.extend(events)
            for event in events:
                title = alert_title(event, view)
                log.info("alert %s %s for %s: %s", event.kind.value, event.rule.value, event.account, title)
        # Queue before saving the states: after a crash in between, the same events come again and their
        # unique keys make the second queueing a no-op, whereas the other order would lose them.
        if all_events:
            await self._queue(all_events, {v.name: v for v in views}, now)
        await self.store.alerts.save(all_states, now=now)
        return all_events

    async def _queue(self, events: Sequence[AlertEvent], views: dict[str, AccountView], now: datetime) -> None:
        channels = await self.channels()
        for event in events:
            message = alert_message(event, views[event.account])
            for channel in channels:
                if not channel.includes(event.account) or not channel.wants(event.routing_severity):
                    continue
                not_before = now
                if event.severity is not Severity.CRITICAL:
                    not_before = channel.quiet_until(now) or now
                addressed = (
                    message.with_mentions([channel.mention])
                    if channel.mention and event.kind is not AlertKind.RECOVERED
                    else message
                )
                queued = NewMessage(
                    key=f"alert:{channel.key}:{event.key}",
                    platform=channel.platform,
                    channel=channel.id,
                    kind="alert",
                    severity=event.severity.value,
                    # The account beside the message: delivery skips the alerts of an account snoozed meanwhile.
                    message={**addressed.to_json(), "account": event.account},
                    not_before=not_before,
                )
                await self.store.outbox.enqueue(queued, now=now)
