"""Alert rules as a persisted, edge-triggered state machine per account and rule (pure: no I/O)."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from bot.models import ErrorKind, Severity, Status
from bot.money import Money
from bot.monitor import AccountView

NOT_RUNNING_OUT = Decimal("1e9")


class Rule(StrEnum):
    """The alert rules."""

    BALANCE = "balance"
    RUNWAY = "runway"
    BUDGET = "budget"
    FORECAST = "forecast"
    SPIKE = "spike"
    EXPIRING = "expiring"
    SOURCE = "source"


# Rules whose end sends a "recovered" message; the others end with their period or simply lapse.
RECOVERY_RULES = frozenset({Rule.BALANCE, Rule.RUNWAY, Rule.FORECAST, Rule.SOURCE})


@dataclass(frozen=True)
class AlertSettings:
    """Tunables of the rules."""

    runway_warn_days: Decimal = Decimal(7)
    failures_before_alert: int = 3
    hysteresis: Decimal = Decimal("0.10")
    spike_factor: Decimal = Decimal(3)
    spike_min: Decimal = Decimal(1)
    reminder: timedelta | None = None  # repeat while critical; off by default
    expiring_warn: timedelta = timedelta(days=7)
    expiring_critical: timedelta = timedelta(days=1)


@dataclass(frozen=True)
class AlertState:
    """Where one rule of one account stands, persisted between polls and restarts."""

    account: str
    rule: Rule
    level: int = 0  # 0 is fine; 1.. are the rule's levels, rising
    fired_level: int = 0  # highest level announced in this episode
    episode: int = 0  # counts episodes, so each gets its own delivery keys
    period: str | None = None
    since: datetime | None = None
    notified_at: datetime | None = None
    reminders: int = 0  # announcements made in this episode, so each gets its own delivery key
    detail: str | None = None
    peak_level: int = 0  # loudest level announced in this episode: where its recovery goes
    suppressed: bool = False  # reached while snoozed and not announced yet


@dataclass(frozen=True)
class AlertEvent:
    """Something to tell people: a rule fired, recovered, or reminds."""

    account: str
    rule: Rule
    kind: str  # "fired", "recovered" or "reminder"
    severity: Severity
    level: int
    episode: int
    title: str
    text: str
    routing_severity: Severity  # recoveries go where the alert they close went
    sequence: int = 1  # the how-many-th announcement of its episode

    @property
    def key(self) -> str:
        """Unique per account, rule, episode and announcement: the same alert is never delivered twice."""
        return f"{self.account}:{self.rule.value}:{self.episode}:{self.sequence}:{self.kind}:{self.level}"


@dataclass(frozen=True)
class SourceHealth:
    """How the account's billing source has been answering."""

    latest_ok: bool
    failure_streak: int
    latest_error: str | None = None
    latest_error_kind: ErrorKind | None = None


@dataclass(frozen=True)
class _Measure:
    value: Decimal
    thresholds: tuple[Decimal | None, ...]  # per level; None disables a level
    below: bool
    severities: tuple[Severity, ...]
    describe: tuple[str, ...]  # what crossing each level means, for the message


def _raw_level(m: _Measure) -> int:
    level = 0
    for index, threshold in enumerate(m.thresholds, start=1):
        if threshold is not None and (m.value < threshold if m.below else m.value >= threshold):
            level = index
    return level


def _held(m: _Measure, level: int, margin: Decimal) -> bool:
    threshold = m.thresholds[level - 1]
    if threshold is None:
        return False
    return m.value < threshold * (1 + margin) if m.below else m.value > threshold * (1 - margin)


def next_level(m: _Measure, current: int, margin: Decimal) -> int:
    """Rise at once; fall only past the hysteresis margin of each level on the way down."""
    raw = _raw_level(m)
    if raw >= current:
        return raw
    level = min(current, len(m.thresholds))
    while level > raw and not _held(m, level, margin):
        level -= 1
    return level


def _money(view: AccountView, amount: Decimal) -> str:
    return Money(amount, view.currency or "USD").format()


def _balance(view: AccountView) -> _Measure | None:
    if view.balance is None:
        return None
    t = view.thresholds
    granted = view.report.granted_total if view.report else None
    warn, critical = t.warn_below, t.critical_below
    if granted is not None and granted.currency == view.balance.currency and granted.amount > 0:
        if t.warn_below_percent is not None:
            warn = max(warn or Decimal(0), granted.amount * t.warn_below_percent / 100)
        if t.critical_below_percent is not None:
            critical = max(critical or Decimal(0), granted.amount * t.critical_below_percent / 100)
    if warn is None and critical is None:
        return None
    return _Measure(
        view.balance.amount,
        (warn, critical),
        below=True,
        severities=(Severity.WARNING, Severity.CRITICAL),
        describe=tuple("" if x is None else f"below {_money(view, x)}" for x in (warn, critical)),
    )


def _runway(view: AccountView, settings: AlertSettings) -> _Measure | None:
    if view.balance is None or view.burn_rate is None:
        return None
    days = view.days_left if view.days_left is not None else NOT_RUNNING_OUT
    return _Measure(
        days,
        (settings.runway_warn_days,),
        True,
        (Severity.WARNING,),
        (f"runs out within {settings.runway_warn_days} days",),
    )


def _budget(view: AccountView) -> _Measure | None:
    if view.monthly_budget is None or view.spent_month is None or not view.account.spend_only:
        return None
    budget = view.monthly_budget.amount
    return _Measure(
        view.spent_month.amount,
        (budget / 2, budget * Decimal("0.8"), budget),
        below=False,
        severities=(Severity.INFO, Severity.WARNING, Severity.CRITICAL),
        describe=(
            f"50% of the {_money(view, budget)} monthly budget",
            f"80% of the {_money(view, budget)} monthly budget",
            f"the whole {_money(view, budget)} monthly budget",
        ),
    )


def _forecast(view: AccountView) -> _Measure | None:
    if view.monthly_budget is None or view.projected_month is None or not view.account.spend_only:
        return None
    budget = view.monthly_budget.amount
    return _Measure(
        view.projected_month.amount,
        (budget,),
        False,
        (Severity.WARNING,),
        (f"projected to exceed the {_money(view, budget)} monthly budget",),
    )


def _spike(view: AccountView, settings: AlertSettings, today: str) -> _Measure | None:
    if view.spent_today is None or not view.spend_series:
        return None
    earlier = [d.amount.amount for d in view.spend_series if d.day.isoformat() < today][-7:]
    if len(earlier) < 3:
        return None
    limit = max(settings.spike_factor * Decimal(statistics.median(earlier)), settings.spike_min)
    return _Measure(
        view.spent_today.amount,
        (limit,),
        False,
        (Severity.WARNING,),
        (f"more than {settings.spike_factor}x the usual daily spend",),
    )


def _expiring(view: AccountView, settings: AlertSettings, now: datetime) -> _Measure | None:
    grants = view.report.grants if view.report else ()
    remaining = [
        g.expires_at - now
        for g in grants
        if g.expires_at and g.expires_at > now and g.granted.amount > g.used.amount
    ]
    if not remaining:
        return None
    hours = Decimal(min(remaining).total_seconds()) / 3600
    return _Measure(
        hours,
        (
            Decimal(settings.expiring_warn.total_seconds()) / 3600,
            Decimal(settings.expiring_critical.total_seconds()) / 3600,
        ),
        below=True,
        severities=(Severity.WARNING, Severity.CRITICAL),
        describe=("a credit grant expires within 7 days", "a credit grant expires within a day"),
    )


def _period(rule: Rule, as_of: datetime) -> str | None:
    if rule in (Rule.BUDGET, Rule.FORECAST):
        return as_of.strftime("%Y-%m")
    if rule is Rule.SPIKE:
        return as_of.date().isoformat()
    return None


def evaluate(
    view: AccountView,
    health: SourceHealth,
    states: Mapping[Rule, AlertState],
    settings: AlertSettings,
    now: datetime,
    *,
    snoozed: bool = False,
) -> tuple[list[AlertState], list[AlertEvent]]:
    """New states and the events they cause, for one account after one poll.

    While `snoozed`, states still move but nothing is announced; an alert still active when the snooze
    ends is announced then, and the recovery of an alert nobody saw is not sent.
    """
    new_states: list[AlertState] = []
    events: list[AlertEvent] = []

    def step(
        rule: Rule, measure: _Measure | None, period: str | None, *, lapse: bool = False, level: int | None = None
    ) -> None:
        state = states.get(rule) or AlertState(view.name, rule)
        if period is not None and state.period != period:
            # A new month or day: period rules start over without a recovery message.
            state = replace(
                state, level=0, fired_level=0, peak_level=0, period=period, reminders=0, suppressed=False
            )
        if measure is None:
            # Missing data keeps the state as it is; a rule that no longer applies (its threshold or
            # budget removed) lapses quietly.
            if lapse and rule in states and states[rule].level:
                new_states.append(
                    replace(state, level=0, fired_level=0, peak_level=0, detail=None, suppressed=False)
                )
            elif state != states.get(rule) and rule in states:
                new_states.append(state)
            return
        target = next_level(measure, state.level, settings.hysteresis) if level is None else level
        new_states.append(_transition(view, rule, state, target, measure, settings, now, events, snoozed))

    # The source rule: a refused key at once, a run of failures after N; it recovers only on success.
    source_level = 0
    if not health.latest_ok:
        if health.latest_error_kind is ErrorKind.AUTH:
            source_level = 2
        elif health.failure_streak >= settings.failures_before_alert:
            source_level = 1
        open_episode = states.get(Rule.SOURCE)
        if open_episode is not None and open_episode.level > 0:
            source_level = max(source_level, 1)  # still failing: no "works again" yet
    source_measure = _Measure(
        Decimal(source_level),
        (Decimal(1), Decimal(2)),
        False,
        (Severity.WARNING, Severity.CRITICAL),
        (f"{health.failure_streak} fetches in a row failed", "the key was refused"),
    )
    step(Rule.SOURCE, source_measure, None, level=source_level)

    # A failed fetch never causes a money alert: money rules only look at fresh readings.
    if health.latest_ok and view.status is not Status.ERROR and not view.stale:
        as_of = view.fetched_at or now
        t = view.thresholds
        no_balance_rule = all(
            x is None for x in (t.warn_below, t.critical_below, t.warn_below_percent, t.critical_below_percent)
        )
        step(Rule.BALANCE, _balance(view), None, lapse=no_balance_rule)
        step(Rule.RUNWAY, _runway(view, settings), None)
        step(Rule.BUDGET, _budget(view), _period(Rule.BUDGET, as_of), lapse=t.monthly_budget is None)
        step(Rule.FORECAST, _forecast(view), _period(Rule.FORECAST, as_of), lapse=t.monthly_budget is None)
        step(Rule.SPIKE, _spike(view, settings, as_of.date().isoformat()), _period(Rule.SPIKE, as_of))
        step(Rule.EXPIRING, _expiring(view, settings, now), None, lapse=True)
    return new_states, events


def _transition(
    view: AccountView,
    rule: Rule,
    state: AlertState,
    level: int,
    measure: _Measure,
    settings: AlertSettings,
    now: datetime,
    events: list[AlertEvent],
    snoozed: bool,
) -> AlertState:
    def announce(kind: str, at_level: int, episode: int, sequence: int) -> None:
        severity = measure.severities[at_level - 1]
        description = measure.describe[at_level - 1]
        events.append(_event(view, rule, kind, severity, at_level, episode, description, severity, sequence))

    if level > 0 and (level > state.fired_level or (state.suppressed and not snoozed)):
        episode = state.episode + 1 if state.level == 0 else state.episode
        sequence = 1 if state.level == 0 else state.reminders + 1
        if snoozed:
            # Remember the alert without announcing it; it is announced when the snooze ends.
            return replace(
                state,
                level=level,
                fired_level=level,
                episode=episode,
                reminders=sequence - 1,
                since=state.since if state.level else now,
                suppressed=True,
                detail=measure.describe[level - 1],
            )
        announce("fired", level, episode, sequence)
        return replace(
            state,
            level=level,
            fired_level=level,
            peak_level=max(level, state.peak_level if state.level else 0),
            episode=episode,
            since=state.since if state.level else now,
            notified_at=now,
            reminders=sequence,
            suppressed=False,
            detail=measure.describe[level - 1],
        )
    if level == 0:
        announced = state.peak_level > 0 and not state.suppressed
        if state.level > 0 and announced and rule in RECOVERY_RULES and not snoozed:
            # The recovery goes wherever the loudest alert of the episode went.
            routing = measure.severities[state.peak_level - 1]
            events.append(
                _event(view, rule, "recovered", Severity.INFO, 0, state.episode, "", routing, state.reminders + 1)
            )
        return replace(
            state, level=0, fired_level=0, peak_level=0, since=None, reminders=0, detail=None, suppressed=False
        )
    if level < state.level:
        # Falling past a level's margin re-arms it, so a later fall below it is announced again.
        return replace(
            state, level=level, fired_level=min(state.fired_level, level), detail=measure.describe[level - 1]
        )
    severity = measure.severities[level - 1]
    due = (
        settings.reminder is not None
        and severity is Severity.CRITICAL
        and not snoozed
        and not state.suppressed
        and state.notified_at is not None
        and now - state.notified_at >= settings.reminder
    )
    if due:
        announce("reminder", level, state.episode, state.reminders + 1)
        return replace(state, level=level, notified_at=now, reminders=state.reminders + 1)
    return replace(state, level=level)


def _event(
    view: AccountView,
    rule: Rule,
    kind: str,
    severity: Severity,
    level: int,
    episode: int,
    description: str,
    routing: Severity,
    sequence: int = 1,
) -> AlertEvent:
    where = (
        view.balance.format() + " left"
        if view.balance is not None
        else (f"{view.spent_month.format()} spent this month" if view.spent_month is not None else "")
    )
    if rule is Rule.SOURCE:
        if kind == "recovered":
            title, text = f"{view.name}: billing source works again", f"{view.name} answered normally again."
        else:
            title = f"{view.name}: billing source failing"
            text = f"{description}: {view.error or 'no answer'}. Balances shown may be out of date."
    elif kind == "recovered":
        title = f"{view.name}: {rule.value} alert recovered"
        text = f"{view.name} is back to normal" + (f" ({where})." if where else ".")
    else:
        prefix = "Reminder: " if kind == "reminder" else ""
        title = f"{prefix}{view.name}: {description}"
        extra = ""
        if rule is Rule.RUNWAY and view.run_out:
            extra = (
                f" At {view.burn_rate.format() if view.burn_rate else '?'}/day it runs out around {view.run_out}."
            )
        if rule is Rule.SPIKE and view.spent_today is not None:
            extra = f" Spent today: {view.spent_today.format()}."
        if rule is Rule.FORECAST and view.projected_month is not None:
            extra = f" Projected month end: {view.projected_month.format()}."
        text = f"{view.name} ({view.account.provider}): {where}.{extra}" if where else f"{view.name}.{extra}"
    return AlertEvent(view.name, rule, kind, severity, level, episode, title, text, routing, sequence)


def open_alerts(states: Sequence[AlertState]) -> dict[str, list[str]]:
    """Descriptions of the alerts currently active, per account."""
    result: dict[str, list[str]] = {}
    for state in states:
        if state.level > 0 and state.detail:
            result.setdefault(state.account, []).append(state.detail)
    return result
