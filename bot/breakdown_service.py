"""Breakdowns kept current and read back: fetches only the days not yet final (at most hourly per account),
stores them, and builds each account's table, drivers and chart series from the store."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING

from bot.breakdown import BreakdownPart, Dimension
from bot.breakdown_table import MEDIAN_DAYS, BreakdownTable, Driver, build_table, drivers, window
from bot.models import Account
from bot.money import storable
from bot.providers import PROVIDERS
from bot.providers.base import AuthError, BadResponseError, ProviderError, UnavailableError
from bot.store import Answered
from bot.text import redact

if TYPE_CHECKING:
    from bot.monitor import Monitor

log = logging.getLogger(__name__)

MAX_AGE = timedelta(hours=1)  # a day not yet final is asked for again at most this often
SETTLE_DAYS = 3  # providers settle late costs for a few days (as for the daily spend): then a day is final
BACKGROUND_DAYS = 30  # what the poller keeps current: the chart's 30 days, the summary's 8
NO_BREAKDOWN = "no breakdown from this provider"
CHUNK_DAYS = 31  # a month of days per fetch: one page of a usage report at daily width
AUTH_BACKOFF = timedelta(days=1)  # a refused key is asked again after a poll once a day, not every hour


@dataclass(frozen=True, slots=True)
class AccountBreakdown:
    """One account's breakdown over a window, with today apart, or the reason there is none."""

    account: Account
    currency: str | None
    by: Dimension
    days: int
    table: BreakdownTable | None  # None: see `note`
    today: BreakdownTable | None = None  # today so far, when the provider has reported any of it
    note: str | None = None  # why there is no table, or why it may be out of date

    @property
    def name(self) -> str:
        """The account's name."""
        return self.account.name


def gives(account: Account, dimension: Dimension | None = None) -> bool:
    """True when the account's provider breaks spend down (by `dimension`, if given)."""
    offered = PROVIDERS[account.provider].breakdowns
    return bool(offered) and (dimension is None or dimension in offered)


def missing_note(account: Account, dimension: Dimension) -> str:
    """Why an account has no breakdown by `dimension`."""
    if not gives(account):
        return NO_BREAKDOWN
    return f"no breakdown by {dimension.value.replace('_', ' ')} from {account.provider}"


class Breakdowns:
    """Fetches, stores and reads breakdowns through the monitor's HTTP client, limits and store."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.store = monitor.store.breakdowns
        self._running: dict[str, asyncio.Task[str | None]] = {}
        # When each account's last fetch failed (in this process), and whether its key was refused.
        self._failed_at: dict[str, tuple[datetime, bool]] = {}

    async def refresh(
        self,
        accounts: Sequence[Account],
        *,
        days: int = BACKGROUND_DAYS,
        max_age: timedelta = MAX_AGE,
        background: bool = False,
    ) -> dict[str, str]:
        """Fetch what is missing or older than `max_age` of the last `days` days and today, for every account
        whose provider breaks spend down; returns the accounts whose fetch failed, with the reason.

        In the `background` (after a poll) an account whose fetch failed is left alone for `max_age` too: a
        failing source gets its requests at most hourly, as a working one does."""
        now = self.monitor.clock()
        wanted = [a for a in accounts if gives(a) and not (background and self._resting(a.name, now, max_age))]
        if not wanted:
            return {}
        today = now.date()
        first = self._first_day(today, days)
        settled = await self.store.settled((a.name for a in wanted), first, today, now, max_age)
        tasks = []
        for account in wanted:
            runs = _due_runs(account, settled[account.name], first, today)
            if runs and account.name not in self._running:
                task = asyncio.create_task(self._fetch(account, runs, now))
                self._running[account.name] = task
                task.add_done_callback(partial(self._finished, account.name))
            if account.name in self._running:
                tasks.append((account.name, self._running[account.name]))
        errors = {}
        for name, task in tasks:
            error = await asyncio.shield(task)
            if error is not None:
                errors[name] = error
        return errors

    def _resting(self, name: str, now: datetime, max_age: timedelta) -> bool:
        """True while an account whose last fetch failed is left alone after polls."""
        failed = self._failed_at.get(name)
        if failed is None:
            return False
        return now - failed[0] < (AUTH_BACKOFF if failed[1] else max_age)

    def running(self) -> set[asyncio.Task[str | None]]:
        """Breakdown fetches under way (the monitor lets them finish, or cancels them, when it closes)."""
        return set(self._running.values())

    def _finished(self, name: str, _task: asyncio.Task[str | None]) -> None:
        self._running.pop(name, None)

    def _first_day(self, today: date, days: int) -> date:
        retention = self.monitor.settings.retention_days
        return today - timedelta(days=max(1, min(days, retention)))

    async def _fetch(self, account: Account, runs: list[tuple[date, date]], now: datetime) -> str | None:
        """Fetch each run of due days and store it; the error in words when one fails."""
        provider = PROVIDERS[account.provider]()
        timeout = self.monitor.settings.fetch_timeout.total_seconds()
        settled_before = now.date() - timedelta(days=SETTLE_DAYS)
        try:
            for since, until in runs:
                request = self.monitor.fetch_request(account, since, now, timeout)
                try:
                    async with asyncio.timeout(timeout):
                        report = await provider.fetch_breakdown(request, until)
                except TimeoutError:
                    raise UnavailableError(
                        f"{account.provider} did not answer within {timeout:g} s (CREDITBOT_FETCH_TIMEOUT)"
                    ) from None
                amounts = [p.cost for p in report.parts if p.cost is not None] + list(report.totals.values())
                if not all(storable(value) for value in amounts):
                    raise BadResponseError(f"{account.provider} answered a cost out of range")
                asked = [since + timedelta(days=n) for n in range((until - since).days + 1)]
                await self.store.save(account.name, asked, report, settled_before=settled_before, now=now)
        except ProviderError as exc:
            self._failed_at[account.name] = (now, isinstance(exc, AuthError))
            message = redact(exc.message, account.secret_values())
            log.warning("breakdown fetch failed for %s: %s", account.name, message)
            return message
        self._failed_at.pop(account.name, None)
        return None

    async def refresh_within(
        self, accounts: Sequence[Account], days: int, wait: float | None, *, max_age: timedelta = MAX_AGE
    ) -> dict[str, str]:
        """`refresh`, waited for at most `wait` seconds (chat answers; None: until done): a slow fetch goes on in
        the background and its accounts are reported as not refreshed."""
        if wait is None:
            return await self.refresh(accounts, days=days, max_age=max_age)
        try:
            # `refresh` shields each account's fetch: cancelling the wait leaves the fetches running.
            return await asyncio.wait_for(self.refresh(accounts, days=days, max_age=max_age), wait)
        except TimeoutError:
            slow = f"the provider did not answer within {wait:g} s; the fetch goes on in the background"
            return {a.name: slow for a in accounts if a.name in self._running}

    async def tables(
        self, accounts: Sequence[Account], by: Dimension, days: int, *, wait: float | None = None
    ) -> list[AccountBreakdown]:
        """Each account's breakdown by `by` over the last `days` complete days, against the `days` before, with
        today apart; fetches what is missing or over an hour old first (for at most `wait` seconds, if given)."""
        errors = await self.refresh_within(accounts, 2 * days, wait)
        today = self.monitor.clock().date()
        first, last = window(days, today)
        previous = (first - timedelta(days=days), first - timedelta(days=1))
        parts, spend, known = await self._read(accounts, by, previous[0], today)
        result = []
        for account in accounts:
            if not gives(account, by):
                result.append(AccountBreakdown(account, None, by, days, None, note=missing_note(account, by)))
                continue
            answered, currency = known[account.name].days, known[account.name].currency
            mine, costs = parts[account.name], spend[account.name]
            table = build_table(by, mine, costs, answered, first, last, previous=previous)
            today_table = None
            if today in answered:
                today_table = build_table(by, mine, costs, answered, today, today, partial=True)
            note = None
            if account.name in errors:
                note = f"could not refresh, showing what is stored: {errors[account.name]}"
            result.append(AccountBreakdown(account, currency, by, days, table, today_table, note))
        return result

    async def drivers(self, accounts: Sequence[Account], day: date, by: Dimension) -> dict[str, list[Driver]]:
        """The top 3 entries by `by` of each account's spend on `day`, against their 7-day medians (stored data
        only: the poller keeps it current)."""
        wanted = [a for a in accounts if gives(a, by)]
        parts, spend, known = await self._read(wanted, by, day - timedelta(days=MEDIAN_DAYS), day)
        return {a.name: drivers(parts[a.name], spend[a.name], known[a.name].days, day) for a in wanted}

    async def parts(
        self, accounts: Sequence[Account], by: Dimension, since: date, until: date
    ) -> dict[str, list[BreakdownPart]]:
        """Stored parts of each account by `by` from `since` to `until`."""
        return await self.store.parts((a.name for a in accounts if gives(a, by)), by, since, until)

    async def _read(
        self, accounts: Sequence[Account], by: Dimension, since: date, until: date
    ) -> tuple[dict[str, list[BreakdownPart]], dict[str, dict[date, Decimal]], dict[str, Answered]]:
        names = [a.name for a in accounts]
        parts = await self.store.parts(names, by, since, until)
        known = await self.store.answered(names, since, until)
        stored = await self.monitor.store.readings.daily_spends(dict.fromkeys(names, since))
        # The day's spend: the breakdown's own ungrouped total where it has one (fetched with the parts, so the
        # two agree), else the daily spend the polls stored.
        spend = {
            name: {**{e.day: e.amount.amount for e in entries if e.day <= until}, **known[name].totals}
            for name, entries in stored.items()
        }
        return parts, spend, known


def _due_runs(account: Account, settled: set[date], first: date, today: date) -> list[tuple[date, date]]:
    """The runs of consecutive days to ask for: those not `settled` (final, or asked for recently)."""
    reach = PROVIDERS[account.provider].breakdown_reach_days
    if reach is not None:
        first = max(first, today - timedelta(days=reach))
    runs: list[tuple[date, date]] = []
    day = first
    while day <= today:
        if day not in settled:
            if runs and runs[-1][1] == day - timedelta(days=1):
                runs[-1] = (runs[-1][0], day)
            else:
                runs.append((day, day))
        day += timedelta(days=1)
    # At most a month per fetch, newest first: each is stored as soon as it is in, so a slow source still
    # fills a long window over a few refreshes, and the days shown first arrive first. Final days between
    # gaps are never asked for again.
    chunks = []
    for since, until in reversed(runs):
        while until >= since:
            start = max(since, until - timedelta(days=CHUNK_DAYS - 1))
            chunks.append((start, until))
            until = start - timedelta(days=1)
    return chunks
