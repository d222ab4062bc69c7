"""A simulated account for the demo mode: no network, figures derived from the clock."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from decimal import Decimal

from bot.models import BalanceSource, ProviderReport
from bot.money import Money
from bot.providers.base import FetchRequest, Provider
from bot.providers.spend import daily_series, month_to_date, spent_on

MONTHLY_CREDIT = Decimal("60.00")  # "bought" on the first of each month


def _daily(day: date) -> Decimal:
    # Stable pseudo-random spend between $1.40 and $2.80, with one spike in the middle of the month.
    digest = hashlib.sha256(day.isoformat().encode()).digest()
    amount = Decimal("1.40") + Decimal(digest[0] % 141) / 100
    return amount * 3 if day.day == 15 else amount


class DemoProvider(Provider, name="demo", base_url="https://demo.invalid"):
    """A demo account: $60 of credit each month, spent a little every day."""

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
        month = month_to_date(series, today) or Money.zero("USD")
        balance = Money(MONTHLY_CREDIT, "USD") - month
        return ProviderReport(
            currency="USD",
            balance=balance,
            balance_source=BalanceSource.REPORTED,
            balances=(balance,),
            spent_today=spent_on(series, today),
            spent_month=month,
            daily_spend=series,
            granted_total=Money(MONTHLY_CREDIT, "USD"),
            notes=("demo data: configure real accounts to replace it (see README)",),
        )
