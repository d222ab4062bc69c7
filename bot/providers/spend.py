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


def reported_through(series: tuple[DailySpend, ...], today: date) -> date | None:
    """The last day of `today`'s month that the series reports (today, or an earlier day while the provider
    lags), if the series covers the month from its first day; None otherwise."""
    month_start = today.replace(day=1)
    if not series or series[0].day > month_start:
        return None
    days = [d.day for d in series if month_start <= d.day <= today]
    return max(days) if days else None


def month_to_date(series: tuple[DailySpend, ...], today: date) -> Money | None:
    """Spend from the first of `today`'s month through the last day reported (see `reported_through`); None
    when no day of the month is reported yet."""
    through = reported_through(series, today)
    if through is None:
        return None
    currency = series[0].amount.currency
    month_start = today.replace(day=1)
    return Money(sum((d.amount.amount for d in series if month_start <= d.day <= through), Decimal(0)), currency)


def spent_on(series: tuple[DailySpend, ...], day: date) -> Money | None:
    """Spend on one day, if the series covers it."""
    for entry in series:
        if entry.day == day:
            return entry.amount
    return None


def cost_report(
    provider: str,
    by_day: Mapping[date, Decimal],
    currency: str,
    since: date,
    today: date,
    *,
    today_reported: bool,
    notes: tuple[str, ...] = (),
) -> ProviderReport:
    """The report of a spend-only provider from its daily cost buckets, `since` to `today`.

    A completed past day with an empty bucket spent nothing; today's bucket counts only when the provider
    reported something in it (`today_reported`): an empty one while its data lags is unknown, not $0.
    """
    if not by_day:
        # Cost reports have one bucket per day, empty days included: none at all is a broken answer, and
        # reading it as nothing spent would fill the whole window with $0 days.
        raise BadResponseError(f"{provider} returned no cost buckets for {since} to {today}")
    last = today if today_reported else today - timedelta(days=1)
    series = daily_series({d: v for d, v in by_day.items() if d <= last}, currency, since, last)
    return ProviderReport(
        currency=currency,
        spent_today=spent_on(series, today),
        spent_month=month_to_date(series, today),
        spent_month_through=reported_through(series, today),
        daily_spend=series,
        notes=notes,
    )
