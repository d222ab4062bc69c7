"""Pure money math: estimated balance from the ledger, burn rate, runway and month-end projection."""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from bot.models import DailySpend, LedgerEntry
from bot.money import CurrencyMismatchError, Money

BURN_WINDOW_DAYS = 7
MIN_BALANCE_HISTORY = timedelta(hours=6)  # shorter spans say more about noise than about burn
MAX_DAYS_LEFT = Decimal(36500)  # beyond a century the balance is simply not running out
SECONDS_PER_DAY = Decimal(86400)


def estimated_balance(entries: Sequence[LedgerEntry], spend: Sequence[DailySpend], today: date) -> Money | None:
    """All top-ups minus the spend since the first one, through the last day the series reports (today, or an
    earlier day while the provider lags); None when the series does not reach back or has a gap."""
    if not entries:
        return None
    currency = entries[0].amount.currency
    first_day = min(entry.on_day for entry in entries)
    covered = {entry.day for entry in spend}
    last = max((day for day in covered if first_day <= day <= today), default=None)
    if last is None:
        # Nothing reported since the first top-up: that is "nothing spent" only while the provider has not
        # reported the days since it yet (bought today or yesterday).
        if first_day < today - timedelta(days=1):
            return None
        last = first_day - timedelta(days=1)
    # Every day from the first top-up to the last reported one must be known; a gap would overstate it.
    needed = (last - first_day).days + 1
    if needed > 0 and not all(first_day + timedelta(days=i) in covered for i in range(needed)):
        return None
    try:
        bought = sum((entry.amount for entry in entries), Money.zero(currency))
        spent = sum((entry.amount for entry in spend if first_day <= entry.day <= today), Money.zero(currency))
    except CurrencyMismatchError:
        return None
    return bought - spent


def burn_from_series(spend: Sequence[DailySpend], today: date) -> Money | None:
    """Mean daily spend over the last complete days (up to a week); today's partial day is left out."""
    complete = [entry for entry in spend if today - timedelta(days=BURN_WINDOW_DAYS) <= entry.day < today]
    if not complete:
        return None
    currency = complete[0].amount.currency
    total = sum((entry.amount for entry in complete), Money.zero(currency))
    return Money(total.amount / len(complete), currency)


def days_left(balance: Money | None, burn: Money | None) -> Decimal | None:
    """Days until the balance runs out at the current burn (0 when it has run out); None when it is not
    running out or unknown."""
    if balance is not None and balance.amount <= 0:
        return Decimal(0)
    if balance is None or burn is None or burn.currency != balance.currency or burn.amount <= 0:
        return None
    remaining = balance.amount / burn.amount
    return remaining if remaining <= MAX_DAYS_LEFT else None


def run_out_date(now: datetime, remaining_days: Decimal | None) -> date | None:
    """The UTC day on which the balance is projected to run out."""
    if remaining_days is None or remaining_days > MAX_DAYS_LEFT:
        return None
    return (now + timedelta(days=float(remaining_days))).astimezone(UTC).date()


def month_end(now: datetime) -> datetime:
    """Start of the next calendar month (UTC): the end of the current budget month."""
    now = now.astimezone(UTC)
    days_in_month = calendar.monthrange(now.year, now.month)[1]
    return datetime(now.year, now.month, 1, tzinfo=UTC) + timedelta(days=days_in_month)


def projected_month_spend(
    spent_month: Money | None, burn: Money | None, now: datetime, through: date | None = None
) -> Money | None:
    """Month-to-date spend plus the burn rate over what is left of the month after the last day counted
    (`through`; today when not given)."""
    if spent_month is None or burn is None or burn.currency != spent_month.currency:
        return None
    start = now
    if through is not None and through < now.astimezone(UTC).date():
        start = datetime.combine(through + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    remaining = Decimal((month_end(now) - start).total_seconds()) / SECONDS_PER_DAY
    return Money(spent_month.amount + burn.amount * remaining, spent_month.currency)
