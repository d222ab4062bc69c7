"""The terminal tables of `creditbot breakdown` (rich, imported only by that command)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from bot.breakdown_report import (
    change_text,
    cost_text,
    count_text,
    currency_of,
    folded,
    period_text,
    share_text,
    tokens_text,
)
from bot.breakdown_service import AccountBreakdown
from bot.breakdown_table import BreakdownRow, BreakdownTable
from bot.formatting import UNKNOWN
from bot.tables import terminal

COLUMNS = ("", "cost", "share", "change", "tokens", "requests")


def _table(title: str, table: BreakdownTable, currency: str, *, change: bool) -> Table:
    shown = Table(title=escape(title), title_justify="left")
    for column in COLUMNS if change else tuple(c for c in COLUMNS if c != "change"):
        shown.add_column(column, justify="left" if column == "" else "right", overflow="fold")
    rows, fold = folded(table.rows)

    def add(row: BreakdownRow, *, style: str | None = None) -> None:
        cells: list[str | Text] = [Text(row.label), cost_text(row.cost, currency), share_text(row.share)]
        if change:
            cells.append(change_text(row, currency))
        cells += [tokens_text(row), count_text(row.requests)]
        shown.add_row(*cells, style=style)

    for row in rows:
        add(row)
    if fold is not None:
        add(fold, style="dim")
    total = [cost_text(table.total, currency), "100.0%" if table.total else UNKNOWN]
    shown.add_row("total", *total, *([""] * (len(shown.columns) - 3)), style="bold", end_section=True)
    return shown


def print_breakdowns(items: Sequence[AccountBreakdown], console: Console | None = None) -> None:
    """Each account's breakdown over its window, with today apart (partial), or why there is none."""
    console = console or terminal()
    for item in items:
        console.print()
        if item.table is None:
            console.print(f"{item.name} ({item.account.provider}): {item.note or 'no breakdown'}", markup=False)
            continue
        currency = currency_of(item) or "USD"
        window = f"last {item.days} days, {period_text(item.table)}"
        title = f"{item.name} ({item.account.provider}) by {item.by.value.replace('_', ' ')}: {window}"
        console.print(_table(title, item.table, currency, change=True), markup=False)
        if item.today is not None:
            today = f"{item.name} today, {period_text(item.today)} (partial: the provider is still counting it)"
            console.print(_table(today, item.today, currency, change=False), markup=False)
        if item.note:
            console.print(f"{item.name}: {item.note}", markup=False)
