"""Alert rules as a persisted, edge-triggered state machine per account and rule (pure: no I/O)."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from bot.messages import condition_text
from bot.models import (
    AccountView,
    AlertEvent,
    AlertKind,
    AlertSettings,
    AlertState,
    Condition,
    ErrorKind,
    Rule,
    Severity,
    SourceHealth,
    Status,
)

NOT_RUNNING_OUT = Decimal("1e9")

# Rules whose end sends a "recovered" message; the others end with their period or simply lapse.
RECOVERY_RULES = frozenset({Rule.BALANCE, Rule.RUNWAY, Rule.FORECAST, Rule.SOURCE})

# How loud each level of each rule is (level 1 first).
SEVERITIES: Mapping[Rule, tuple[Severity, ...]] = {
    Rule.BALANCE: (Severity.WARNING, Severity.CRITICAL),
    Rule.RUNWAY: (Severity.WARNING,),
    Rule.BUDGET: (Severity.INFO, Severity.WARNING, Severity.CRITICAL),
    Rule.FORECAST: (Severity.WARNING,),
    Rule.SPIKE: (Severity.WARNING,),
    Rule.EXPIRING: (Severity.WARNING, Severity.CRITICAL),
    Rule.SOURCE: (Severity.WARNING, Severity.CRITICAL),
}


def severity(rule: Rule, level: int) -> Severity:
    """The severity of a rule's level (1 and up); the loudest one for a level past the last."""
    levels = SEVERITIES[rule]
    return levels[min(max(level, 1), len(levels)) - 1]


@dataclass(frozen=True)
class _Measure:
    value: Decimal
    thresholds: tuple[Decimal | None, ...]  # per level; None disables a level
    below: bool
    severities: tuple[Severity, ...]
    conditions: tuple[Condition, ...]  # what holding each level means, in numbers


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
        severities=SEVERITIES[Rule.BALANCE],
        conditions=tuple(
            Condition(Rule.BALANCE, level, x, view.currency) for level, x in enumerate((warn, critical), start=1)
        ),
    )


def _runway(view: AccountView, settings: AlertSettings) -> _Measure | None:
    if view.balance is None or view.burn_rate is None:
        return None
    days = view.days_left if view.days_left is not None else NOT_RUNNING_OUT
    return _Measure(
        days,
        (settings.runway_warn_days,),
        True,
        SEVERITIES[Rule.RUNWAY],
        (Condition(Rule.RUNWAY, 1, settings.runway_warn_days),),
    )


def _budget(view: AccountView, rule: Rule) -> _Measure | None:
    """The budget rule (spend so far: 50%, 80%, all of it) or the forecast rule (projected month end)."""
    value = view.spent_month if rule is Rule.BUDGET else view.projected_month
    if view.monthly_budget is None or value is None or not view.account.spend_only:
        return None
    budget = view.monthly_budget.amount
    # The budget rule speaks at 50%, 80% and all of it; the forecast rule once, at the budget.
    thresholds = (budget / 2, budget * Decimal("0.8"), budget) if rule is Rule.BUDGET else (budget,)
    levels = range(1, len(thresholds) + 1)
    return _Measure(
        value.amount,
        thresholds,
        below=False,
        severities=SEVERITIES[rule],
        conditions=tuple(Condition(rule, level, budget, view.currency) for level in levels),
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
        SEVERITIES[Rule.SPIKE],
        (Condition(Rule.SPIKE, 1, settings.spike_factor),),
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
        severities=SEVERITIES[Rule.EXPIRING],
        conditions=(Condition(Rule.EXPIRING, 1), Condition(Rule.EXPIRING, 2)),
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
        SEVERITIES[Rule.SOURCE],
        (Condition(Rule.SOURCE, 1, Decimal(health.failure_streak)), Condition(Rule.SOURCE, 2)),
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
        step(Rule.BUDGET, _budget(view, Rule.BUDGET), _period(Rule.BUDGET, as_of), lapse=t.monthly_budget is None)
        step(
            Rule.FORECAST,
            _budget(view, Rule.FORECAST),
            _period(Rule.FORECAST, as_of),
            lapse=t.monthly_budget is None,
        )
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
    def announce(kind: AlertKind, at_level: int, episode: int, sequence: int) -> None:
        severity = measure.severities[at_level - 1]
        condition = measure.conditions[at_level - 1]
        events.append(
            AlertEvent(view.name, rule, kind, severity, at_level, episode, condition, severity, sequence)
        )

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
                detail=condition_text(measure.conditions[level - 1]),
            )
        announce(AlertKind.FIRED, level, episode, sequence)
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
            detail=condition_text(measure.conditions[level - 1]),
        )
    if level == 0:
        announced = state.peak_level > 0 and not state.suppressed
        if state.level > 0 and announced and rule in RECOVERY_RULES and not snoozed:
            # The recovery goes wherever the loudest alert of the episode went.
            routing = measure.severities[state.peak_level - 1]
            held = measure.conditions[state.peak_level - 1]
            events.append(
                AlertEvent(
                    view.name,
                    rule,
                    AlertKind.RECOVERED,
                    Severity.INFO,
                    0,
                    state.episode,
                    held,
                    routing,
                    state.reminders + 1,
                )
            )
        return replace(
            state, level=0, fired_level=0, peak_level=0, since=None, reminders=0, detail=None, suppressed=False
        )
    if level < state.level:
        # Falling past a level's margin re-arms it, so a later fall below it is announced again.
        return replace(
            state,
            level=level,
            fired_level=min(state.fired_level, level),
            detail=condition_text(measure.conditions[level - 1]),
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
        announce(AlertKind.REMINDER, level, state.episode, state.reminders + 1)
        return replace(state, level=level, notified_at=now, reminders=state.reminders + 1)
    return replace(state, level=level)


def open_alerts(states: Sequence[AlertState]) -> dict[str, list[str]]:
    """Descriptions of the alerts currently active, per account."""
    result: dict[str, list[str]] = {}
    for state in states:
        if state.level > 0 and state.detail:
            result.setdefault(state.account, []).append(state.detail)
    return result
