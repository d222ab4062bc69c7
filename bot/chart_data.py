"""Turns account views and their history into chart series (the drawing itself is in `bot.chart`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal

from bot.chart import MAX_PANELS, ChartSeries, render_chart
from bot.forecast import month_end
from bot.history import balance_closes
from bot.models import AccountView, BalanceSource
from bot.monitor import Monitor

HISTORY_DAYS = 30
PROJECTION_DAYS = 45


def _projection(
    start: date, value: Decimal, burn: Decimal | None, until: date
) -> tuple[tuple[date, Decimal], ...]:
    if burn is None or burn <= 0 or value <= 0:
        return ()  # nothing runs out later: a balance at or below zero has run out already
    days = min((until - start).days, PROJECTION_DAYS)
    if days <= 0:
        return ()
    end_value = value - burn * days
    if end_value < 0:  # stop where the money runs out
        days = int(value / burn) + 1
        end_value = max(value - burn * days, Decimal(0))
    return ((start, value), (start + timedelta(days=days), end_value))


async def chart_series(monitor: Monitor, views: Sequence[AccountView]) -> list[ChartSeries]:
    """One series per account: balance history with its run-out projection, or month spend against budget."""
    now = monitor.clock()
    today = now.date()
    ledgers = await monitor.ledger([v.account for v in views])
    # Only the panels the chart draws need their history; the rest are counted ("+N more").
    drawn = [v for v in views if v.balance is not None or v.spent_month is not None][:MAX_PANELS]
    reported = [v.name for v in drawn if v.balance is not None and v.balance_source is not BalanceSource.ESTIMATED]
    histories = await monitor.store.history.days(reported, today - timedelta(days=HISTORY_DAYS))
    result = []
    for view in views:
        currency = view.currency or "USD"
        burn = view.burn_rate.amount if view.burn_rate is not None else None
        if view.balance is not None:
            if view.balance_source is BalanceSource.ESTIMATED:
                entries = ledgers.get(view.name, [])
                spend = {d.day: d.amount.amount for d in view.spend_series}
                points = []
                for offset in range(HISTORY_DAYS, -1, -1):
                    day = today - timedelta(days=offset)
                    bought = sum((e.amount.amount for e in entries if e.on_day <= day), Decimal(0))
                    if not entries or day < entries[0].on_day:
                        continue
                    spent = sum((v for d, v in spend.items() if entries[0].on_day <= d <= day), Decimal(0))
                    points.append((day, bought - spent))
            else:
                points = balance_closes(histories.get(view.name, []), currency)
            if not points:
                points = [(today, view.balance.amount)]
            result.append(
                ChartSeries(
                    view.name,
                    currency,
                    "balance",
                    tuple(points),
                    _projection(today, view.balance.amount, burn, today + timedelta(PROJECTION_DAYS)),
                    view.thresholds.warn_below,
                    view.thresholds.critical_below,
                )
            )
        elif view.spent_month is not None:
            month_start = today.replace(day=1)
            running = Decimal(0)
            points = []
            for entry in view.spend_series:
                if entry.day >= month_start:
                    running += entry.amount.amount
                    points.append((entry.day, running))
            if not points:
                points = [(today, view.spent_month.amount)]
            last_day, last_value = points[-1]
            projection: tuple[tuple[date, Decimal], ...] = ()
            if burn:
                end = (month_end(now) - timedelta(days=1)).date()
                projection = ((last_day, last_value), (end, last_value + burn * (end - last_day).days))
            budget = view.monthly_budget.amount if view.monthly_budget is not None else None
            result.append(ChartSeries(view.name, currency, "spend", tuple(points), projection, budget))
    return result


def chart_title(series: Sequence[ChartSeries]) -> str:
    """The chart's title, naming the span its history really covers (a new install has a point or two)."""
    longest = max(((s.points[-1][0] - s.points[0][0]).days for s in series if s.points), default=0)
    if longest >= HISTORY_DAYS - 1:
        return "LLM credits: last 30 days and projection"
    return f"LLM credits: {'today' if longest == 0 else f'the last {longest + 1} days'} and projection"


async def make_chart(monitor: Monitor, views: Sequence[AccountView]) -> bytes | None:
    """A PNG chart of the accounts, drawn off the event loop; None when there is nothing to draw."""
    series = await chart_series(monitor, views)
    if not series:
        return None
    title = chart_title(series)
    return await asyncio.to_thread(render_chart, series, title, generated_at=monitor.clock())
