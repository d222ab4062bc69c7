"""Platform-neutral summaries of account views: the JSON contract of `creditbot check` and exit codes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.models import AccountView, Status
from bot.money import Money

# Monitoring-plugin convention: 0 ok, 1 warning, 2 critical, 3 unknown.
EXIT_OK, EXIT_WARNING, EXIT_CRITICAL, EXIT_UNKNOWN = 0, 1, 2, 3
NUMBER_PLACES = Decimal("0.000001")


def number(value: Decimal | Money | None) -> float | None:
    """A money or rate value as a JSON number, rounded to six places; None stays None."""
    if value is None:
        return None
    amount = value.amount if isinstance(value, Money) else value
    return float(amount.quantize(NUMBER_PLACES))


def view_as_dict(view: AccountView) -> dict[str, Any]:
    """One account in the `creditbot check --json` shape."""
    return {
        "name": view.name,
        "provider": view.account.provider,
        "status": view.status.value,
        "currency": view.currency,
        "balance": number(view.balance),
        "balance_source": view.balance_source.value if view.balance_source else None,
        "balances": [{"currency": m.currency, "amount": number(m)} for m in view.balances],
        "spent_today": number(view.spent_today),
        "spent_month": number(view.spent_month),
        "spent_month_through": view.spent_month_through.isoformat() if view.spent_month_through else None,
        "monthly_budget": number(view.monthly_budget),
        "burn_rate_per_day": number(view.burn_rate),
        "days_left": None if view.days_left is None else float(view.days_left.quantize(Decimal("0.1"))),
        "run_out_date": view.run_out.isoformat() if view.run_out else None,
        "projected_month_spend": number(view.projected_month),
        "fetched_at": view.fetched_at.isoformat() if view.fetched_at else None,
        "stale": view.stale,
        "error": view.error,
        "notes": list(view.report.notes) if view.report else [],
    }


def check_document(views: Sequence[AccountView], now: datetime) -> dict[str, Any]:
    """The whole `creditbot check --json` document."""
    return {"generated_at": now.isoformat(), "accounts": [view_as_dict(v) for v in views]}


def exit_status(views: Sequence[AccountView]) -> int:
    """2 if any account is critical, else 1 if any warns, else 3 if any is in error, else 0."""
    statuses = {v.status for v in views}
    if Status.CRITICAL in statuses:
        return EXIT_CRITICAL
    if Status.WARNING in statuses:
        return EXIT_WARNING
    if Status.ERROR in statuses:
        return EXIT_UNKNOWN
    return EXIT_OK
