"""Turning per-day spend from a provider into a report's spend fields."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal

from bot.models import DailySpend, ProviderReport
from bot.money import Money
from bot.providers.base import BadResponseError


def daily_series(
    by_day: Mapping[date, Decimal], currency: str, since: date, today: date
) -> tuple[DailySpend, ...]:
    """One entry per UTC day from `since` to `today` inclusive; days the provider left out spent nothing."""
    days = (today - since).days + 1
    return tuple(
        DailySpend(day, Money(by_day.get(day, Decimal(0)), currency))
        for day in (since + timedelta(days=offset) for offset in range(max(days, 0)))
    )


def month_to_date(series: tuple[DailySpend, ...], today: date) -> Money | None:
    """Spend from the first of `today`'s month through today, if the series covers that whole span."""
    month_start = today.replace(day=1)
    if not series or series[0].day > month_start:
        return None
    currency = series[0].amount.currency
    return Money(sum((d.amount.amount for d in series if month_start <= d.day <= today), Decimal(0)), currency)


def spent_on(series: tuple[DailySpend, ...], day: date) -> Money | None:
    """Spend on one day, if the series covers it."""
    for entry in series:
        if entry.day == day:
            return entry.amount
    return None


def cost_report(
    provider: str, by_day: Mapping[date, Decimal], currency: str, since: date, today: date
) -> ProviderReport:
    """The report of a spend-only provider from its daily cost buckets, `since` to `today`."""
    if not by_day:
        # Cost reports have one bucket per day, empty days included: none at all is a broken answer, and
        # reading it as nothing spent would fill the whole window with $0 days.
        raise BadResponseError(f"{provider} returned no cost buckets for {since} to {today}")
    series = daily_series(by_day, currency, since, today)
    return ProviderReport(
        currency=currency,
        spent_today=spent_on(series, today),
        spent_month=month_to_date(series, today),
        daily_spend=series,
    )
