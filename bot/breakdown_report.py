"""Platform-neutral forms of breakdown tables: the JSON contract of `creditbot breakdown --json` and the
words every table and chat message shows (cost, share, change, tokens, the "N more" line)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.breakdown import UNATTRIBUTED
from bot.breakdown_service import AccountBreakdown
from bot.breakdown_table import BreakdownRow, BreakdownTable
from bot.formatting import UNKNOWN, money_text, signed_money_text
from bot.money import Money
from bot.report import number

TOP_ROWS = 10  # rows a table shows before folding the rest into one "N more" line
TOKEN_UNITS = ((10**9, "B"), (10**6, "M"), (10**3, "k"))


def row_as_dict(row: BreakdownRow) -> dict[str, Any]:
    """One row in the `creditbot breakdown --json` shape."""
    return {
        "key": row.key,
        "label": row.label,
        "cost": number(row.cost),
        "previous_cost": number(row.previous_cost),
        "change": number(row.change),
        "share": number(row.share),
        "input_tokens": row.input_tokens,
        "cached_input_tokens": row.cached_input_tokens,
        "output_tokens": row.output_tokens,
        "requests": row.requests,
    }


def _rows(table: BreakdownTable | None) -> list[dict[str, Any]]:
    return [row_as_dict(row) for row in table.rows] if table is not None else []


def account_as_dict(item: AccountBreakdown) -> dict[str, Any]:
    """One account in the `creditbot breakdown --json` shape; `today` is today's partial table, or null."""
    today = item.today
    return {
        "name": item.name,
        "currency": currency_of(item),
        "by": item.by.value,
        "days": item.days,
        "total": number(item.table.total) if item.table is not None else None,
        "rows": _rows(item.table),
        "note": item.note,
        "today": None if today is None else {"total": number(today.total), "partial": True, "rows": _rows(today)},
    }


def breakdown_document(items: Sequence[AccountBreakdown], now: datetime) -> dict[str, Any]:
    """The whole `creditbot breakdown --json` document."""
    return {"generated_at": now.isoformat(), "accounts": [account_as_dict(item) for item in items]}


def currency_of(item: AccountBreakdown) -> str | None:
    """The currency the account's breakdown is in: as reported, else as configured (None for a provider
    without breakdown)."""
    if item.table is None:
        return item.currency
    return item.currency or item.account.currency or "USD"


def folded(rows: Sequence[BreakdownRow], top: int = TOP_ROWS) -> tuple[list[BreakdownRow], BreakdownRow | None]:
    """The rows to show and the rest folded into one "N more" row (None when nothing is left over).

    "unattributed" is always shown, so the rows shown and the fold still add up to the total.
    """
    ranked = [r for r in rows if r.key != UNATTRIBUTED]
    kept = [r for r in rows if r.key == UNATTRIBUTED]
    if len(ranked) <= top:
        return ranked + kept, None
    shown, rest = ranked[: top - 1], ranked[top - 1 :]
    costs = [r.cost for r in rest if r.cost is not None]
    previous = [r.previous_cost for r in rest if r.previous_cost is not None]
    shares = [r.share for r in rest if r.share is not None]
    fold = BreakdownRow(
        key="",
        label=f"{len(rest)} more",
        cost=sum(costs, Decimal(0)) if costs else None,
        previous_cost=sum(previous, Decimal(0)) if previous and len(previous) == len(costs) else None,
        share=sum(shares, Decimal(0)) if shares else None,
    )
    return shown + kept, fold


def cost_text(value: Decimal | None, currency: str) -> str:
    """`$12.30`, or a dash when the source gives no money for the entry."""
    return money_text(None if value is None else Money(value, currency))


def change_text(row: BreakdownRow, currency: str) -> str:
    """`+$3.10` or `-$1.00` against the previous period; "new" for an entry that cost nothing before."""
    change = row.change
    if change is None:
        return UNKNOWN
    if row.previous_cost == 0 and change > 0 and row.key != UNATTRIBUTED:
        return "new"
    return signed_money_text(Money(change, currency))


def share_text(share: Decimal | None) -> str:
    """`45.2%`, or a dash."""
    return UNKNOWN if share is None else f"{share * 100:.1f}%"


def count_text(value: int | None) -> str:
    """`1.2M`, `340k` or `12`; a dash when not counted."""
    if value is None:
        return UNKNOWN
    for scale, unit in TOKEN_UNITS:
        if abs(value) >= scale:
            return f"{value / scale:.1f}".removesuffix(".0") + unit
    return str(value)


def tokens_text(row: BreakdownRow) -> str:
    """`1.2M in (300k cached) / 40k out`, or a dash when the source counts no tokens for the entry."""
    if row.input_tokens is None and row.output_tokens is None:
        return UNKNOWN
    cached = f" ({count_text(row.cached_input_tokens)} cached)" if row.cached_input_tokens else ""
    return f"{count_text(row.input_tokens)} in{cached} / {count_text(row.output_tokens)} out"


def period_text(table: BreakdownTable) -> str:
    """`2026-03-01 to 2026-03-07`, or the one day."""
    if table.first == table.last:
        return table.first.isoformat()
    return f"{table.first.isoformat()} to {table.last.isoformat()}"
