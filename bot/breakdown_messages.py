"""Breakdowns as platform-neutral chat messages: `credits breakdown` (one section per account, its top entries
as fields) and the text beside the spend-by-model chart. Adapters cut them to their platform's limits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from bot.breakdown_report import (
    change_text,
    cost_text,
    currency_of,
    folded,
    period_text,
    share_text,
    tokens_text,
)
from bot.breakdown_service import AccountBreakdown
from bot.breakdown_table import BreakdownRow
from bot.chart_stacked import CHART_DAYS, NO_BREAKDOWN_YET, StackedSeries, not_reported
from bot.formatting import UNKNOWN, time_text
from bot.messages import Field, Message, Section
from bot.models import Severity
from bot.money import Money

# Slack shows at most 10 fields in a section: 7 entries, the "N more" line, unattributed and today.
CHAT_ROWS = 8


def _row_value(row: BreakdownRow, currency: str) -> str:
    parts = [cost_text(row.cost, currency), share_text(row.share)]
    change = change_text(row, currency)
    if change != UNKNOWN:
        parts.append(f"{change} vs the days before" if change != "new" else "new")
    tokens = tokens_text(row)
    if tokens != UNKNOWN:
        parts.append(f"{tokens} tokens")
    return " · ".join(parts)


def breakdown_section(item: AccountBreakdown) -> Section:
    """One account: the window's total as headline, its top entries as fields, today's partial total last."""
    provider = item.account.provider
    if item.table is None:
        return Section(item.name, provider, "ok", item.note or "no breakdown", ())
    currency = currency_of(item) or "USD"
    table = item.table
    by = item.by.value.replace("_", " ")
    total = cost_text(table.total, currency)
    headline = f"{total} in the last {item.days} days ({period_text(table)}), by {by}"
    rows, fold = folded(table.rows, CHAT_ROWS)
    fields = [Field(row.label, _row_value(row, currency)) for row in rows]
    if fold is not None:
        fields.append(Field(fold.label, _row_value(fold, currency)))
    if not table.rows:
        fields.append(Field("entries", "none reported"))
    if item.today is not None:
        top = next((r for r in item.today.rows if r.cost), None)
        today = cost_text(item.today.total, currency) + " so far (partial)"
        if top is not None:
            today += f", most on {top.label}"
        fields.append(Field("today", today))
    return Section(item.name, provider, "ok", headline, tuple(fields), item.note)


def breakdown_message(items: Sequence[AccountBreakdown], now: datetime) -> Message:
    """The reply to `credits breakdown`: one section per account (an account without breakdown says so)."""
    if not items:
        return Message("Where the money went", "No account is visible here.", text="No account is visible here.")
    shown = [i for i in items if i.table is not None and i.table.total is not None]
    summary = "; ".join(
        f"{i.name}: {cost_text(i.table.total if i.table else None, currency_of(i) or 'USD')}" for i in shown
    )
    days = items[0].days
    return Message(
        title=f"Where the money went: last {days} days",
        summary=summary or "no breakdown to show",
        severity=Severity.INFO,
        sections=tuple(breakdown_section(i) for i in items),
        footer=f"as of {time_text(now)}; today is shown apart, as the providers are still counting it",
    )


def _model_line(series: StackedSeries) -> str:
    if series.total is None:
        return f"{series.account}: {NO_BREAKDOWN_YET}"
    line = f"{series.account}: {Money(series.total, series.currency).format()} by model"
    return f"{line} ({not_reported(series)})" if series.missing else line


def models_chart_message(
    series: Sequence[StackedSeries], notes: Mapping[str, str], chart: bytes | None, now: datetime
) -> Message:
    """The reply to `credits chart models`: the chart, each account's 30-day total, and why others have none."""
    lines = [_model_line(s) for s in series]
    lines += [f"{name}: {note}" for name, note in notes.items()]
    days = series[0].days if series else ()
    period = f" ({days[0].isoformat()} to {days[-1].isoformat()})" if days else ""
    return Message(
        title=f"Spend by model: last {CHART_DAYS} days{period}",
        summary="; ".join(lines) or "no account is visible here",
        text="\n".join(lines) or "No account is visible here.",
        footer=f"as of {time_text(now)}; the top 5 models per account, the rest as other",
        chart=chart,
        chart_name="spend-by-model.png",
    )
