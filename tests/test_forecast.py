"""Pure money math: estimated balance, burn, runway and month-end projection."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.forecast import (
    burn_from_series,
    days_left,
    estimated_balance,
    month_end,
    projected_month_spend,
    run_out_date,
)
from bot.history import burn_from_days, fold
from bot.models import DailySpend, LedgerEntry, ProviderReport, Reading
from bot.money import CurrencyMismatchError, Money, parse_amount

D = Decimal
USD = "USD"


def burn_from_balances(history: list[tuple[datetime, Money]], now: datetime) -> Money | None:
    """Burn from balance readings, through their days (as the views compute it)."""
    readings = [Reading("a", "deepseek", at, ProviderReport(m.currency, balance=m)) for at, m in history]
    return burn_from_days(list(fold(readings).values()), now)


def series(start: date, amounts: list[str]) -> list[DailySpend]:
    return [DailySpend(start + timedelta(days=i), Money(D(a), USD)) for i, a in enumerate(amounts)]


def test_estimated_balance_is_topups_minus_spend_since_first() -> None:
    entries = [
        LedgerEntry("a", Money(D(50), USD), date(2026, 11, 20), "config"),
        LedgerEntry("a", Money(D(20), USD), date(2026, 11, 23), "cli"),
    ]
    spend = series(date(2026, 11, 18), ["9", "9", "1", "2", "3", "4", "5", "6"])  # 18th..25th
    assert estimated_balance(entries, spend, date(2026, 11, 25)) == Money(D(70) - D(21), USD)


def test_estimated_balance_needs_every_day_since_the_first_topup() -> None:
    entries = [LedgerEntry("a", Money(D(50), USD), date(2026, 11, 1), "config")]
    spend = series(date(2026, 11, 10), ["1"] * 16)
    assert estimated_balance(entries, spend, date(2026, 11, 25)) is None


def test_burn_from_series_uses_complete_days_only() -> None:
    today = date(2026, 11, 25)
    spend = series(today - timedelta(days=7), ["1", "2", "3", "4", "5", "6", "7", "100"])
    assert burn_from_series(spend, today) == Money(D(4), USD)


def test_topups_are_not_negative_spend() -> None:
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    history = [
        (now - timedelta(days=2), Money(D(100), USD)),
        (now - timedelta(days=1), Money(D(90), USD)),
        (now - timedelta(hours=12), Money(D(190), USD)),  # top-up of 100
        (now, Money(D(180), USD)),
    ]
    burn = burn_from_balances(history, now)
    assert burn == Money(D(10), USD)  # 20 spent over 2 days


def test_short_history_gives_no_burn() -> None:
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    history = [(now - timedelta(hours=1), Money(D(100), USD)), (now, Money(D(99), USD))]
    assert burn_from_balances(history, now) is None


@given(st.lists(st.decimals(min_value=0, max_value=10_000, places=2), min_size=2, max_size=40))
def test_balance_burn_is_never_negative(values: list[Decimal]) -> None:
    now = datetime(2026, 11, 25, tzinfo=UTC)
    history = [(now - timedelta(hours=6 * (len(values) - i)), Money(v, USD)) for i, v in enumerate(values)]
    burn = burn_from_balances(history, now)
    assert burn is None or burn.amount >= 0


def test_days_left_and_run_out() -> None:
    now = datetime(2026, 11, 25, tzinfo=UTC)
    remaining = days_left(Money(D("38.5"), USD), Money(D("1.1"), USD))
    assert remaining == D(35)
    assert run_out_date(now, remaining) == date(2026, 12, 30)
    assert days_left(Money(D(5), USD), Money(D(0), USD)) is None
    assert days_left(Money(D(-2), USD), Money(D(1), USD)) == 0
    assert days_left(Money(D(5), "CNY"), Money(D(1), USD)) is None


def test_month_end_projection() -> None:
    now = datetime(2026, 11, 25, tzinfo=UTC)
    assert month_end(now) == datetime(2026, 12, 1, tzinfo=UTC)
    assert month_end(datetime(2026, 12, 31, 23, tzinfo=UTC)) == datetime(2027, 1, 1, tzinfo=UTC)
    projected = projected_month_spend(Money(D(80), USD), Money(D(4), USD), now)
    assert projected == Money(D(104), USD)


def test_currencies_never_add() -> None:
    with pytest.raises(CurrencyMismatchError):
        _ = Money(D(1), USD) + Money(D(1), "CNY")


@pytest.mark.parametrize("value", [True, None, "nan", "inf", "-Infinity", "1e9999", "abc", [], {}])
def test_parse_amount_refuses_non_amounts(value: object) -> None:
    with pytest.raises(ValueError, match=r"not a|finite|type|out of range"):
        parse_amount(value)


@pytest.mark.parametrize(("value", "expected"), [(0.06, "0.06"), ("12.50", "12.50"), (7, "7"), (" 3.1 ", "3.1")])
def test_parse_amount_reads_numbers_and_numeric_strings(value: object, expected: str) -> None:
    assert parse_amount(value) == D(expected)


def test_money_format() -> None:
    assert Money(D("1234.5"), USD).format() == "$1,234.50"
    assert Money(D("-3"), USD).format() == "-$3.00"
    assert Money(D("71.456"), "CNY").format() == "¥71.46"
    assert Money(D("2"), "CHF").format() == "2.00 CHF"
