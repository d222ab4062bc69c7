"""One wording for money, runway, ages and times, shared by the CLI, logs and every message."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from bot.models import AccountView, BalanceSource
from bot.money import Money

UNKNOWN = "—"
ENDLESS = "∞"
BALANCE_SUFFIX = {BalanceSource.ESTIMATED: " (est.)", BalanceSource.KEY_LIMIT: " (key limit)"}


def money_text(value: Money | None) -> str:
    """`$12.34`, or a dash when unknown."""
    return UNKNOWN if value is None else value.format()


def signed_money_text(change: Money) -> str:
    """`+$1.50` or `-$2.00`."""
    return ("+" if change.amount > 0 else "") + change.format()


def balance_suffix(source: BalanceSource | None) -> str:
    """` (est.)` for an estimated balance, ` (key limit)` for a key's limit, nothing for a reported one."""
    return BALANCE_SUFFIX.get(source or BalanceSource.REPORTED, "")


def balance_text(balance: Money | None, source: BalanceSource | None) -> str:
    """`$38.50`, `$38.50 (est.)` for an estimate, `$3.00 (key limit)`, or a dash when unknown."""
    return UNKNOWN if balance is None else balance.format() + balance_suffix(source)


def days_text(days: Decimal | None, *, endless: bool = False) -> str:
    """Days left with one decimal; `∞` when the balance is not running out, a dash when unknown."""
    if days is not None:
        return f"{days:.1f}"
    return ENDLESS if endless else UNKNOWN


def runway_text(view: AccountView) -> str:
    """Days left of an account: `∞` when balance and burn are known and it does not run out."""
    balance, burn = view.balance, view.burn_rate
    endless = balance is not None and burn is not None and burn.currency == balance.currency
    return days_text(view.days_left, endless=endless)


def age_text(age: timedelta | None) -> str:
    """`12 min`, `5 h` or `3 days`; a dash when unknown."""
    if age is None:
        return UNKNOWN
    seconds = max(0, int(age.total_seconds()))
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def time_text(when: datetime) -> str:
    """`2026-11-25 09:00 UTC`."""
    return when.strftime("%Y-%m-%d %H:%M UTC")
