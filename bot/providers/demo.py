"""A simulated account for the demo mode: no network, figures derived from the clock."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from decimal import Decimal

from bot.breakdown import BreakdownPart, BreakdownReport, Dimension
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
# Each day's spend split across models (the last takes the rest, so the parts sum exactly) and within a model
# 30% input, 70% output; the spike of the 15th is all the first model's output.
MODEL_SHARES = (("gpt-4o", Decimal("0.55")), ("gpt-4o-mini", Decimal("0.30")), ("o3-mini", None))
INPUT_SHARE = Decimal("0.30")
CENT = Decimal("0.01")


def _daily(day: date) -> Decimal:
    # Stable pseudo-random spend between $1.40 and $2.80, with one spike in the middle of the month.
    digest = hashlib.sha256(day.isoformat().encode()).digest()
    amount = Decimal("1.40") + Decimal(digest[0] % 141) / 100
    return amount * 3 if day.day == 15 else amount


def _day_parts(day: date, spent: Decimal) -> list[BreakdownPart]:
    spike = (spent * 2 / 3).quantize(CENT) if day.day == 15 else Decimal(0)
    left, parts = spent, []
    for model, share in MODEL_SHARES:
        extra = spike if model == MODEL_SHARES[0][0] else Decimal(0)
        cost = left if share is None else ((spent - spike) * share).quantize(CENT) + extra
        left -= cost
        input_cost = ((cost - extra) * INPUT_SHARE).quantize(CENT)
        tokens = int(cost * 200_000)
        parts += [
            BreakdownPart(day, Dimension.MODEL, model, model, cost, tokens * 3, tokens, tokens, tokens // 900 + 1),
            BreakdownPart(day, Dimension.LINE_ITEM, f"{model}, input", f"{model}, input", input_cost),
            BreakdownPart(day, Dimension.LINE_ITEM, f"{model}, output", f"{model}, output", cost - input_cost),
        ]
    parts.append(BreakdownPart(day, Dimension.PROJECT, "proj_demo", "Demo app", spent))
    parts.append(BreakdownPart(day, Dimension.KEY, "key_demo", "key_demo", None, int(spent * 600_000)))
    return parts


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


class DemoProvider(
    Provider, name="demo", base_url="https://demo.invalid", internal=True, breakdowns=tuple(Dimension)
):
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

    async def fetch_breakdown(self, request: FetchRequest, until: date) -> BreakdownReport:
        """The simulated spend of each day split by model, line item, project and key."""
        today = request.now.date()
        report = await self.fetch(request)
        by_day = {entry.day: entry.amount.amount for entry in report.daily_spend}
        asked = (request.since + timedelta(days=n) for n in range((until - request.since).days + 1))
        days = [d for d in asked if d in by_day and d <= today]
        parts = tuple(part for d in days for part in _day_parts(d, by_day[d]))
        return BreakdownReport("USD", tuple(days), parts, frozenset(Dimension), {d: by_day[d] for d in days})
