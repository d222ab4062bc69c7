"""The coordinator: fetches accounts concurrently (bounded, isolated, within a deadline), stores readings,
and serves views without waiting long for slow providers (the views themselves are built in `bot.views`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from bot.breakdown import Dimension
from bot.breakdown_service import Breakdowns
from bot.clock import Clock, system_clock
from bot.config import AppConfig
from bot.models import (
    Account,
    AccountView,
    LedgerEntry,
    ProviderReport,
    Reading,
    report_amounts,
)
from bot.money import Money, storable
from bot.providers import PROVIDERS
from bot.providers.base import (
    BadResponseError,
    FetchRequest,
    HostLimiter,
    ProviderError,
    ProviderHttp,
    UnavailableError,
)
from bot.store import AccountReadings, Housekeeping, Store, database_problem, is_database_error
from bot.text import redact
from bot.views import needed_since, read_views

if TYPE_CHECKING:
    from bot.metrics import Metrics

log = logging.getLogger(__name__)

REFETCH_OVERLAP_DAYS = 3  # providers settle late costs for a few days, so recent days are fetched again


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
        self.breakdowns = Breakdowns(self)

    def accounts(self, names: Sequence[str] | None = None) -> list[Account]:
        """Configured accounts, optionally narrowed to names (in configuration order)."""
        if not names:
            return list(self.config.accounts)
        wanted = set(names)
        return [a for a in self.config.accounts if a.name in wanted]

    async def ledger(self, accounts: Sequence[Account]) -> dict[str, list[LedgerEntry]]:
        """Ledger entries per account: the TOML prepaid pair first, then recorded top-ups."""
        stored = await self.store.readings.ledger_entries(a.name for a in accounts)
        result: dict[str, list[LedgerEntry]] = {}
        for account in accounts:
            entries = []
            if account.prepaid_credit is not None and account.prepaid_since is not None:
                entries.append(LedgerEntry(account.name, account.prepaid_credit, account.prepaid_since, "config"))
            entries.extend(stored.get(account.name, []))
            result[account.name] = sorted(entries, key=lambda e: e.on_day)
        return result

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
        coverage = await self.store.readings.spend_coverage(a.name for a in accounts)
        # The currency an account was last shown in stays, so that a balance appearing in another currency
        # does not switch the account (and its thresholds) to it.
        shown = await self.store.readings.shown_currencies(a.name for a in accounts if a.currency is None)
        fetches = [
            asyncio.ensure_future(self.fetch(a, ledger[a.name], coverage.get(a.name), shown.get(a.name)))
            for a in accounts
        ]
        try:
            readings = list(await asyncio.gather(*fetches))
        except asyncio.CancelledError:
            # Stopping: the accounts that did answer keep their readings.
            for fetch in fetches:
                fetch.cancel()
            done = [f.result() for f in fetches if f.done() and not f.cancelled() and f.exception() is None]
            await asyncio.shield(self._store(done))
            raise
        await self._store(readings)
        return readings

    def fetch_request(
        self, account: Account, since: date, now: datetime, timeout: float, shown_currency: str | None = None
    ) -> FetchRequest:
        """A provider request for one account, due within `timeout` seconds from now."""
        http = ProviderHttp(
            self.http,
            self.limiter,
            provider=account.provider,
            deadline=asyncio.get_running_loop().time() + timeout,
            sleep=self._sleep,
            secrets=account.secret_values(),
        )
        return FetchRequest(
            http,
            account.base_url,
            account.api_key,
            account.currency,
            since,
            now,
            shown_currency,
            account.key_source(),
            team_id=account.team_id,
            json_source=account.json_source,
        )

    async def _store(self, readings: Sequence[Reading]) -> None:
        await self.store.readings.add_readings([(r, r.report.daily_spend if r.report else ()) for r in readings])

    async def fetch(
        self,
        account: Account,
        entries: Sequence[LedgerEntry] = (),
        coverage: tuple[date, date] | None = None,
        shown_currency: str | None = None,
    ) -> Reading:
        """Fetch one account within its deadline; errors become a failed Reading, never an exception."""
        provider = PROVIDERS[account.provider]()
        timeout = self.settings.fetch_timeout.total_seconds()
        async with self._slots:
            now = self.clock()
            since = self._fetch_since(needed_since(entries, now.date()), coverage)
            loop = asyncio.get_running_loop()
            request = self.fetch_request(account, since, now, timeout, shown_currency)
            started = loop.time()
            report: ProviderReport | None = None
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
                if not all(storable(m.amount) for m in report_amounts(report)):
                    # The store keeps amounts exactly, within fixed limits: one account's absurd figure is that
                    # account's failed fetch, never a failed transaction that loses every account's reading.
                    error = BadResponseError(
                        f"{account.provider} answered an amount out of range (at most 15 digits before the point "
                        "and 12 after)"
                    )
                    report = None
            if report is not None:
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
        latest = await self.store.readings.latest_readings(a.name for a in accounts)
        ledger = await self.ledger(accounts)
        now = self.clock()
        if stored_only:
            due = []
        elif refresh:
            due = [a.name for a in accounts]
        else:
            # Coverage matters only for top-ups of spend-only accounts (see _is_due): skip the query otherwise.
            topped_up = [a.name for a in accounts if a.spend_only and ledger[a.name]]
            coverage = await self.store.readings.spend_coverage(topped_up) if topped_up else {}
            due = [a.name for a in accounts if self._is_due(a, latest[a.name], ledger[a.name], coverage, now)]
        if due:
            known = all(latest[name].latest is not None for name in due)
            await self._refresh_within(due, wait if known else None)
            latest = await self.store.readings.latest_readings(a.name for a in accounts)
        return await read_views(self.store, accounts, latest, ledger, now, self.settings.stale_after)

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

    async def aclose(self, within: float | None = None) -> None:
        """Let fetches still running for earlier answers finish, so their readings are stored; after `within`
        seconds cancel them (what they already fetched is stored)."""
        running: set[asyncio.Task[Any]] = set(self._refreshing.values()) | self.breakdowns.running()
        if not running:
            return
        _done, pending = await asyncio.wait(running, timeout=within)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=2.0)

    def _refreshed(self, task: asyncio.Task[list[Reading]], names: Sequence[str]) -> None:
        for name in names:
            if self._refreshing.get(name) is task:
                del self._refreshing[name]
        error = None if task.cancelled() else task.exception()
        # A database failure is reported once, by whoever waits (a command's one line, a job's log line) or by
        # readiness; logging it here too would say it twice.
        if error is not None and not is_database_error(error):
            log.error("background refresh of %s failed: %s", ", ".join(names), error)

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

    async def record_topup(self, account: Account, amount: Money, on_day: date, source: str) -> LedgerEntry:
        """Add a top-up to the ledger of a spend-only account."""
        entry = LedgerEntry(account.name, amount, on_day, source, recorded_at=self.clock())
        entry_id = await self.store.readings.add_ledger_entry(entry)
        log.info("recorded top-up of %s for %s on %s (%s)", amount.format(), account.name, on_day, source)
        return LedgerEntry(entry.account, amount, on_day, source, entry.recorded_at, entry_id)

    async def upkeep(self) -> None:
        """The leader's work after a poll, in the background: breakdowns kept current, spend by model of the
        month into the metrics, then housekeeping (which runs whatever happened to the breakdowns)."""
        await self._extra("breakdown upkeep", self._breakdown_upkeep())
        await self.prune()

    async def _extra(self, name: str, work: Awaitable[None]) -> None:
        """Run work that is extra to the readings (breakdowns): its failure is logged, never passed on."""
        try:
            await work
        except Exception as exc:
            if not is_database_error(exc):
                log.exception("%s failed; it runs again after the next poll", name)
            else:  # one line per poll while the database is away, not a traceback
                problem = database_problem(self.settings.database_url, exc)
                log.error("%s failed; it runs again after the next poll: %s", name, problem)

    async def _breakdown_upkeep(self) -> None:
        accounts = self.accounts()
        if self.settings.breakdowns:
            await self.breakdowns.refresh(accounts, background=True)
        if self.metrics is not None:
            # Two reads for all accounts (the month's parts by model and the days' currencies), every poll:
            # the gauge follows the refresh and forgets removed accounts at once.
            today = self.clock().date()
            month_start = today.replace(day=1)
            parts = await self.breakdowns.parts(accounts, Dimension.MODEL, month_start, today)
            answered = await self.store.breakdowns.answered(parts, month_start, today)
            self.metrics.observe_models(
                parts, {name: days.currency for name, days in answered.items()}, month_start
            )

    async def prune(self, *, budget: float | None = None) -> Housekeeping:
        """Housekeeping in short transactions: delivered messages, readings and days older than the retention,
        spend no ledger still needs, breakdowns, old readings folded into days, readings past the raw window,
        free pages.

        With `budget` it stops after about that many seconds (a command's share); the leader runs it whole."""
        ledger = await self.ledger(self.accounts())
        keep = {name: entries[0].on_day for name, entries in ledger.items() if entries}
        retention = timedelta(days=self.settings.retention_days)
        now = self.clock()
        await self.store.outbox.prune(now - retention)
        await self.store.readings.prune_spend(now, retention, keep)
        report = await self.store.history.housekeeping(now, retention, budget=budget)
        await self._extra("breakdown pruning", self.store.breakdowns.prune((now - retention).date()))
        return report
