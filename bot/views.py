"""The read side: an account's view (status, balance or estimate, burn, runway) from what the store holds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal

from bot.forecast import (
    BURN_WINDOW_DAYS,
    burn_from_series,
    days_left,
    estimated_balance,
    projected_month_spend,
    run_out_date,
)
from bot.formatting import age_text
from bot.history import ReadingDay, burn_from_days
from bot.models import (
    Account,
    AccountView,
    BalanceSource,
    DailySpend,
    LedgerEntry,
    Status,
    Thresholds,
)
from bot.money import Money
from bot.providers.spend import month_to_date, reported_through, spent_on
from bot.store import AccountReadings, Store, ThresholdOverride

SERIES_DAYS = 31  # daily spend kept at hand for charts and burn, at the least
BUDGET_WARN_RATIO = Decimal("0.8")


def effective_thresholds(account: Account, override: ThresholdOverride | None = None) -> Thresholds:
    """Thresholds and budget in force for an account: values set from chat win over the TOML ones."""
    origin = {}
    values = {}
    for name in ("warn_below", "critical_below", "monthly_budget", "warn_below_percent", "critical_below_percent"):
        values[name] = getattr(account, name)
        if values[name] is not None:
            origin[name] = account.origin
    if override is not None:
        for name, value in (("warn_below", override.warn_below), ("critical_below", override.critical_below)):
            if value is not None:
                values[name] = value
                origin[name] = f"chat, by {override.updated_by}"
    return Thresholds(**values, origin=origin)


def account_status(
    balance: Money | None, spent_month: Money | None, projected: Money | None, thresholds: Thresholds
) -> Status:
    """critical, warning or ok from the counted values (errors are decided by the caller)."""
    budget = thresholds.monthly_budget
    amount = balance.amount if balance is not None else None
    spent = spent_month.amount if spent_month is not None else None
    if amount is not None and amount <= 0:
        return Status.CRITICAL  # requests are failing, or about to, whatever the thresholds say
    if amount is not None and thresholds.critical_below is not None and amount < thresholds.critical_below:
        return Status.CRITICAL
    if budget is not None and spent is not None and spent >= budget:
        return Status.CRITICAL
    if amount is not None and thresholds.warn_below is not None and amount < thresholds.warn_below:
        return Status.WARNING
    if budget is not None and spent is not None and spent >= budget * BUDGET_WARN_RATIO:
        return Status.WARNING
    if budget is not None and projected is not None and projected.amount > budget:
        return Status.WARNING
    return Status.OK


def needed_since(entries: Sequence[LedgerEntry], today: date) -> date:
    """The first day of spend an account's view needs: its month, a month back, and its whole ledger."""
    needed = min(today.replace(day=1), today - timedelta(days=SERIES_DAYS))
    if entries:
        needed = min(needed, entries[0].on_day)
    return needed


def build_view(
    account: Account,
    readings: AccountReadings,
    entries: Sequence[LedgerEntry],
    now: datetime,
    override: ThresholdOverride | None,
    stored_series: Sequence[DailySpend],
    history: Sequence[ReadingDay],
    stale_after: timedelta,
) -> AccountView:
    """One account's view from its readings, ledger, thresholds, spend series and days of balance history."""
    thresholds = effective_thresholds(account, override)
    latest, good = readings.latest, readings.latest_good
    current_error = latest.error if latest is not None and not latest.ok else None
    error_kind = latest.error_kind if latest is not None and not latest.ok else None
    counts = good is not None and now - good.fetched_at <= stale_after
    if good is None or not counts:
        if good is None:
            reason = current_error or "no reading yet"
        else:
            old = f"last good reading is {age_text(now - good.fetched_at)} old (CREDITBOT_STALE_AFTER)"
            reason = f"{current_error}; {old}" if current_error else old
        return AccountView(
            account,
            Status.ERROR,
            thresholds,
            fetched_at=good.fetched_at if good is not None else None,
            stale=good is not None,
            error=reason,
            error_kind=error_kind,
        )

    assert good is not None
    assert good.report is not None
    report = good.report
    as_of = good.fetched_at
    series = tuple(stored_series)
    currency = report.currency
    balance, source = report.balance, report.balance_source
    if balance is None and account.spend_only and entries:
        balance = estimated_balance(entries, series, as_of.date())
        source = BalanceSource.ESTIMATED if balance is not None else None
    spent_today = report.spent_today
    spent_month = report.spent_month
    # A provider that states its month figure counts it up to when it answered.
    through = report.spent_month_through or (as_of.date() if spent_month is not None else None)
    if series:
        # The stored series reaches back further than one fetch; a day it does not report is unknown.
        spent_today = spent_on(series, as_of.date())
        spent_month = month_to_date(series, as_of.date())
        through = reported_through(series, as_of.date())
    burn = burn_from_series(series, as_of.date()) if series else None
    if burn is None and balance is not None:
        burn = burn_from_days(history, as_of)
    remaining = days_left(balance, burn)
    if remaining is not None and report.resets_at is not None and remaining > 0:
        # Renewed credits: running out after the renewal is not running out.
        until_reset = Decimal(str((report.resets_at - as_of).total_seconds() / 86400))
        if remaining > until_reset:
            remaining = None
    budget = Money(thresholds.monthly_budget, currency) if thresholds.monthly_budget is not None else None
    projected = projected_month_spend(spent_month, burn, as_of, through)
    status = Status.CRITICAL if report.refused else account_status(balance, spent_month, projected, thresholds)
    return AccountView(
        account,
        status,
        thresholds,
        fetched_at=as_of,
        stale=latest is not good,
        error=current_error,
        error_kind=error_kind,
        currency=currency,
        balance=balance,
        balance_source=source,
        balances=report.balances or ((balance,) if balance is not None else ()),
        spent_today=spent_today,
        spent_month=spent_month,
        spent_month_through=through,
        monthly_budget=budget,
        burn_rate=burn,
        days_left=remaining,
        run_out=run_out_date(as_of, remaining),
        projected_month=projected,
        report=report,
        spend_series=series,
    )


async def read_views(
    store: Store,
    accounts: Sequence[Account],
    latest: Mapping[str, AccountReadings],
    ledger: Mapping[str, Sequence[LedgerEntry]],
    now: datetime,
    stale_after: timedelta,
) -> list[AccountView]:
    """The views of several accounts from their latest readings, in a fixed number of queries."""
    overrides = await store.settings.threshold_overrides()
    # Spend series and balance histories for every account in two queries rather than two per account.
    as_of = {
        a.name: good.fetched_at.date()
        for a in accounts
        if (good := latest[a.name].latest_good) is not None and now - good.fetched_at <= stale_after
    }
    series = await store.readings.daily_spends(
        {a.name: needed_since(ledger[a.name], as_of[a.name]) for a in accounts if a.name in as_of}
    )
    # Burn comes from the spend series when there is one; otherwise from how the balance moved.
    histories = await store.history.days(
        (name for name, day in as_of.items() if not series[name] or burn_from_series(series[name], day) is None),
        min(as_of.values(), default=now.date()) - timedelta(days=BURN_WINDOW_DAYS),
    )
    return [
        build_view(
            a,
            latest[a.name],
            ledger[a.name],
            now,
            overrides.get(a.name),
            series.get(a.name, []),
            histories.get(a.name, []),
            stale_after,
        )
        for a in accounts
    ]
