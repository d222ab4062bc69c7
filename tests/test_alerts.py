"""Alert rule semantics as tables: edge triggers, highest level only, hysteresis, periods, reminders."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from bot.alerts import evaluate, open_alerts
from bot.models import (
    AccountView,
    AlertSettings,
    AlertState,
    DailySpend,
    ErrorKind,
    Grant,
    ProviderReport,
    Rule,
    Severity,
    SourceHealth,
    Status,
    Thresholds,
)
from bot.money import Money
from tests.conftest import make_account

D = Decimal
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OK = SourceHealth(latest_ok=True, failure_streak=0)


def usd(value: str | int) -> Money:
    return Money(D(value), "USD")


def balance_view(balance: str, **thresholds: Any) -> AccountView:
    account = make_account("ds", "deepseek", "http://x")
    return AccountView(
        account,
        Status.OK,
        Thresholds(**{k: D(str(v)) for k, v in thresholds.items()}),
        fetched_at=NOW,
        currency="USD",
        balance=usd(balance),
        report=ProviderReport("USD"),
    )


def run(
    views: list[AccountView],
    settings: AlertSettings | None = None,
    health: list[SourceHealth] | None = None,
    step: timedelta = timedelta(hours=1),
) -> list[list[str]]:
    """Feed views one poll at a time, carrying state; returns the events of each poll as short strings."""
    settings = settings or AlertSettings()
    states: dict[Rule, AlertState] = {}
    out = []
    for index, view in enumerate(views):
        now = NOW + step * index
        new_states, events = evaluate(view, (health or [OK] * len(views))[index], states, settings, now)
        for state in new_states:
            states[state.rule] = state
        out.append([f"{e.rule.value}:{e.kind}:{e.severity.value}" for e in events])
    return out


@pytest.mark.parametrize(
    ("balances", "expected"),
    [
        # Edge-triggered: fires once when crossing warn, stays quiet while below.
        (["30", "19", "18", "17"], [[], ["balance:fired:warning"], [], []]),
        # Only the highest newly crossed level fires when several are crossed at once.
        (["30", "4"], [[], ["balance:fired:critical"]]),
        # Warning then critical: each level once.
        (["19", "4", "3"], [["balance:fired:warning"], ["balance:fired:critical"], []]),
        # Hovering around the line inside the margin never re-fires (20 * 1.1 = 22).
        (["19", "21", "19.5", "21.9", "19"], [["balance:fired:warning"], [], [], [], []]),
        # Recovery past the margin sends one recovered message and re-arms.
        (["19", "23", "19"], [["balance:fired:warning"], ["balance:recovered:info"], ["balance:fired:warning"]]),
        # Critical, partial recovery to warning re-arms critical without a message; falling again re-fires it.
        (["4", "12", "4"], [["balance:fired:critical"], [], ["balance:fired:critical"]]),
        # Critical inside its margin (5 * 1.1 = 5.5) stays critical: no re-fire.
        (["4", "5.4", "4"], [["balance:fired:critical"], [], []]),
        # A top-up from critical straight to healthy: one recovery.
        (["4", "100"], [["balance:fired:critical"], ["balance:recovered:info"]]),
    ],
)
def test_low_balance_table(balances: list[str], expected: list[list[str]]) -> None:
    views = [balance_view(b, warn_below=20, critical_below=5) for b in balances]
    assert run(views) == expected


def test_percent_of_granted_credit() -> None:
    def view(balance: str) -> AccountView:
        base = balance_view(balance, warn_below_percent=25, critical_below_percent=10)
        return replace(base, report=ProviderReport("USD", granted_total=usd(200)))

    assert run([view("100"), view("45"), view("15")]) == [
        [],
        ["balance:fired:warning"],
        ["balance:fired:critical"],
    ]


def test_failed_fetch_never_causes_a_money_alert() -> None:
    stale = replace(balance_view("1", warn_below=20, critical_below=5), stale=True, error="HTTP 500")
    failing = SourceHealth(
        latest_ok=False, failure_streak=1, latest_error="HTTP 500", latest_error_kind=ErrorKind.UNAVAILABLE
    )
    assert run([stale], health=[failing]) == [[]]


@pytest.mark.parametrize(
    ("health", "expected"),
    [
        # N consecutive failures (3 by default) raise one warning, and one recovery when it works again.
        (
            [
                (False, 1, ErrorKind.UNAVAILABLE),
                (False, 2, ErrorKind.UNAVAILABLE),
                (False, 3, ErrorKind.UNAVAILABLE),
                (False, 4, ErrorKind.UNAVAILABLE),
                (True, 0, None),
            ],
            [[], [], ["source:fired:warning"], [], ["source:recovered:info"]],
        ),
        # An authentication failure alerts at once, as critical.
        (
            [(False, 1, ErrorKind.AUTH), (False, 2, ErrorKind.AUTH), (True, 0, None)],
            [["source:fired:critical"], [], ["source:recovered:info"]],
        ),
        # A blip shorter than the threshold says nothing at all.
        ([(False, 1, ErrorKind.RATE_LIMITED), (True, 0, None)], [[], []]),
    ],
)
def test_billing_source_failing(
    health: list[tuple[bool, int, ErrorKind | None]], expected: list[list[str]]
) -> None:
    views = []
    healths = []
    for ok, streak, kind in health:
        view = balance_view("100")
        if not ok:
            view = replace(view, stale=True, error="failing", error_kind=kind)
        views.append(view)
        healths.append(SourceHealth(ok, streak, None if ok else "failing", kind))
    assert run(views, health=healths) == expected


def spend_view(
    spent_month: str,
    projected: str | None = None,
    budget: str = "100",
    today: str | None = None,
    series: tuple[DailySpend, ...] = (),
    as_of: datetime = NOW,
) -> AccountView:
    account = make_account("oa", "openai", "http://x")
    return AccountView(
        account,
        Status.OK,
        Thresholds(monthly_budget=D(budget)),
        fetched_at=as_of,
        currency="USD",
        spent_month=usd(spent_month),
        monthly_budget=usd(budget),
        projected_month=usd(projected) if projected else None,
        spent_today=usd(today) if today else None,
        spend_series=series,
        report=ProviderReport("USD"),
    )


@pytest.mark.parametrize(
    ("spend", "expected"),
    [
        (
            ["10", "49", "50", "60", "80", "99", "100", "150"],
            [[], [], ["budget:fired:info"], [], ["budget:fired:warning"], [], ["budget:fired:critical"], []],
        ),
        # A jump over several thresholds announces only the highest.
        (["10", "85"], [[], ["budget:fired:warning"]]),
    ],
)
def test_budget_thresholds(spend: list[str], expected: list[list[str]]) -> None:
    assert run([spend_view(s) for s in spend]) == expected


def test_budget_rearms_with_the_new_month_without_a_recovery_message() -> None:
    november = spend_view("90", as_of=datetime(2026, 11, 30, 12, tzinfo=UTC))
    december = spend_view("85", as_of=datetime(2026, 12, 20, 12, tzinfo=UTC))
    assert run([november, spend_view("95", as_of=datetime(2026, 11, 30, 13, tzinfo=UTC)), december]) == [
        ["budget:fired:warning"],
        [],
        ["budget:fired:warning"],
    ]


def test_forecast_over_budget_fires_and_recovers() -> None:
    views = [spend_view("20", "90"), spend_view("30", "120"), spend_view("31", "95"), spend_view("32", "85")]
    assert run(views) == [[], ["forecast:fired:warning"], [], ["forecast:recovered:info"]]


def test_spend_spike_needs_three_times_the_median_and_the_minimum() -> None:
    series = tuple(DailySpend(date(2026, 11, 25) - timedelta(days=i), usd("2")) for i in range(7, 0, -1))
    quiet = spend_view("20", today="5", series=series)
    spike = spend_view("26", today="7", series=series)
    assert run([quiet, spike, spike]) == [[], ["spike:fired:warning"], []]
    tiny = tuple(DailySpend(d.day, usd("0.01")) for d in series)
    assert run([spend_view("1", today="0.5", series=tiny)]) == [[]]  # below the 1-unit minimum


def test_runway_warns_within_the_window() -> None:
    def view(days: str | None) -> AccountView:
        base = balance_view("50")
        return replace(base, burn_rate=usd(5), days_left=D(days) if days else None)

    assert run([view("30"), view("6"), view("7.5"), view("8")]) == [
        [],
        ["runway:fired:warning"],
        [],
        ["runway:recovered:info"],
    ]


def test_expiring_grant() -> None:
    def view(expires_in: timedelta, index: int) -> AccountView:
        grant = Grant(usd(18), usd(1), NOW + timedelta(hours=index) + expires_in)
        return replace(balance_view("17"), report=ProviderReport("USD", grants=(grant,)))

    views = [view(timedelta(days=10), 0), view(timedelta(days=5), 1), view(timedelta(hours=20), 2)]
    assert run(views) == [[], ["expiring:fired:warning"], ["expiring:fired:critical"]]


def test_reminders_are_off_by_default_and_repeat_while_critical_when_set() -> None:
    views = [balance_view("3", critical_below=5)] * 4
    assert run(views) == [["balance:fired:critical"], [], [], []]
    settings = AlertSettings(reminder=timedelta(hours=2))
    assert run(views, settings) == [["balance:fired:critical"], [], ["balance:reminder:critical"], []]


def test_events_have_unique_keys_per_episode() -> None:
    states: dict[Rule, AlertState] = {}
    keys = []
    for index, balance in enumerate(["19", "30", "19"]):
        new, events = evaluate(
            balance_view(balance, warn_below=20), OK, states, AlertSettings(), NOW + timedelta(hours=index)
        )
        states.update({s.rule: s for s in new})
        keys += [e.key for e in events]
    assert len(keys) == len(set(keys)) == 3
    assert open_alerts(list(states.values())) == {"ds": ["below $20.00"]}


def test_recovery_routes_like_the_alert_it_closes() -> None:
    states: dict[Rule, AlertState] = {}
    new, _ = evaluate(balance_view("3", warn_below=20, critical_below=5), OK, states, AlertSettings(), NOW)
    states.update({s.rule: s for s in new})
    _, events = evaluate(balance_view("90", warn_below=20, critical_below=5), OK, states, AlertSettings(), NOW)
    (event,) = events
    assert (event.kind, event.severity, event.routing_severity) == ("recovered", Severity.INFO, Severity.CRITICAL)


def test_missing_data_keeps_an_open_alert_instead_of_resetting_it() -> None:
    states: dict[Rule, AlertState] = {}
    for view in (
        balance_view("3", critical_below=5),
        replace(balance_view("3", critical_below=5), balance=None),
        balance_view("3", critical_below=5),
    ):
        new, events = evaluate(view, OK, states, AlertSettings(), NOW)
        states.update({s.rule: s for s in new})
        if view.balance is None:
            assert events == []
    assert states[Rule.BALANCE].episode == 1  # still the first episode: no second alert
