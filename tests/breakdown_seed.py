"""Seeds a store with breakdowns and the daily spend they reconcile with, as if fetched just now (so
`Breakdowns.refresh` finds nothing due), for the breakdown tests of the command line and of chat."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from bot.breakdown import BreakdownPart, BreakdownReport, Dimension
from bot.models import DailySpend, ProviderReport, Reading
from bot.money import Money
from bot.store import Store

D = Decimal
SEEDED_DAYS = 181
GAP_DAY_OFFSET = 3  # the day whose spend the parts leave 0.37 short of
GAP = D("0.37")


def _part(day: date, key: str, cost: str | None, **usage: int) -> BreakdownPart:
    return BreakdownPart(day, Dimension.MODEL, key, key, None if cost is None else D(cost), **usage)


def model_parts(today: date) -> list[BreakdownPart]:
    """Fourteen days before today and today itself: gpt-4o and gpt-4o-mini every day (gpt-4o costs more in the
    last seven), o1 once, and today's partial gpt-4o."""
    parts = []
    for offset in range(1, 15):
        day = today - timedelta(days=offset)
        recent = offset <= 7
        parts.append(
            _part(
                day,
                "gpt-4o",
                "3.00" if recent else "2.00",
                input_tokens=1000,
                cached_input_tokens=200,
                output_tokens=100,
                requests=10,
            )
        )
        parts.append(_part(day, "gpt-4o-mini", "1.00"))
    parts.append(_part(today - timedelta(days=2), "o1", "0.50"))
    parts.append(_part(today, "gpt-4o", "0.25"))
    return parts


def many_parts(today: date, models: int = 12) -> list[BreakdownPart]:
    """`models` models every day of the last fourteen, model-N costing N cents a day."""
    return [
        _part(today - timedelta(days=offset), f"model-{n:02d}", f"0.{n:02d}")
        for offset in range(1, 15)
        for n in range(1, models + 1)
    ]


def daily_spend(parts: list[BreakdownPart], today: date, gaps: dict[date, Decimal]) -> list[DailySpend]:
    """The ungrouped spend of each day: its parts, plus the day's known gap."""
    totals: dict[date, Decimal] = {}
    for part in parts:
        totals[part.day] = totals.get(part.day, D(0)) + (part.cost or 0)
    return [DailySpend(day, Money(total + gaps.get(day, D(0)), "USD")) for day, total in sorted(totals.items())]


async def seed(
    store: Store,
    account: str,
    parts: list[BreakdownPart],
    *,
    gaps: dict[date, Decimal],
    fetched_at: datetime | None = None,
    today: date | None = None,
) -> None:
    """Store an account's breakdown days as fetched at `fetched_at` (default now: nothing is due) and its daily
    spend, the days counted back from `today` (default the UTC date now: pass the one `parts` were made for, so
    that a seeding across midnight stays one day)."""
    now = fetched_at or datetime.now(UTC)
    today = today or datetime.now(UTC).date()
    # Every day a 90-day breakdown and the 90 before it may ask for, so that no fetch is due.
    days = [today - timedelta(days=n) for n in range(0, SEEDED_DAYS)]
    report = BreakdownReport("USD", tuple(days), tuple(parts), frozenset({Dimension.MODEL}))
    await store.breakdowns.save(account, days, report, settled_before=today - timedelta(days=3), now=now)
    reading = Reading(account, "openai", now, report=ProviderReport(currency="USD"))
    await store.readings.add_reading(reading, daily_spend(parts, today, gaps))
