"""Readings as table rows and back (the daily series lives in its own table)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from bot.models import BalanceSource, ErrorKind, Grant, ProviderReport, Reading
from bot.money import Money


def _money(value: Money | None) -> str | None:
    return None if value is None else str(value.amount)


def _money_json(value: Money | None) -> dict[str, str] | None:
    return None if value is None else {"amount": str(value.amount), "currency": value.currency}


def _money_from(value: Any) -> Money | None:
    return None if value is None else Money(Decimal(value["amount"]), value["currency"])


def reading_to_row(reading: Reading) -> dict[str, Any]:
    """Columns for one reading; the daily series lives in its own table."""
    report = reading.report
    row: dict[str, Any] = {
        "account": reading.account,
        "provider": reading.provider,
        "fetched_at": reading.fetched_at,
        "ok": report is not None,
        "error": reading.error,
        "error_kind": reading.error_kind.value if reading.error_kind else None,
        # Every row has every column, so that a poll's readings can be inserted in one executemany.
        "currency": None,
        "balance": None,
        "balance_source": None,
        "spent_today": None,
        "spent_month": None,
        "report": None,
    }
    if report is not None:
        row.update(
            currency=report.currency,
            balance=_money(report.balance),
            balance_source=report.balance_source.value if report.balance_source else None,
            spent_today=_money(report.spent_today),
            spent_month=_money(report.spent_month),
            report={
                "balances": [_money_json(m) for m in report.balances],
                "granted_total": _money_json(report.granted_total),
                "grants": [
                    {
                        "granted": _money_json(g.granted),
                        "used": _money_json(g.used),
                        "expires_at": g.expires_at.isoformat() if g.expires_at else None,
                    }
                    for g in report.grants
                ],
                "notes": list(report.notes),
                "spent_month_through": (
                    report.spent_month_through.isoformat() if report.spent_month_through else None
                ),
                "resets_at": report.resets_at.isoformat() if report.resets_at else None,
                "refused": report.refused,
            },
        )
    return row


def row_to_reading(row: Any) -> Reading:
    """The Reading stored in one row (without its daily series)."""
    report = None
    if row["ok"]:
        currency = row["currency"]
        extra = row["report"] or {}

        def money(column: str) -> Money | None:
            return None if row[column] is None else Money(Decimal(row[column]), currency)

        report = ProviderReport(
            currency=currency,
            balance=money("balance"),
            balance_source=BalanceSource(row["balance_source"]) if row["balance_source"] else None,
            balances=tuple(m for m in (_money_from(v) for v in extra.get("balances", [])) if m is not None),
            spent_today=money("spent_today"),
            spent_month=money("spent_month"),
            granted_total=_money_from(extra.get("granted_total")),
            grants=tuple(
                Grant(
                    granted=_money_from(g["granted"]) or Money.zero(currency),
                    used=_money_from(g["used"]) or Money.zero(currency),
                    expires_at=datetime.fromisoformat(g["expires_at"]).astimezone(UTC)
                    if g["expires_at"]
                    else None,
                )
                for g in extra.get("grants", [])
            ),
            notes=tuple(extra.get("notes", [])),
            spent_month_through=(
                date.fromisoformat(extra["spent_month_through"]) if extra.get("spent_month_through") else None
            ),
            resets_at=datetime.fromisoformat(extra["resets_at"]).astimezone(UTC)
            if extra.get("resets_at")
            else None,
            refused=extra.get("refused"),
        )
    return Reading(
        account=row["account"],
        provider=row["provider"],
        fetched_at=row["fetched_at"],
        report=report,
        error=row["error"],
        error_kind=ErrorKind(row["error_kind"]) if row["error_kind"] else None,
    )
