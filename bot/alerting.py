"""Alert evaluation: the rules over fresh views, their states persisted, their messages queued per channel."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from bot.alerts import evaluate
from bot.breakdown import Dimension
from bot.breakdown_service import gives
from bot.breakdown_table import DRIVER_DAYS, MEDIAN_DAYS, Driver, drivers
from bot.channels import Channel
from bot.clock import Clock
from bot.messages import alert_message, alert_title
from bot.models import AccountView, AlertEvent, AlertKind, AlertSettings, AlertState, Rule, Severity, SourceHealth
from bot.money import Money
from bot.store import NewMessage, Store, database_problem, is_database_error
from bot.text import one_line

if TYPE_CHECKING:
    from bot.breakdown_service import Breakdowns

log = logging.getLogger(__name__)

DRIVER_LABEL_CHARS = 80


@dataclass
class Alerting:
    """Runs the alert rules after each poll and queues what must be said."""

    store: Store
    settings: AlertSettings
    channels: Callable[[], Awaitable[list[Channel]]]
    clock: Clock
    # Asked for the spiking accounts' newest breakdown before a driver is named; None: the store alone.
    breakdowns: Breakdowns | None = None

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
        spiking = [views[e.account] for e in events if e.rule is Rule.SPIKE and e.kind is not AlertKind.RECOVERED]
        named: dict[str, str] = {}
        if spiking:
            try:
                named = await self.spike_drivers(spiking, now)
            except Exception as exc:  # the driver is a detail: the alerts go out without it
                log.warning("spike drivers left out: %s", store_problem(self.store, exc))
        for event in events:
            driver = named.get(event.account) if event.rule is Rule.SPIKE else None
            message = alert_message(event, views[event.account], driver=driver)
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

    async def spike_drivers(self, views: Sequence[AccountView], now: datetime) -> dict[str, str]:
        """What drove each spiking account's spend on its day (UTC, as the rule counts it), in words: the line
        item (else the model) whose cost exceeds its own 7-day median by the most, read from the stored
        breakdown, refreshed first; an account without one, whose refresh failed or was too slow, or whose day the
        provider has not broken down yet, is left out."""
        unsure = await self._refresh(views)
        views = [v for v in views if v.name not in unsure]
        by_dimension: dict[Dimension, list[AccountView]] = {}
        for view in views:
            for dimension in (Dimension.LINE_ITEM, Dimension.MODEL):
                if gives(view.account, dimension):
                    by_dimension.setdefault(dimension, []).append(view)
                    break
        result: dict[str, str] = {}
        for dimension, wanted in by_dimension.items():
            days = {v.name: (v.fetched_at or now).astimezone(UTC).date() for v in wanted}
            since, until = min(days.values()) - timedelta(days=MEDIAN_DAYS), max(days.values())
            parts = await self.store.breakdowns.parts(days, dimension, since, until)
            known = await self.store.breakdowns.answered(days, since, until)
            for name, day in days.items():
                answered = known[name]
                found = _most_above_median(drivers(parts[name], {}, answered.days, day, top=len(parts[name])))
                currency = answered.currency if day in answered.days else None
                if found is not None and found.median is not None and currency is not None:
                    result[name] = _driver_words(found, found.median, currency)
        return result

    async def _refresh(self, views: Sequence[AccountView]) -> set[str]:
        """Refresh the spiking accounts' breakdowns within the chat answer time; the accounts left unrefreshed."""
        # The poller's parts of today may be an hour old, or not there yet, and the alert fires once per episode:
        # a driver named from them would never be corrected. The spike is rare, so the requests are too.
        accounts = [v.account for v in views if gives(v.account)]
        if self.breakdowns is None or not accounts:
            return set()
        wait = self.breakdowns.monitor.settings.answer_seconds
        try:
            errors = await self.breakdowns.refresh_within(accounts, DRIVER_DAYS, wait, max_age=timedelta(0))
        except Exception as exc:  # a refresh that breaks costs the alert its driver, never the alert
            log.warning("spike drivers left out, the breakdown refresh failed: %s", store_problem(self.store, exc))
            return {a.name for a in accounts}
        for name, error in errors.items():
            log.info("spike alert for %s goes without its driver: %s", name, error)
        return set(errors)


def store_problem(store: Store, exc: Exception) -> str:
    """One line about an unexpected failure: the database's own words and what to do, or the exception's."""
    if is_database_error(exc):
        return database_problem(store.engine.url, exc)
    return one_line(f"{type(exc).__name__}: {exc}")


def _most_above_median(candidates: Sequence[Driver]) -> Driver | None:
    """The entry whose cost exceeds its median by the most, if any exceeds it at all."""
    above = [d for d in candidates if d.change is not None and d.change > 0]
    return max(above, key=lambda d: (d.change, d.cost), default=None)


def _driver_words(driver: Driver, median: Decimal, currency: str) -> str:
    # Line items read "gpt-4o-2024-08-06, output": the comma is the provider's separator, not a pause.
    label = one_line(driver.label.replace(", ", " "), DRIVER_LABEL_CHARS)
    return (
        f"{label}: {Money(driver.cost, currency).format()} today, "
        f"{MEDIAN_DAYS}-day median {Money(median, currency).format()}"
    )
