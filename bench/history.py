"""Issue 13, "a year of history costs what a week costs": the read side and storage with 400 days of readings
beside the same accounts with one day, the first upgrade's compaction, and a large prune beside top-ups.

A synthetic history is written once per run with set-based SQL (a recursive CTE on SQLite, generate_series on
PostgreSQL) into a database created at revision 0005, in the shape readings had before 0006: most accounts
DeepSeek balances in USD that fall slowly and are topped up now and then, a few OpenAI spend-only accounts with
their daily spend and ledger, and about 1 % failed fetches. `Store.open` then upgrades it to 0006 (a first
upgrade) and `Monitor.prune()` compacts it the way the product does. Everything is reported, nothing asserted.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import create_async_engine

from bot.config import Account, AppConfig, Settings
from bot.schema import daily_spend, ledger, readings
from bot.store import Store
from bot.store.history import HistoryStore

INTERVAL = 900  # the default poll
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DATABASE = "creditbot_bench_history"
TOPUPS = 5
VIEW_GOAL_S = 0.1
RATIO_GOAL = 1.5
STORAGE_GOAL_MB = 2.0
TOPUP_WAIT_GOAL_S = 2.0


@dataclass(frozen=True)
class Shape:
    """How much synthetic history: accounts, days of readings at the default poll, spend-only accounts."""

    accounts: int
    days: int
    spend_only: int

    @property
    def steps(self) -> int:
        return self.days * 86400 // INTERVAL

    @property
    def rows(self) -> int:
        return self.steps * self.accounts


def name(index: int) -> str:
    """Account names: h000, h001, ..."""
    return f"h{index:03d}"


def median(samples: list[float]) -> dict[str, float]:
    """Median and spread of repeated runs."""
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "runs": len(samples)}


# --- the synthetic history -------------------------------------------------------------------------------------

# DeepSeek balances in cents: each account falls by (1 + a % 9) cents a poll and is topped up every 20 to 44 days
# (a sawtooth, phase-shifted per account); the first `spend_only` accounts are OpenAI, spending (3 + a) dollars a
# day; one attempt in 97 failed.
_GRID = """
    {n} AS n, {a} AS a, {start} + {n} * {interval} AS t,
    ({n} * 7 + {a} * 13) % 97 = 0 AS failed,
    {a} < {spend_only} AS spend,
    2000 + (1 + {a} % 9)
        * ((20 + {a} % 25) * {per_day} - ({n} + {a} * 977) % ((20 + {a} % 25) * {per_day})) AS cents
"""
_COLUMNS = (
    "account, provider, fetched_at, ok, currency, balance, balance_source, spent_today, spent_month, report, "
    "error, error_kind"
)
_SELECT = """
    {account} AS account,
    CASE WHEN spend THEN 'openai' ELSE 'deepseek' END AS provider,
    {fetched_at} AS fetched_at,
    NOT failed AS ok,
    CASE WHEN failed THEN NULL ELSE 'USD' END AS currency,
    CASE WHEN failed OR spend THEN NULL ELSE {money_cents} END AS balance,
    CASE WHEN failed OR spend THEN NULL ELSE 'reported' END AS balance_source,
    CASE WHEN spend AND NOT failed THEN {money_today} END AS spent_today,
    CASE WHEN spend AND NOT failed THEN {money_month} END AS spent_month,
    {json_open}CASE WHEN failed THEN 'null'
        WHEN spend THEN '{{"balances": [], "granted_total": null, "grants": [], "notes": [], '
            || '"spent_month_through": "' || {day} || '"}}'
        ELSE '{{"balances": [{{"amount": "' || {money_cents} || '", "currency": "USD"}}], "granted_total": null, '
            || '"grants": [], "notes": [], "spent_month_through": null}}' END{json_close} AS report,
    CASE WHEN failed THEN
        (CASE WHEN spend THEN 'openai' ELSE 'deepseek' END)
        || ' answered 503 Service Unavailable (a temporary problem at the provider; tried again at the next poll)'
    END AS error,
    CASE WHEN failed THEN 'unavailable' END AS error_kind
"""


def _sqlite_insert(shape: Shape, start: int) -> str:
    def money(cents: str) -> str:
        return f"printf('%d.%02d', ({cents}) / 100, ({cents}) % 100)"

    grid = _GRID.format(
        n="n", a="a", start=start, interval=INTERVAL, spend_only=shape.spend_only, per_day=86400 // INTERVAL
    )
    select = _SELECT.format(
        account="'h' || printf('%03d', a)",
        fetched_at="strftime('%Y-%m-%d %H:%M:%S', t, 'unixepoch') || '.000000'",
        money_cents=money("cents"),
        money_today=money("(3 + a) * 100"),
        money_month=money("(3 + a) * 100 * CAST(strftime('%d', t, 'unixepoch') AS INTEGER)"),
        day="date(t, 'unixepoch')",
        json_open="",
        json_close="",
    )
    # CROSS JOIN keeps the steps as the outer loop: ids rise with time, as a poll's readings do. Only integers
    # of the benchmark's own are formatted in.
    return (
        f"INSERT INTO readings ({_COLUMNS}) "  # noqa: S608
        f"WITH RECURSIVE steps(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM steps WHERE n < {shape.steps - 1}), "
        f"accts(a) AS (SELECT 0 UNION ALL SELECT a + 1 FROM accts WHERE a < {shape.accounts - 1}), "
        f"grid AS (SELECT {grid} FROM steps CROSS JOIN accts) "
        f"SELECT {select} FROM grid ORDER BY n, a"
    )


def _pg_insert(shape: Shape, start: int) -> str:
    def money(cents: str) -> str:
        return f"(({cents}) / 100)::text || '.' || lpad((({cents}) % 100)::text, 2, '0')"

    grid = _GRID.format(
        n="n", a="a", start=start, interval=INTERVAL, spend_only=shape.spend_only, per_day=86400 // INTERVAL
    )
    utc = "(to_timestamp(t) AT TIME ZONE 'UTC')"
    select = _SELECT.format(
        account="'h' || lpad(a::text, 3, '0')",
        fetched_at="to_timestamp(t)",
        money_cents=money("cents"),
        money_today=money("(3 + a) * 100"),
        money_month=money(f"(3 + a) * 100 * extract(day FROM {utc})::int"),
        day=f"to_char({utc}, 'YYYY-MM-DD')",
        json_open="(",
        json_close=")::json",
    )
    return (
        f"INSERT INTO readings ({_COLUMNS}) "  # noqa: S608 (integers of the benchmark's own)
        f"SELECT {select} FROM (SELECT {grid} FROM generate_series(0::bigint, {shape.steps - 1}) AS n "
        f"CROSS JOIN generate_series(0, {shape.accounts - 1}) AS a) AS grid ORDER BY n, a"
    )


def _upgrade_to_0005(connection: sa.Connection) -> None:
    from alembic import command

    from bot.store.database import _alembic_config

    command.upgrade(_alembic_config(connection), "0005")


def _spend_and_ledger(
    shape: Shape, first_day: date, now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Daily spend for every day of the spend-only accounts, and a top-up every 90 days that covers 100."""
    spend, topups = [], []
    for a in range(shape.spend_only):
        dollars = 3 + a
        for offset in range(shape.days + 1):
            day = first_day + timedelta(days=offset)
            spend.append(
                {"account": name(a), "day": day, "currency": "USD", "amount": f"{dollars}.00", "updated_at": now}
            )
        for offset in range(0, shape.days + 1, 90):
            topups.append(
                {
                    "account": name(a),
                    "amount": f"{dollars * 100}.00",
                    "currency": "USD",
                    "on_day": first_day + timedelta(days=offset),
                    "source": "cli",
                    "recorded_at": now,
                }
            )
    return spend, topups


async def create_raw(url: str, shape: Shape, now: datetime) -> dict[str, Any]:
    """A database at revision 0005 holding `shape` of readings in their pre-0006 shape, ending at `now`.

    SQLite: created as databases were before 0006 (WAL, auto_vacuum off), not through the store, whose
    connections now ask new files for incremental vacuum."""
    engine = create_async_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    try:
        async with engine.begin() as connection:
            if sqlite:
                await connection.exec_driver_sql("PRAGMA journal_mode=WAL")
            await connection.run_sync(_upgrade_to_0005)
        end = int(now.timestamp()) // INTERVAL * INTERVAL
        start = end - (shape.steps - 1) * INTERVAL
        first_day = datetime.fromtimestamp(start, UTC).date()
        spend, topups = _spend_and_ledger(shape, first_day, now)
        started = time.perf_counter()
        async with engine.begin() as connection:
            if sqlite:
                await connection.exec_driver_sql("PRAGMA cache_size=-1000000")  # a gigabyte, for the indexes
            insert = _sqlite_insert(shape, start) if sqlite else _pg_insert(shape, start)
            await connection.execute(sa.text(insert))
            if spend:
                await connection.execute(daily_spend.insert(), spend)
                await connection.execute(ledger.insert(), topups)
        seconds = time.perf_counter() - started
        async with engine.connect() as connection:
            rows = (await connection.execute(sa.text("SELECT count(*) FROM readings"))).scalar_one()
            if not sqlite:
                # A database a year old has its statistics; a bulk load has none until autovacuum comes by.
                await connection.execute(sa.text("ANALYZE"))
                await connection.commit()
    finally:
        await engine.dispose()
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds if seconds else 0.0}


# --- measuring ----------------------------------------------------------------------------------------------


@dataclass
class Batches:
    """Each housekeeping step's duration (a transaction holding the write lock, but for the pauses between)."""

    origin: float = field(default_factory=time.perf_counter)
    steps: list[tuple[str, float, float, int]] = field(default_factory=list)  # kind, start offset, seconds, rows

    def longest(self, kind: str | None = None) -> float:
        return max((s[2] for s in self.steps if kind is None or s[0] == kind), default=0.0)

    def total(self, kind: str) -> float:
        return sum(s[2] for s in self.steps if s[0] == kind)

    def count(self, kind: str) -> int:
        return sum(1 for s in self.steps if s[0] == kind)

    def summary(self) -> dict[str, Any]:
        kinds = sorted({s[0] for s in self.steps})
        return {
            k: {"batches": self.count(k), "seconds": self.total(k), "longest_s": self.longest(k)} for k in kinds
        }


def instrument(history: HistoryStore, batches: Batches, on_step: Callable[[str], None] | None = None) -> None:
    """Time each batch of the housekeeping by wrapping the history store's batch methods on this instance."""

    def wrap(kind: Callable[[], str], method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            label = kind()
            if on_step is not None:
                on_step(label)
            started = time.perf_counter()
            result = await method(*args, **kwargs)
            rows = result if isinstance(result, int) else 0
            batches.steps.append((label, started - batches.origin, time.perf_counter() - started, rows))
            return result

        return timed

    # `_delete_batch` serves the retention first and the raw window once everything is folded.
    deleting = history._delete_batch
    history._delete_batch = wrap(lambda: "compact" if history._all_folded else "expire", deleting)  # type: ignore[method-assign]
    history.fold_batch = wrap(lambda: "fold", history.fold_batch)  # type: ignore[method-assign]
    history._prune_days = wrap(lambda: "days", history._prune_days)  # type: ignore[method-assign]
    history._give_space_back = wrap(lambda: "vacuum", history._give_space_back)  # type: ignore[method-assign]


async def sqlite_size(url: str) -> int:
    """The database file with its WAL and shared-memory files."""
    path = Path(sa.make_url(url).database or "")
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())


async def pg_sizes(url: str) -> dict[str, int]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    sa.text(
                        "SELECT pg_database_size(current_database()), pg_total_relation_size('readings'), "
                        "coalesce(pg_total_relation_size(to_regclass('reading_days')), 0)"
                    )
                )
            ).one()
    finally:
        await engine.dispose()
    return {"database": row[0], "readings": row[1], "reading_days": row[2]}


async def size_of(url: str) -> dict[str, int]:
    if url.startswith("sqlite"):
        return {"database": await sqlite_size(url)}
    return await pg_sizes(url)


def config_accounts(shape: Shape, hosts: list[str]) -> tuple[Account, ...]:
    """The accounts of the synthetic history, fetched from the loopback hosts; every fourth has a threshold."""
    from tests.conftest import TEST_KEYS

    accounts = []
    for a in range(shape.accounts):
        spend_only = a < shape.spend_only
        provider = "openai" if spend_only else "deepseek"
        key = TEST_KEYS["openai"] if spend_only else "sk-bench000000000000"
        base = f"{hosts[a % len(hosts)]}/{provider}"
        warn = Decimal("30") if not spend_only and a % 4 == 0 else None
        accounts.append(
            Account(name(a), provider, SecretStr(key), base, "bench", warn_below=warn, spend_only=spend_only)
        )
    return tuple(accounts)


async def _timed(make: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await make()
    return time.perf_counter() - started


async def compact(url: str, shape: Shape, retention_days: int = 400) -> dict[str, Any]:
    """The first upgrade (Store.open to 0006) and the product's housekeeping run whole, timed batch by batch."""
    from bot.httpclient import provider_client
    from bot.monitor import Monitor

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, CREDITBOT_DATABASE_URL=url, CREDITBOT_RETENTION_DAYS=retention_days
    )
    started = time.perf_counter()
    store = await Store.open(url)
    upgrade = time.perf_counter() - started
    batches = Batches()
    instrument(store.history, batches)
    try:
        async with provider_client(settings) as http:
            monitor = Monitor(
                AppConfig(settings, config_accounts(shape, ["http://127.0.0.1:9"]), "bench"), store, http
            )
            # Until the folding is done, views fold the raw readings of their burn window themselves.
            await monitor.views(stored_only=True)
            unfolded_views = [await _timed(lambda: monitor.views(stored_only=True)) for _ in range(3)]
            started = time.perf_counter()
            done = await monitor.prune()
            seconds = time.perf_counter() - started
        size = await size_of(url)
    finally:
        await store.close()
    return {
        "upgrade_s": upgrade,
        "views_before_folding_s": median(unfolded_views),
        "seconds": seconds,
        "expired": done.expired,
        "folded": done.folded,
        "compacted": done.compacted,
        "freed_pages": done.freed_pages,
        "finished": done.finished,
        "folded_per_s": done.folded / batches.total("fold") if batches.total("fold") else 0.0,
        "rows_per_s": (done.expired + done.folded) / seconds if seconds else 0.0,
        "batches": batches.summary(),
        "longest_batch_s": batches.longest(),
        "size_bytes": size,
    }


async def figures(url: str, shape: Shape, hosts: list[str], runs: int) -> dict[str, Any]:
    """The read side over one database: views, one account's chart, a summary with its chart, alert evaluation,
    and polls (the loopback hosts answer as DeepSeek's and OpenAI's endpoints do)."""
    from bot.chart_data import make_chart
    from bot.httpclient import provider_client
    from bot.monitor import Monitor
    from bot.runtime import Runtime

    # Summaries ask for views that may fetch: a day of cache keeps them on the stored readings, as right after
    # a poll. The polls below fetch regardless.
    settings = Settings(_env_file=None, CREDITBOT_DATABASE_URL=url, CREDITBOT_CACHE_SECONDS=86400)  # type: ignore[call-arg]
    store = await Store.open(url)
    try:
        async with provider_client(settings) as http:
            monitor = Monitor(AppConfig(settings, config_accounts(shape, hosts), "bench"), store, http)

            async def charts(views: Any) -> bytes | None:
                return await make_chart(monitor, views)

            runtime = Runtime(monitor, [], charts=charts)
            views = await monitor.views(stored_only=True)  # warm: connections, statement caches
            assert len(views) == shape.accounts
            view_s = [await _timed(lambda: monitor.views(stored_only=True)) for _ in range(max(runs, 7))]
            one = [views[shape.spend_only]]  # a DeepSeek account: its balance history
            await make_chart(monitor, one)
            chart_s = [await _timed(lambda: make_chart(monitor, one)) for _ in range(runs)]
            await runtime.summaries.message()
            summary_s = [await _timed(lambda: runtime.summaries.message()) for _ in range(runs)]
            await runtime.alerting.evaluate(views)  # the first evaluation stores every state
            alert_s = [await _timed(lambda: runtime.alerting.evaluate(views)) for _ in range(runs)]
            poll_s = []
            for _ in range(runs):
                poll_s.append(await _timed(runtime.poll))
                if runtime._housekeeping is not None:  # the housekeeping the poll started beside it
                    await runtime._housekeeping
            fresh = await monitor.views(stored_only=True)
            failed = sum(1 for v in fresh if v.fetched_at is None or v.error)
    finally:
        await store.close()
    return {
        "views_s": median(view_s),
        "chart_s": median(chart_s),
        "summary_s": median(summary_s),
        "alerts_s": median(alert_s),
        "poll_s": median(poll_s),
        "views_with_error_after_poll": failed,
    }


@dataclass
class TopUp:
    """One `creditbot topup` process started beside the prune."""

    phase: str
    started: float  # seconds after the prune began
    seconds: float = 0.0
    code: int | None = None
    said: str = ""


def _topup_env(tmp: Path, url: str, shape: Shape) -> dict[str, str]:
    from tests.conftest import TEST_KEYS

    toml = tmp / "topup.toml"
    toml.write_text(
        "".join(
            f'[[accounts]]\nname = "{name(a)}"\nprovider = "openai"\napi_key = "{TEST_KEYS["openai"]}"\n'
            'base_url = "http://127.0.0.1:9"\n\n'
            for a in range(max(shape.spend_only, 1))
        )
    )
    root = str(Path(__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "CREDITBOT_CONFIG": str(toml), "CREDITBOT_DATABASE_URL": url, "PYTHONPATH": path}


async def _topup(env: dict[str, str], cwd: Path, account: str, record: TopUp, origin: float) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "topup",
        account,
        "10",
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    record.seconds = time.perf_counter() - origin - record.started
    record.code = process.returncode
    record.said = (out or err).decode().strip().splitlines()[-1:][0] if (out or err) else ""


async def _ledger_rows(url: str) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return int((await connection.execute(sa.select(sa.func.count()).select_from(ledger))).scalar_one())
    finally:
        await engine.dispose()


async def prune_beside_topups(
    url: str, shape: Shape, retention_days: int, tmp: Path, topups_wanted: int = TOPUPS
) -> dict[str, Any]:
    """A first upgrade with a lowered retention on the raw readings, with `creditbot topup` processes started
    beside it: one early and one late in the expiry, at the first fold, the first raw-window batch and the
    vacuum (any not started by then is started after the prune)."""
    from bot.httpclient import provider_client
    from bot.monitor import Monitor

    env = _topup_env(tmp, url, shape)
    started = time.perf_counter()
    store = await Store.open(url)
    upgrade = time.perf_counter() - started
    async with store.engine.connect() as connection:
        mode = (await connection.exec_driver_sql("PRAGMA auto_vacuum")).scalar()
    # How long a top-up takes with nothing else running: Python's start, the configuration, one insert.
    idle = TopUp("idle", 0.0)
    await _topup(env, tmp, name(0), idle, time.perf_counter())
    before = await _ledger_rows(url)
    cutoff = datetime.now(UTC) - timedelta(days=retention_days)
    async with store.engine.connect() as connection:
        count = sa.select(sa.func.count()).select_from(readings).where(readings.c.fetched_at < cutoff)
        expiring = int((await connection.execute(count)).scalar_one())
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, CREDITBOT_DATABASE_URL=url, CREDITBOT_RETENTION_DAYS=retention_days
    )
    batches = Batches()
    topups: list[TopUp] = []
    tasks: list[asyncio.Task[None]] = []
    expired = 0
    pending = [("expire", 0.2), ("expire", 0.6), ("fold", 0.0), ("compact", 0.0), ("vacuum", 0.0)][:topups_wanted]

    def start(phase: str) -> None:
        record = TopUp(phase, time.perf_counter() - batches.origin)
        topups.append(record)
        tasks.append(
            asyncio.create_task(
                _topup(env, tmp, name(len(topups) % max(shape.spend_only, 1)), record, batches.origin)
            )
        )

    order = {"expire": 0, "fold": 1, "compact": 2, "vacuum": 3}

    def on_step(kind: str) -> None:
        nonlocal expired
        if kind not in order:
            return
        if kind == "expire":
            expired = sum(s[3] for s in batches.steps if s[0] == "expire")
        while pending:
            phase, share = pending[0]
            if order[phase] < order[kind]:  # that phase had nothing to do: its top-up starts now
                start(f"{phase} (nothing to do), then {kind}")
            elif phase == kind and (kind != "expire" or expired >= share * expiring):
                start(f"{phase} {share:.0%}" if kind == "expire" else phase)
            else:
                break
            pending.pop(0)

    instrument(store.history, batches, on_step)
    try:
        async with provider_client(settings) as http:
            monitor = Monitor(
                AppConfig(settings, config_accounts(shape, ["http://127.0.0.1:9"]), "bench"), store, http
            )
            batches.origin = time.perf_counter()
            done = await monitor.prune()
            seconds = time.perf_counter() - batches.origin
            while pending:
                start(pending.pop(0)[0] + " (after the prune)")
            await asyncio.gather(*tasks)
        size = await size_of(url)
    finally:
        await store.close()
    after = await _ledger_rows(url)
    phases: dict[str, tuple[float, float]] = {}
    for kind, at, took, _rows in batches.steps:
        first, last = phases.get(kind, (at, at + took))
        phases[kind] = (min(first, at), max(last, at + took))
    extra = [t.seconds - idle.seconds for t in topups]
    return {
        "retention_days": retention_days,
        "auto_vacuum_before": mode,
        "upgrade_s": upgrade,
        "expiring_rows": expiring,
        "seconds": seconds,
        "expired": done.expired,
        "folded": done.folded,
        "compacted": done.compacted,
        "freed_pages": done.freed_pages,
        "finished": done.finished,
        "batches": batches.summary(),
        "longest_batch_s": batches.longest(),
        "phases": {k: {"from_s": v[0], "to_s": v[1]} for k, v in phases.items()},
        "idle_topup_s": idle.seconds,
        "idle_topup_code": idle.code,
        "topups": [t.__dict__ for t in topups],
        "topup_max_s": max((t.seconds for t in topups), default=0.0),
        "topup_max_wait_s": max(extra, default=0.0),
        "topups_failed": sum(1 for t in topups if t.code != 0),
        "ledger_added": after - before,
        "topups_lost": len(topups) - (after - before),
        "size_bytes": size,
    }


# --- PostgreSQL --------------------------------------------------------------------------------------------


async def pg_available() -> str | None:
    """None when the local server answers, else why not."""
    import asyncpg

    try:
        connection = await asyncpg.connect(PG_ADMIN, timeout=3)
    except Exception as exc:  # the benchmark carries on without PostgreSQL
        return f"{PG_ADMIN}: {type(exc).__name__}: {exc}"
    await connection.close()
    return None


async def pg_recreate(drop_only: bool = False, *, database: str = PG_DATABASE) -> str:
    """A throwaway database on the local server; returns its URL."""
    import asyncpg

    connection = await asyncpg.connect(PG_ADMIN, timeout=10)
    try:
        await connection.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        if not drop_only:
            await connection.execute(f"CREATE DATABASE {database}")
    finally:
        await connection.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}"


async def pg_vacuum_analyze(url: str) -> None:
    """What autovacuum does some time after the compaction's deletes: dead rows reclaimed, statistics."""
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"), timeout=10)
    try:
        await connection.execute("VACUUM (ANALYZE)")
    finally:
        await connection.close()


async def pg_vacuum_full(url: str) -> dict[str, int]:
    """What an operator's VACUUM FULL would give back (the product never runs it)."""
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"), timeout=10)
    try:
        await connection.execute("VACUUM FULL readings")
        await connection.execute("VACUUM FULL reading_days")
    finally:
        await connection.close()
    return await pg_sizes(url)


# --- the scenario ------------------------------------------------------------------------------------------


async def one_history(url: str, shape: Shape, hosts: list[str], runs: int) -> dict[str, Any]:
    """Generate a raw history, upgrade and compact it the way the product does, then measure the read side."""
    generated = await create_raw(url, shape, datetime.now(UTC))
    generated["size_bytes"] = await size_of(url)
    return {
        "generate": generated,
        "compaction": await compact(url, shape),
        "figures": await figures(url, shape, hosts, runs),
    }


async def postgresql(
    year: Shape, day: Shape, hosts: list[str], runs: int, outer: dict[str, Any]
) -> dict[str, Any]:
    """The year and the day on the local PostgreSQL server, each in a throwaway database."""
    result: dict[str, Any] = {"days": year.days}
    outer["postgresql"] = result
    try:
        url = await pg_recreate()
        # Measured twice: right after the compaction (autovacuum may be busy with its deletes), and after a
        # VACUUM (ANALYZE) such as autovacuum runs sooner or later.
        for label, shape in (("day", day), ("year", year)):
            url = await pg_recreate()
            result[label] = await one_history(url, shape, hosts, runs)
            progress(outer)
            await pg_vacuum_analyze(url)
            result[label]["figures_after_vacuum"] = await figures(url, shape, hosts, runs)
            progress(outer)
        result["year"]["size_after_vacuum_full"] = await pg_vacuum_full(url)
    finally:
        await pg_recreate(drop_only=True)
    return result


async def sqlite_part(
    year: Shape, day: Shape, hosts: list[str], runs: int, tmp: Path, result: dict[str, Any]
) -> dict[str, Any]:
    """The year and the day on SQLite; the raw year is copied before its first upgrade for the prune."""
    sqlite: dict[str, Any] = {}
    result["sqlite"] = sqlite
    url = f"sqlite+aiosqlite:///{tmp / 'year.db'}"
    generated = await create_raw(url, year, datetime.now(UTC))
    generated["size_bytes"] = await size_of(url)
    for suffix in ("", "-wal"):
        if (tmp / f"year.db{suffix}").exists():
            shutil.copyfile(tmp / f"year.db{suffix}", tmp / f"prune.db{suffix}")
    sqlite["year"] = {
        "generate": generated,
        "compaction": await compact(url, year),
        "figures": await figures(url, year, hosts, runs),
    }
    (tmp / "year.db").unlink()
    progress(result)
    sqlite["day"] = await one_history(f"sqlite+aiosqlite:///{tmp / 'day.db'}", day, hosts, runs)
    progress(result)
    return sqlite


async def run_history(smoke: bool, tmp: Path) -> dict[str, Any]:
    """The whole scenario. `BENCH_HISTORY_BACKENDS` (default "sqlite,postgresql") chooses the backends (the prune
    beside top-ups runs with SQLite), `BENCH_HISTORY_PG_DAYS` shortens PostgreSQL's history."""
    from bench.run import FakeHosts

    year = Shape(3, 3, 1) if smoke else Shape(200, 400, 5)
    day = Shape(year.accounts, 1, year.spend_only)
    runs = 2 if smoke else 5
    # Lowered to 30 days on 400 (370 days expire); the smoke run's 3 days expire 2.
    prune_retention = 1 if smoke else 30
    backends = os.environ.get("BENCH_HISTORY_BACKENDS", "sqlite,postgresql").split(",")
    result: dict[str, Any] = {
        "name": "history",
        "accounts": year.accounts,
        "days": year.days,
        "spend_only": year.spend_only,
        "poll_s": INTERVAL,
        "runs": runs,
    }
    fakes = FakeHosts(4, 0.0, deepseek_currency="USD")
    try:
        if "sqlite" in backends:
            await sqlite_part(year, day, fakes.urls, runs, tmp, result)
            prune_url = f"sqlite+aiosqlite:///{tmp / 'prune.db'}"
            result["prune"] = await prune_beside_topups(
                prune_url, year, prune_retention, tmp, 2 if smoke else TOPUPS
            )
            progress(result)
        problem = "not in the smoke run" if smoke else await pg_available()
        if "postgresql" not in backends:
            result["postgresql"] = {"skipped": "not asked for (BENCH_HISTORY_BACKENDS)"}
        elif problem is None:
            pg_days = int(os.environ.get("BENCH_HISTORY_PG_DAYS", str(year.days)))
            pg_year = Shape(year.accounts, pg_days, year.spend_only)
            await postgresql(pg_year, day, fakes.urls, runs, result)
        else:
            result["postgresql"] = {"skipped": problem}
    finally:
        fakes.close()
    result["goals"] = goals(result)
    return result


def progress(result: dict[str, Any]) -> None:
    """What is measured so far, for a long run watched from outside (bench/results/history-progress.json)."""
    folder = Path(__file__).with_name("results")
    folder.mkdir(exist_ok=True)
    (folder / "history-progress.json").write_text(json.dumps(result, indent=2, default=str))
    print(f"history: {time.strftime('%H:%M:%S')} {', '.join(result)}", file=sys.stderr, flush=True)


def _mb_per_account_year(size: int, shape_days: int, accounts: int) -> float:
    return size / 1e6 / accounts / (shape_days / 365)


def goals(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals beside the figures: met or missed, never asserted."""
    rows: list[dict[str, Any]] = []

    def goal(what: str, value: float, limit: float, unit: str) -> None:
        rows.append({"goal": what, "value": value, "limit": limit, "unit": unit, "met": value <= limit})

    for backend in ("sqlite", "postgresql"):
        part = result.get(backend, {})
        if "year" not in part:
            continue
        year, day = part["year"]["figures"], part["day"]["figures"]
        days = part.get("days", result["days"])
        for key, label in (
            ("views_s", "views"),
            ("chart_s", "one account's chart"),
            ("summary_s", "summary with chart"),
            ("poll_s", "poll"),
            ("alerts_s", "alert evaluation"),
        ):
            ratio = year[key]["median"] / day[key]["median"] if day[key]["median"] else float("inf")
            goal(f"{backend}: {label}, {days} days / 1 day", ratio, RATIO_GOAL, "×")
        goal(f"{backend}: all-account views at {days} days", year["views_s"]["median"], VIEW_GOAL_S, "s")
        if "figures_after_vacuum" in part["year"]:
            after = part["year"]["figures_after_vacuum"]["views_s"]["median"]
            goal(f"{backend}: all-account views at {days} days, after VACUUM (ANALYZE)", after, VIEW_GOAL_S, "s")
        size = part["year"]["compaction"]["size_bytes"]["database"]
        goal(
            f"{backend}: storage per account-year",
            _mb_per_account_year(size, days, result["accounts"]),
            STORAGE_GOAL_MB,
            "MB",
        )
    prune = result.get("prune")
    if prune:
        goal("prune beside top-ups: top-ups lost", prune["topups_lost"] + prune["topups_failed"], 0, "")
        goal(
            "prune beside top-ups: longest top-up wait (wall - idle)",
            prune["topup_max_wait_s"],
            TOPUP_WAIT_GOAL_S,
            "s",
        )
    return rows


def scenario_history(smoke: bool) -> dict[str, Any]:
    """A year of history beside a day of it (see the module's docstring)."""
    with tempfile.TemporaryDirectory(prefix="creditbot-history-") as tmp:
        return asyncio.run(run_history(smoke, Path(tmp)))


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def history_markdown(r: dict[str, Any]) -> list[str]:
    """The history scenario's own tables: figures per backend, compaction, the prune beside top-ups, goals."""
    lines = [
        f"History (issue 13): {r['accounts']} accounts ({r['spend_only']} spend-only), {r['days']} days at "
        f"{r['poll_s']} s beside the same accounts with 1 day; medians of {r['runs']} warm runs "
        "(views: at least 7)",
        "",
    ]
    backends = [b for b in ("sqlite", "postgresql") if "year" in r.get(b, {})]
    header = "| |"
    rule = "|---|"
    for backend in backends:
        days = r[backend].get("days", r["days"])
        header += f" {backend} 1 day | {backend} {days} days | ratio |"
        rule += "---|---|---|"
    lines += [header, rule]
    for key, label in (
        ("views_s", "all-account views"),
        ("chart_s", "one account's chart"),
        ("summary_s", "summary with chart"),
        ("poll_s", "one poll (loopback hosts)"),
        ("alerts_s", "alert evaluation"),
    ):
        row = f"| {label} |"
        for backend in backends:
            day, year = r[backend]["day"]["figures"][key]["median"], r[backend]["year"]["figures"][key]["median"]
            row += f" {_ms(day)} | {_ms(year)} | {year / day if day else float('inf'):.2f} |"
        lines.append(row)
    if "postgresql" in backends and "figures_after_vacuum" in r["postgresql"]["year"]:
        for key, label in (
            ("views_s", "all-account views"),
            ("summary_s", "summary with chart"),
            ("poll_s", "poll"),
        ):
            row = f"| {label}, after VACUUM (ANALYZE) |"
            for backend in backends:
                if backend != "postgresql":
                    row += " | | |"
                    continue
                pg = r[backend]
                day = pg["day"]["figures_after_vacuum"][key]["median"]
                year = pg["year"]["figures_after_vacuum"][key]["median"]
                row += f" {_ms(day)} | {_ms(year)} | {year / day if day else float('inf'):.2f} |"
            lines.append(row)
    row = "| database size after compaction |"
    for backend in backends:
        days = r[backend].get("days", r["days"])
        day_size = r[backend]["day"]["compaction"]["size_bytes"]["database"]
        year_size = r[backend]["year"]["compaction"]["size_bytes"]["database"]
        per = _mb_per_account_year(year_size, days, r["accounts"])
        row += f" {_mb(day_size)} | {_mb(year_size)} ({per:.2f} MB per account-year) | — |"
    lines.append(row)
    lines.append("")
    for backend in backends:
        part = r[backend]
        gen, comp = part["year"]["generate"], part["year"]["compaction"]
        fold = comp["batches"].get("fold", {})
        lines.append(
            f"- {backend}, {part.get('days', r['days'])} days: generated {gen['rows']:,} raw readings in "
            f"{gen['seconds']:.0f} s ({gen['rows_per_s']:,.0f} rows/s, "
            f"{_mb(gen['size_bytes']['database'])} before the upgrade); first upgrade {comp['upgrade_s']:.2f} s; "
            f"compaction (`Monitor.prune`, 400-day retention) "
            f"{comp['seconds']:.0f} s: {comp['folded']:,} folded ({comp['folded_per_s']:,.0f} rows/s in "
            f"{fold.get('batches', 0)} batches), {comp['expired']:,} expired, {comp['compacted']:,} compacted, "
            f"{comp['freed_pages']:,} pages freed; longest batch {_ms(comp['longest_batch_s'])}"
        )
        if "views_before_folding_s" in comp:
            lines.append(
                f"  (all-account views right after the upgrade, before the folding: "
                f"{_ms(comp['views_before_folding_s']['median'])} median: they fold their raw readings)"
            )
        if "size_after_vacuum_full" in part["year"]:
            lines.append(
                f"  (PostgreSQL keeps the deleted rows' space: after an operator's VACUUM FULL the database is "
                f"{_mb(part['year']['size_after_vacuum_full']['database'])})"
            )
    skipped = r.get("postgresql", {}).get("skipped")
    if skipped:
        lines.append(f"- postgresql: skipped ({skipped})")
    p = r.get("prune")
    if p:
        kinds = ", ".join(
            f"{k} {v['batches']} × (longest {_ms(v['longest_s'])})"
            for k, v in p["batches"].items()
            if v["batches"]
        )
        lines.append(
            f"- prune on the raw copy, retention lowered to {p['retention_days']} days (first upgrade + lowered "
            f"retention, SQLite, auto_vacuum={p['auto_vacuum_before']}): {p['seconds']:.0f} s; {p['expired']:,} "
            f"expired, {p['folded']:,} folded, {p['compacted']:,} compacted, {p['freed_pages']:,} pages freed; "
            f"steps: {kinds}; longest single step {_ms(p['longest_batch_s'])}; size after "
            f"{_mb(p['size_bytes']['database'])}"
        )
        walls = ", ".join(
            f"{t['phase']} at {t['started']:.1f} s: {t['seconds']:.2f} s (exit {t['code']})" for t in p["topups"]
        )
        lines.append(
            f"- `creditbot topup` beside it (idle: {p['idle_topup_s']:.2f} s): {walls}; in the ledger afterwards: "
            f"{p['ledger_added']} of {len(p['topups'])}"
        )
    lines += ["", "| goal | value | limit | |", "|---|---|---|---|"]
    for g in r["goals"]:
        value = f"{g['value']:.3f}" if isinstance(g["value"], float) else str(g["value"])
        lines.append(
            f"| {g['goal']} | {value} {g['unit']} | {g['limit']} {g['unit']} | {'met' if g['met'] else 'missed'} |"
        )
    return lines
