"""The terminal tables of `creditbot check` and `creditbot accounts` (rich, imported only by those commands)."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bot.breakdown import Dimension
from bot.config import AppConfig
from bot.formatting import UNKNOWN, age_text, balance_text, money_text, runway_text, time_text
from bot.models import AccountView
from bot.providers import OFFERED, PROVIDERS
from bot.store import ThresholdOverride
from bot.views import effective_thresholds

STATUS_STYLE = {"critical": "bold red", "warning": "yellow", "error": "magenta", "ok": "green"}
CHECK_COLUMNS = (
    "account",
    "provider",
    "balance",
    "today",
    "month to date",
    "budget",
    "burn/day",
    "days left",
    "status",
    "age",
)
ACCOUNT_COLUMNS = (
    "account",
    "provider",
    "from",
    "base url",
    "key",
    "warn below",
    "critical below",
    "monthly budget",
    "prepaid",
)


def terminal() -> Console:
    """A console for the command tables: as wide as the terminal, or wide enough when piped."""
    return Console(width=None if sys.stdout.isatty() else 250, highlight=False)


def _balance_cell(view: AccountView) -> str:
    others = [m.format() for m in view.balances if view.balance and m.currency != view.balance.currency]
    return balance_text(view.balance, view.balance_source) + (f" + {', '.join(others)}" if others else "")


def print_check(views: Sequence[AccountView], now: datetime) -> None:
    """Balances, spend and runway of each account, then each account's error and notes."""
    console = terminal()
    table = Table(title=f"LLM credits as of {time_text(now)}", title_justify="left")
    for column in CHECK_COLUMNS:
        left = column in ("account", "provider", "status")
        table.add_column(column, justify="left" if left else "right", no_wrap=True)
    for view in views:
        status = view.status.value + (" (stale)" if view.stale else "")
        table.add_row(
            view.name,
            view.account.provider,
            _balance_cell(view),
            money_text(view.spent_today),
            money_text(view.spent_month),
            money_text(view.monthly_budget),
            money_text(view.burn_rate),
            runway_text(view),
            f"[{STATUS_STYLE[view.status.value]}]{status}[/]",
            age_text(view.age(now)),
        )
    console.print(table)
    for view in views:
        if view.error:
            console.print(f"[magenta]{escape(view.name)}[/]: {escape(view.error)}", markup=True, highlight=False)
        for note in view.report.notes if view.report else ():
            console.print(f"{view.name}: {note}", markup=False)


def print_accounts(config: AppConfig, overrides: Mapping[str, ThresholdOverride]) -> None:
    """Each configured account, where it came from, its masked key and the thresholds in force."""
    table = Table(title=f"Accounts (from {config.source})", title_justify="left")
    for column in ACCOUNT_COLUMNS:
        table.add_column(column, no_wrap=True)
    for account in config.accounts:
        thresholds = effective_thresholds(account, overrides.get(account.name))

        def cell(name: str, value: Decimal | None, origin: dict[str, str] = thresholds.origin) -> str:
            return UNKNOWN if value is None else f"{value} ({origin.get(name, 'default')})"

        prepaid = (
            f"{account.prepaid_credit.format()} since {account.prepaid_since}"
            if account.prepaid_credit
            else UNKNOWN
        )
        provider = account.provider + (" (experimental)" if PROVIDERS[account.provider].experimental else "")
        table.add_row(
            account.name,
            provider,
            escape(account.origin),
            escape(account.base_url),
            account.masked_key(),
            cell("warn_below", thresholds.warn_below),
            cell("critical_below", thresholds.critical_below),
            cell("monthly_budget", thresholds.monthly_budget),
            prepaid,
        )
    terminal().print(table, markup=False)


def provider_rows() -> list[dict[str, Any]]:
    """Every provider a configuration may name: what it reports, its key, its zero-config variable, what it
    breaks spend down by."""
    return [
        {
            "name": name,
            "reports": provider.reports,
            "key": provider.key,
            "env": provider.env,
            "experimental": provider.experimental,
            # `creditbot breakdown --by` values this provider answers, in the order the option lists them.
            "breakdown": [d.value for d in Dimension if d in provider.breakdowns],
        }
        for name, provider in PROVIDERS.items()
        if name in OFFERED
    ]


def print_providers() -> None:
    """The providers as a table."""
    table = Table(title="Providers", title_justify="left")
    for column in ("provider", "reports", "key", "zero-config variable", "breakdown by"):
        table.add_column(column, overflow="fold")
    for row in provider_rows():
        name = row["name"] + (" (experimental)" if row["experimental"] else "")
        env = row["env"] or "—"
        if row["name"] == "relay":
            env += " with RELAY_BASE_URL"
        table.add_row(name, row["reports"], row["key"], env, ", ".join(row["breakdown"]) or "—")
    terminal().print(table, markup=False)
