"""A simulated account for the demo mode: no network, figures derived from the clock."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from decimal import Decimal

from bot.models import BalanceSource, ProviderReport
from bot.money import Money
from bot.providers.base import FetchRequest, Provider
from bot.providers.spend import daily_series, month_to_date, spent_on

# The simulated account has run since this day: $100 bought at the start, and $100 more whenever the balance
# falls below $25, so that on any date it looks like a healthy prepaid account that its team tops up.
EPOCH = date(2024, 1, 1)
START_CREDIT = Decimal("100.00")
TOP_UP = Decimal("100.00")
TOP_UP_BELOW = Decimal("25.00")


def _daily(day: date) -> Decimal:
    # Stable pseudo-random spend between $1.40 and $2.80, with one spike in the middle of the month.
    digest = hashlib.sha256(day.isoformat().encode()).digest()
    amount = Decimal("1.40") + Decimal(digest[0] % 141) / 100
    return amount * 3 if day.day == 15 else amount


def _balance_before(day: date) -> tuple[Decimal, Decimal]:
    """The balance at the start of `day` (after that morning's top-up, if any) and all credit bought."""
    balance = bought = START_CREDIT
    current = EPOCH
    while current < day:
        balance -= _daily(current)
        current += timedelta(days=1)
        if balance < TOP_UP_BELOW:
            balance += TOP_UP
            bought += TOP_UP
    return balance, bought


class DemoProvider(Provider, name="demo", base_url="https://demo.invalid", internal=True):
    """A demo account: prepaid credit, topped up when it runs low, spent a little every day."""

    async def fetch(self, request: FetchRequest) -> ProviderReport:
        """Figures for `request.now`, the same on every call."""
        today = request.now.date()
        start = min(request.since, today.replace(day=1), today - timedelta(days=31))
        elapsed = (request.now - request.now.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds()
        by_day = {
            start + timedelta(days=i): _daily(start + timedelta(days=i)) for i in range((today - start).days)
        }
        by_day[today] = (_daily(today) * Decimal(elapsed) / Decimal(86400)).quantize(Decimal("0.01"))
        series = daily_series(by_day, "USD", start, today)
        opening, _bought = _balance_before(today)
        balance = Money(opening - by_day[today], "USD")
        return ProviderReport(
            currency="USD",
            balance=balance,
            balance_source=BalanceSource.REPORTED,
            balances=(balance,),
            spent_today=spent_on(series, today),
            spent_month=month_to_date(series, today),
            spent_month_through=today,
            daily_spend=series,
            notes=("demo data: configure real accounts to replace it (see README)",),
        )
