"""A year of history: readings rolled up per day, folded after a first upgrade (resumably), compacted and pruned
in short transactions while commands write, and the views, chart and summary unchanged by it."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import httpx
import sqlalchemy as sa

from bot.chart_data import chart_series
from bot.config import AppConfig
from bot.models import LedgerEntry, ProviderReport, Reading
from bot.money import Money
from bot.runtime import Runtime
from bot.store import Store
from bot.store.database import _alembic_config
from bot.store.history import RAW_WINDOW
from bot.summaries import SummaryParts
from tests.conftest import make_account, make_runtime, make_settings

END = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
USD = "USD"


def year_database(path: Path, *, accounts: int, days: int, step: int) -> datetime:
    """A database at revision 0005 (before day rows existed) holding `days` of readings every `step` seconds for
    `accounts` balance-only accounts, written with one set-based statement; returns the first reading's time.

    Each balance falls by 0.25 a reading and is topped up every 240 readings; every 97th attempt fails."""
    from alembic import command

    start = END - timedelta(days=days)
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        command.upgrade(_alembic_config(connection), "0005")
    count = days * 86400 // step
    insert = sa.text(
        """
        INSERT INTO readings (account, provider, fetched_at, ok, currency, balance, balance_source, error,
                              error_kind)
        WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :count - 1),
                       a(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM a WHERE k < :accounts - 1)
        SELECT 'acct' || a.k, 'deepseek',
               strftime('%Y-%m-%d %H:%M:%S.000000', :start, '+' || (n.i * :step) || ' seconds'),
               n.i % 97 != 5,
               CASE WHEN n.i % 97 = 5 THEN NULL ELSE 'USD' END,
               CASE WHEN n.i % 97 = 5 THEN NULL ELSE printf('%.2f', 500 - ((n.i + a.k * 7) % 240) * 0.25) END,
               CASE WHEN n.i % 97 = 5 THEN NULL ELSE 'reported' END,
               CASE WHEN n.i % 97 = 5 THEN 'deepseek answered HTTP 503' END,
               CASE WHEN n.i % 97 = 5 THEN 'unavailable' END
        FROM n, a ORDER BY n.i, a.k
        """
    )
    with engine.begin() as connection:
        connection.execute(
            insert,
            {"count": count, "accounts": accounts, "step": step, "start": start.strftime("%Y-%m-%d %H:%M:%S")},
        )
    engine.dispose()
    return start


async def _count(store: Store, query: str) -> int:
    async with store.engine.connect() as connection:
        return int((await connection.execute(sa.text(query))).scalar_one())


FOLD_SCRIPT = """
import asyncio, sys
from bot.store import Store

async def main() -> None:
    store = await Store.open(sys.argv[1])
    while await store.history.fold_batch(batch=2000):
        print("batch", flush=True)

asyncio.run(main())
"""


def fold_then_kill(url: str, *, batches: int) -> None:
    """Run the folding job in its own process and SIGKILL it once it has committed `batches` batches."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    job = subprocess.Popen([sys.executable, "-c", FOLD_SCRIPT, url], stdout=subprocess.PIPE, text=True, env=env)
    assert job.stdout is not None
    for _ in range(batches):
        assert job.stdout.readline() == "batch\n"
    job.kill()
    job.wait()


async def test_a_first_upgrade_folds_a_year_killed_half_way_and_resumed(tmp_path: Path) -> None:
    path = tmp_path / "year.db"
    url = f"sqlite+aiosqlite:///{path}"
    year_database(path, accounts=50, days=365, step=3600)  # 438,000 readings, in the shape before 0006
    size_before = path.stat().st_size
    store = await Store.open(url)  # the upgrade: schema only, in one transaction
    try:
        names = [f"acct{k}" for k in range(50)]
        assert await _count(store, "SELECT count(*) FROM reading_days") == 0
        # Reads see the readings not folded yet: this is the whole history, folded in memory.
        before = await store.history.days(names, (END - timedelta(days=400)).date())
        assert len(before["acct0"]) == 366
        assert sum(d.attempts for d in before["acct0"]) == 365 * 24

        # The background job, killed half-way (SIGKILL: no chance to tidy up).
        await asyncio.to_thread(fold_then_kill, url, batches=60)
        async with store.engine.connect() as connection:
            below = int(
                (
                    await connection.execute(
                        sa.text("SELECT value FROM settings_kv WHERE key = :k"), {"k": "history.unfolded_below"}
                    )
                ).scalar_one()
            )
        assert 1 < below < 438_000 - 60 * 2000 + 2
        assert await _count(store, "SELECT count(*) FROM reading_days") > 0
        # Half folded, half not: reads still see exactly the same history.
        assert await store.history.days(names, (END - timedelta(days=400)).date()) == before

        # Resumed by the leader's housekeeping: the rest folded, readings past the raw window dropped.
        done = await store.history.housekeeping(END, timedelta(days=400), pause=0)
        assert done.finished
        assert (done.expired, done.folded > 0, done.compacted > 0) == (0, True, True)
        assert await store.history.days(names, (END - timedelta(days=400)).date()) == before
        assert await _count(store, "SELECT count(*) FROM reading_days") == 50 * 366
        raw = await _count(store, "SELECT count(*) FROM readings")
        assert raw <= 50 * (RAW_WINDOW.days * 24 + 2)
        # The file gives the space back (converted to incremental vacuum once, as it was created without).
        assert await _count(store, "PRAGMA auto_vacuum") == 2
        assert await _count(store, "PRAGMA freelist_count") == 0
    finally:
        await store.close()
    assert path.stat().st_size < size_before / 4


async def test_pruning_a_lowered_retention_loses_no_topup_written_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "year.db"
    url = f"sqlite+aiosqlite:///{path}"
    year_database(path, accounts=50, days=365, step=3600)
    store = await Store.open(url)
    other = await Store.open(url)  # a `creditbot topup` in another process: its own connections
    waits: list[float] = []

    async def topups() -> None:
        for i in range(40):
            started = time.monotonic()
            await other.readings.add_ledger_entry(
                LedgerEntry("acct1", Money(Decimal(i + 1), USD), date(2026, 11, 1), "cli", END)
            )
            waits.append(time.monotonic() - started)
            await asyncio.sleep(0.02)

    try:
        writer = asyncio.create_task(topups())
        done = await store.history.housekeeping(END, timedelta(days=30))
        await writer
        assert done.expired == 50 * 335 * 24
        assert done.finished
        entries = (await other.readings.ledger_entries(["acct1"]))["acct1"]
        assert sorted(e.amount.amount for e in entries) == [Decimal(i + 1) for i in range(40)]
        assert max(waits) < 2.0, f"a top-up waited {max(waits):.2f} s"
        assert await _count(store, "SELECT count(*) FROM readings WHERE fetched_at < '2026-10-30'") == 0
        async with store.engine.connect() as connection:
            oldest = (await connection.execute(sa.text("SELECT min(day) FROM reading_days"))).scalar_one()
        assert oldest == "2026-10-30"  # day rows follow the retention too
    finally:
        await other.close()
        await store.close()


def poll_times(days: int, step: int) -> list[datetime]:
    return [END - timedelta(seconds=step * i) for i in range(days * 86400 // step, -1, -1)]


def balance_at(account: int, index: int) -> Decimal:
    """A balance that falls unevenly, dips and recovers within days, and is topped up now and then."""
    wobble = Decimal((index * 7 + account * 3) % 11) / 4
    return Decimal(900) - Decimal(index % 700) * Decimal("1.1") + wobble


def synthetic_readings(times: Sequence[datetime], accounts: int) -> list[list[Reading]]:
    polls = []
    for index, at in enumerate(times):
        poll = []
        for account in range(accounts):
            name = f"a{account}"
            if (index + account) % 53 == 0:
                poll.append(Reading(name, "deepseek", at, error="deepseek answered HTTP 502", error_kind=None))
            else:
                amount = Money(balance_at(account, index), USD)
                poll.append(Reading(name, "deepseek", at, report=ProviderReport(USD, balance=amount)))
        polls.append(poll)
    return polls


def reference_burn(readings: Sequence[Reading], now: datetime) -> Decimal | None:
    """Burn from the full history: the falls between consecutive balances over the window's whole days."""
    start = now.date() - timedelta(days=7)
    window = [(r.fetched_at, r.report.balance.amount) for r in readings if r.report and r.report.balance]
    window = [(at, amount) for at, amount in window if at.date() >= start]
    spent = sum((max(a - b, Decimal(0)) for (_, a), (_, b) in pairwise(window)), Decimal(0))
    span = window[-1][0] - window[0][0]
    return spent * 86400 / Decimal(span.total_seconds())


async def _outputs(runtime: Runtime) -> tuple[object, ...]:
    views = await runtime.monitor.views(stored_only=True)
    series = await chart_series(runtime.monitor, views)
    summary = await runtime.summaries.message(shared=SummaryParts())
    return views, series, summary.to_json()


async def test_chart_forecast_and_summary_from_compacted_history_equal_full_history(tmp_path: Path) -> None:
    accounts = [make_account(f"a{k}", "deepseek", "http://127.0.0.1:9") for k in range(2)]
    config = AppConfig(make_settings(tmp_path, cache_seconds=86400), tuple(accounts), "t")
    times = poll_times(days=32, step=1800)
    polls = synthetic_readings(times, 2)
    store = await Store.open(config.settings.database_url)
    try:
        for poll in polls:  # stored as the poller stores them, day rows kept up to date as it goes
            await store.readings.add_readings([(r, ()) for r in poll])
        async with httpx.AsyncClient() as http:
            runtime = make_runtime(config, store, http, [], clock=lambda: END + timedelta(minutes=1))
            full = await _outputs(runtime)
            done = await runtime.monitor.prune()
            assert done.compacted > 2 * 20 * 48
            assert done.expired == 0
            assert await _count(store, "SELECT count(*) FROM readings") <= 2 * (RAW_WINDOW.days * 48 + 2)
            compacted = await _outputs(runtime)
        assert compacted == full
        views, series, _summary = compacted
        for k, (view, line) in enumerate(zip(views, series, strict=True)):  # type: ignore[call-overload]
            history = [poll[k] for poll in polls]
            # The chart's points: the last balance of each of the last 30 days, as the full history has them.
            closes: dict[date, Decimal] = {}
            for reading in history:
                if (
                    reading.report
                    and reading.report.balance
                    and reading.fetched_at.date() >= END.date() - timedelta(30)
                ):
                    closes[reading.fetched_at.date()] = reading.report.balance.amount
            assert list(line.points) == sorted(closes.items())
            assert view.burn_rate is not None
            assert view.burn_rate.amount == reference_burn(history, END)
    finally:
        await store.close()


async def _statements_of_a_view(tmp_path: Path, accounts: int) -> list[tuple[str, object]]:
    """The SQL statements that one all-account view and one alert evaluation run, over 10 days of history."""
    names = [make_account(f"a{k}", "deepseek", "http://127.0.0.1:9") for k in range(accounts)]
    config = AppConfig(make_settings(tmp_path / str(accounts), cache_seconds=86400), tuple(names), "t")
    (tmp_path / str(accounts)).mkdir()
    store = await Store.open(config.settings.database_url)
    try:
        for poll in synthetic_readings(poll_times(days=10, step=3600), accounts):
            await store.readings.add_readings([(r, ()) for r in poll])
        async with httpx.AsyncClient() as http:
            runtime = make_runtime(config, store, http, [], clock=lambda: END + timedelta(minutes=1))
            await runtime.monitor.prune()
            seen: list[tuple[str, object]] = []

            def record(
                _conn: object, _cursor: object, statement: str, parameters: object, _c: object, many: bool
            ) -> None:
                seen.append((statement, [] if many else parameters))

            sa.event.listen(store.engine.sync_engine, "before_cursor_execute", record)
            views = await runtime.monitor.views(stored_only=True)
            await runtime.alerting.evaluate(views)
            sa.event.remove(store.engine.sync_engine, "before_cursor_execute", record)
            return seen
    finally:
        await store.close()


async def test_views_and_alerts_cost_the_same_few_range_reads_for_3_or_30_accounts(tmp_path: Path) -> None:
    few = await _statements_of_a_view(tmp_path, 3)
    many = await _statements_of_a_view(tmp_path, 30)
    assert len(few) == len(many) <= 12
    # No statement reads a table of history from end to end: every access is an index search.
    plan_db = sqlite3.connect(tmp_path / "30" / "creditbot.db")
    try:
        for statement, parameters in many:
            if not statement.startswith(("SELECT", "DELETE", "UPDATE")):
                continue
            plan = plan_db.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()  # type: ignore[arg-type]
            scans = [row[3] for row in plan if row[3].startswith(("SCAN readings", "SCAN reading_days"))]
            assert scans == [], statement
    finally:
        plan_db.close()
