"""History at day resolution, without I/O: one `ReadingDay` per account and UTC day, folded from readings in
time order and merged with what is stored, and the burn and chart points read from it.

A day keeps what the chart, the forecast and the summaries need: the attempts and failures, the last error,
and the reported balance (first, last, min, max, when, and the sum of its falls between consecutive readings).
Folding readings one by one, or folding two runs of them and merging the results, gives the same day.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal

from bot.forecast import BURN_WINDOW_DAYS, MIN_BALANCE_HISTORY, SECONDS_PER_DAY
from bot.models import Reading
from bot.money import Money


@dataclass(frozen=True)
class BalanceSpan:
    """The reported balance over part of a day, in one currency."""

    currency: str
    first: Decimal
    last: Decimal
    low: Decimal
    high: Decimal
    first_at: datetime
    last_at: datetime
    drops: Decimal  # the sum of falls between consecutive readings (rises are top-ups, not negative spend)

    @classmethod
    def single(cls, amount: Money, at: datetime) -> BalanceSpan:
        """The span of one reading."""
        value = amount.amount
        return cls(amount.currency, value, value, value, value, at, at, Decimal(0))

    def then(self, later: BalanceSpan) -> BalanceSpan:
        """This span followed by a later one; a later span in another currency starts the day's balance over."""
        if later.currency != self.currency:
            return later
        return BalanceSpan(
            self.currency,
            self.first,
            later.last,
            min(self.low, later.low),
            max(self.high, later.high),
            self.first_at,
            later.last_at,
            self.drops + later.drops + max(self.last - later.first, Decimal(0)),
        )


@dataclass(frozen=True)
class ReadingDay:
    """Every attempt of one account on one UTC day, rolled up."""

    account: str
    day: date
    attempts: int
    failures: int
    first_at: datetime
    last_at: datetime
    last_ok: bool
    last_error: str | None
    last_error_kind: str | None
    balance: BalanceSpan | None

    @classmethod
    def of(cls, reading: Reading) -> ReadingDay:
        """The day of one reading."""
        report = reading.report
        balance = report.balance if report is not None else None
        return cls(
            reading.account,
            reading.fetched_at.date(),
            1,
            0 if reading.ok else 1,
            reading.fetched_at,
            reading.fetched_at,
            reading.ok,
            reading.error,
            reading.error_kind.value if reading.error_kind else None,
            BalanceSpan.single(balance, reading.fetched_at) if balance is not None else None,
        )

    def then(self, later: ReadingDay) -> ReadingDay:
        """This day's earlier attempts followed by its later ones."""
        if self.balance is None or later.balance is None:
            balance = later.balance or self.balance
        else:
            balance = self.balance.then(later.balance)
        return replace(
            later,
            attempts=self.attempts + later.attempts,
            failures=self.failures + later.failures,
            first_at=self.first_at,
            balance=balance,
        )


def fold(readings: Iterable[Reading]) -> dict[tuple[str, date], ReadingDay]:
    """Readings rolled up per account and UTC day (in any order: they are folded oldest first)."""
    days: dict[tuple[str, date], ReadingDay] = {}
    for reading in sorted(readings, key=lambda r: (r.account, r.fetched_at)):
        key = (reading.account, reading.fetched_at.date())
        day = ReadingDay.of(reading)
        days[key] = days[key].then(day) if key in days else day
    return days


def merge(earlier: dict[tuple[str, date], ReadingDay], later: dict[tuple[str, date], ReadingDay]) -> None:
    """Fold `earlier` (attempts before every one in `later`) into `later`, in place."""
    for key, day in earlier.items():
        later[key] = day.then(later[key]) if key in later else day


def balance_closes(days: Sequence[ReadingDay], currency: str) -> list[tuple[date, Decimal]]:
    """The last reported balance of each day in a currency, oldest first (the chart's points)."""
    ordered = sorted(days, key=lambda d: d.day)
    return [(d.day, d.balance.last) for d in ordered if d.balance is not None and d.balance.currency == currency]


def burn_from_days(days: Sequence[ReadingDay], now: datetime) -> Money | None:
    """Burn per day from falling balances over the last week of days (today's and the seven before it); rises
    (top-ups) are not negative spend. None with less than six hours of balances."""
    start = now.date() - timedelta(days=BURN_WINDOW_DAYS)
    spans = [d.balance for d in sorted(days, key=lambda d: d.day) if d.balance is not None and start <= d.day]
    if not spans:
        return None
    currency = spans[-1].currency
    joined: BalanceSpan | None = None
    for span in spans:
        if span.currency == currency:
            joined = span if joined is None else joined.then(span)
    assert joined is not None
    length = joined.last_at - joined.first_at
    if length < MIN_BALANCE_HISTORY:
        return None
    return Money(joined.drops * SECONDS_PER_DAY / Decimal(length.total_seconds()), currency)
