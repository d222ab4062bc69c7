"""The coordinator: fetches accounts concurrently, stores readings and derives each account's view."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import httpx

from bot.clock import Clock, system_clock
from bot.config import AppConfig
from bot.forecast import (
    burn_from_balances,
    burn_from_series,
    days_left,
    estimated_balance,
    projected_month_spend,
    run_out_date,
)
from bot.formatting import age_text
from bot.models import (
    Account,
    AccountView,
    BalanceSource,
    DailySpend,
    LedgerEntry,
    Reading,
    Status,
    Thresholds,
)
from bot.money import Money
from bot.providers import PROVIDERS
from bot.providers.base import (
    BadResponseError,
    FetchRequest,
    HostLimiter,
    ProviderError,
    ProviderHttp,
    UnavailableError,
)
from bot.providers.spend import month_to_date, spent_on
from bot.store import AccountReadings, Store, ThresholdOverride
from bot.text import redact

if TYPE_CHECKING:
    from bot.metrics import Metrics

log = logging.getLogger(__name__)

SERIES_DAYS = 31  # daily spend kept at hand for charts and burn, at the least
REFETCH_OVERLAP_DAYS = 3  # providers settle late costs for a few days, so recent days are fetched again
MAX_LOOKBACK_DAYS = 3 * 366
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


class Monitor:
    """Fetches accounts (bounded concurrency, per-host limits, per-account deadline) and builds views."""

    def __init__(
        self,
        config: AppConfig,
        store: Store,
        http: httpx.AsyncClient,
        *,
        clock: Clock = system_clock,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.settings = config.settings
        self.store = store
        self.http = http
        self.clock = clock
        self._sleep = sleep
        self.limiter = HostLimiter(self.settings.per_host_concurrency)
        self._slots = asyncio.Semaphore(self.settings.concurrency)
        self.metrics: Metrics | None = None  # set by the runtime
        self._secrets = config.secrets()
        self._refreshing: dict[str, asyncio.Task[list[Reading]]] = {}  # refreshes under way, by account

    def accounts(self, names: Sequence[str] | None = None) -> list[Account]:
        """Configured accounts, optionally narrowed to names (in configuration order)."""
        if not names:
            return list(self.config.accounts)
        wanted = set(names)
        return [a for a in self.config.accounts if a.name in wanted]

    async def ledger(self, accounts: Sequence[Account]) -> dict[str, list[LedgerEntry]]:
        """Ledger entries per account: the TOML prepaid pair first, then recorded top-ups."""
        stored = await self.store.ledger_entries(a.name for a in accounts)
        result: dict[str, list[LedgerEntry]] = {}
        for account in accounts:
            entries = []
            if account.prepaid_credit is not None and account.prepaid_since is not None:
                entries.append(LedgerEntry(account.name, account.prepaid_credit, account.prepaid_since, "config"))
            entries.extend(stored.get(account.name, []))
            result[account.name] = sorted(entries, key=lambda e: e.on_day)
        return result

    def _needed_since(self, account: Account, entries: Sequence[LedgerEntry], today: date) -> date:
        needed = min(today.replace(day=1), today - timedelta(days=SERIES_DAYS))
        if entries:
            needed = min(needed, entries[0].on_day)
        return max(needed, today - timedelta(days=MAX_LOOKBACK_DAYS))

    def _fetch_since(self, needed: date, coverage: tuple[date, date] | None) -> date:
        if coverage is not None and coverage[0] <= needed:
            return max(needed, coverage[1] - timedelta(days=REFETCH_OVERLAP_DAYS))
        return needed

    async def refresh(self, names: Sequence[str] | None = None) -> list[Reading]:
        """Fetch the named accounts (all by default) concurrently; one failure never affects the others.

        The readings are stored together at the end, in one transaction.
        """
        accounts = self.accounts(names)
        ledger = await self.ledger(accounts)
        coverage = await self.store.spend_coverage(a.name for a in accounts)
        readings = list(
            await asyncio.gather(*(self.fetch(a, ledger[a.name], coverage.get(a.name)) for a in accounts))
        )
        await self.store.add_readings([(r, r.report.daily_spend if r.report else ()) for r in readings])
        return readings

    async def fetch(
        self, account: Account, entries: Sequence[LedgerEntry] = (), coverage: tuple[date, date] | None = None
    ) -> Reading:
        """Fetch one account within its deadline; errors become a failed Reading, never an exception."""
        provider = PROVIDERS[account.provider]()
        timeout = self.settings.fetch_timeout.total_seconds()
        async with self._slots:
            now = self.clock()
            since = self._fetch_since(self._needed_since(account, entries, now.date()), coverage)
            loop = asyncio.get_running_loop()
            http = ProviderHttp(
                self.http,
                self.limiter,
                provider=account.provider,
                deadline=loop.time() + timeout,
                sleep=self._sleep,
                secrets=(account.api_key.get_secret_value(),),
            )
            request = FetchRequest(http, account.base_url, account.api_key, account.currency, since, now)
            started = loop.time()
            try:
                async with asyncio.timeout(timeout):
                    report = await provider.fetch(request)
            except TimeoutError:
                error: ProviderError = UnavailableError(
                    f"{account.provider} did not answer within {timeout:g} s (CREDITBOT_FETCH_TIMEOUT)"
                )
            except ProviderError as exc:
                error = exc
            except Exception as exc:  # a parser bug must not take down the other accounts
                log.exception("unexpected error while fetching %s", account.name)
                error = BadResponseError(
                    f"unexpected error while reading {account.provider}: {type(exc).__name__}"
                )
            else:
                log.debug("fetched %s in %.2fs", account.name, loop.time() - started)
                if self.metrics is not None:
                    self.metrics.fetch_seconds.labels(account.provider).observe(loop.time() - started)
                return Reading(account.name, account.provider, now, report=report)
            if self.metrics is not None:
                self.metrics.fetch_seconds.labels(account.provider).observe(loop.time() - started)
                self.metrics.fetch_failures.labels(account.provider, error.kind.value).inc()
        message = redact(error.message, self._secrets)
        log.warning("fetch failed for %s: %s", account.name, message)
        return Reading(account.name, account.provider, now, error=message, error_kind=error.kind)

    async def views(
        self,
        names: Sequence[str] | None = None,
        *,
        refresh: bool = False,
        stored_only: bool = False,
        wait: float | None = None,
    ) -> list[AccountView]:
        """Current view of each account, fetching those whose cached reading is too old (or all with refresh);
        `stored_only` never fetches (the poller has just done so).

        With `wait` (chat answers), a slow fetch delays the answer by at most that many seconds when something
        is stored for every account: the answer then shows the stored readings and the fetch finishes in the
        background. With nothing stored there is nothing to show, so it waits for the fetch.
        """
        accounts = self.accounts(names)
        latest = await self.store.latest_readings(a.name for a in accounts)
        ledger = await self.ledger(accounts)
        overrides = await self.store.threshold_overrides()
        now = self.clock()
        if stored_only:
            due = []
        elif refresh:
            due = [a.name for a in accounts]
        else:
            # Coverage matters only for top-ups of spend-only accounts (see _is_due): skip the query otherwise.
            topped_up = [a.name for a in accounts if a.spend_only and ledger[a.name]]
            coverage = await self.store.spend_coverage(topped_up) if topped_up else {}
            due = [a.name for a in accounts if self._is_due(a, latest[a.name], ledger[a.name], coverage, now)]
        if due:
            known = all(latest[name].latest is not None for name in due)
            await self._refresh_within(due, wait if known else None)
            latest = await self.store.latest_readings(a.name for a in accounts)
        # Spend series and balance histories for every account in two queries rather than two per account.
        as_of = {
            a.name: good.fetched_at.date()
            for a in accounts
            if (good := latest[a.name].latest_good) is not None
            and now - good.fetched_at <= self.settings.stale_after
        }
        series = await self.store.daily_spends(
            {a.name: self._needed_since(a, ledger[a.name], as_of[a.name]) for a in accounts if a.name in as_of}
        )
        # Burn comes from the spend series when there is one; otherwise from how the balance moved.
        histories = await self.store.balance_histories(
            (
                name
                for name, day in as_of.items()
                if not series[name] or burn_from_series(series[name], day) is None
            ),
            now - timedelta(days=8),
        )
        return [
            self._view(
                a,
                latest[a.name],
                ledger[a.name],
                now,
                overrides.get(a.name),
                series.get(a.name, []),
                histories.get(a.name, []),
            )
            for a in accounts
        ]

    async def _refresh_within(self, names: Sequence[str], budget: float | None) -> None:
        """Refresh accounts, joining a refresh of them already under way; stop waiting (not fetching) after
        `budget` seconds."""
        joined = {self._refreshing[name] for name in names if name in self._refreshing}
        new = [name for name in names if name not in self._refreshing]
        if new:
            task = asyncio.create_task(self.refresh(new))
            self._refreshing.update(dict.fromkeys(new, task))
            task.add_done_callback(lambda done: self._refreshed(done, new))
            joined.add(task)
        done, _pending = await asyncio.wait(joined, timeout=budget)
        for task in done:
            task.result()  # a failure to store is the caller's to see, as without a budget

    async def aclose(self) -> None:
        """Let fetches still running for earlier answers finish, so their readings are stored."""
        if self._refreshing:
            await asyncio.wait(set(self._refreshing.values()))

    def _refreshed(self, task: asyncio.Task[list[Reading]], names: Sequence[str]) -> None:
        for name in names:
            if self._refreshing.get(name) is task:
                del self._refreshing[name]
        if not task.cancelled() and task.exception() is not None:
            log.error("background refresh of %s failed: %s", ", ".join(names), task.exception())

    def _is_due(
        self,
        account: Account,
        readings: AccountReadings,
        entries: Sequence[LedgerEntry],
        coverage: dict[str, tuple[date, date]],
        now: datetime,
    ) -> bool:
        if readings.latest is None:
            return True
        if (now - readings.latest.fetched_at).total_seconds() >= self.settings.cache_seconds:
            return True
        # A top-up dated before the stored spend series needs older spend than we have.
        span = coverage.get(account.name)
        return bool(entries and account.spend_only and (span is None or span[0] > entries[0].on_day))

    def _view(
        self,
        account: Account,
        readings: AccountReadings,
        entries: Sequence[LedgerEntry],
        now: datetime,
        override: ThresholdOverride | None,
        stored_series: Sequence[DailySpend],
        history: Sequence[tuple[datetime, Money]],
    ) -> AccountView:
        thresholds = effective_thresholds(account, override)
        latest, good = readings.latest, readings.latest_good
        current_error = latest.error if latest is not None and not latest.ok else None
        error_kind = latest.error_kind if latest is not None and not latest.ok else None
        counts = good is not None and now - good.fetched_at <= self.settings.stale_after
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
        if series:
            spent_today = spent_on(series, as_of.date()) or spent_today
            spent_month = month_to_date(series, as_of.date()) or spent_month
        burn = burn_from_series(series, as_of.date()) if series else None
        if burn is None and balance is not None:
            burn = burn_from_balances(history, as_of)
        remaining = days_left(balance, burn)
        budget = Money(thresholds.monthly_budget, currency) if thresholds.monthly_budget is not None else None
        projected = projected_month_spend(spent_month, burn, as_of)
        status = account_status(balance, spent_month, projected, thresholds)
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
            monthly_budget=budget,
            burn_rate=burn,
            days_left=remaining,
            run_out=run_out_date(as_of, remaining),
            projected_month=projected,
            report=report,
            spend_series=series,
        )

    async def record_topup(self, account: Account, amount: Money, on_day: date, source: str) -> LedgerEntry:
        """Add a top-up to the ledger of a spend-only account."""
        entry = LedgerEntry(account.name, amount, on_day, source, recorded_at=self.clock())
        entry_id = await self.store.add_ledger_entry(entry)
        log.info("recorded top-up of %s for %s on %s (%s)", amount.format(), account.name, on_day, source)
        return LedgerEntry(entry.account, amount, on_day, source, entry.recorded_at, entry_id)

    async def prune(self) -> int:
        """Drop readings older than the retention period, keeping spend the ledgers still need."""
        ledger = await self.ledger(self.accounts())
        keep = {name: entries[0].on_day for name, entries in ledger.items() if entries}
        return await self.store.prune(self.clock(), timedelta(days=self.settings.retention_days), keep)
