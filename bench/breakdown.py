"""Issue 18, "where the money goes": `breakdown` over 20 accounts and 90 days of stored parts.

Each account is an OpenAI account whose breakdown is stored for the last 90 days and today (15 line items, 8
models, 4 projects and 5 API keys a day, the keys with tokens only) beside its daily spend; the 90 days before
are stored as answered without spend (the accounts are 90 days old), and every day is final, so `tables`
fetches nothing (the accounts point at a closed port: a fetch would show as a note, which fails the run). It
times `Monitor.breakdowns.tables(accounts, Dimension.MODEL, days)` for 7 and 90 days, on SQLite and, when the
local server answers, PostgreSQL, and reports the storage the breakdown rows take per account-year.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import create_async_engine

from bench.history import median, pg_available, pg_recreate, sqlite_size
from bot.breakdown import BreakdownPart, BreakdownReport, Dimension
from bot.config import Account, AppConfig, Settings
from bot.models import DailySpend, ProviderReport, Reading
from bot.money import Money
from bot.monitor import Monitor
from bot.store import Store

PG_DATABASE = "creditbot_bench_breakdown"
GOAL_S = 0.2
MODELS = 8
LINE_ITEMS = 15  # the 8 models' input and output lines, less one
PROJECTS = 4
KEYS = 5
CENT = Decimal("0.01")


def _names(accounts: int) -> list[str]:
    return [f"b{index:02d}" for index in range(accounts)]


def day_parts(account: int, day: date, offset: int) -> tuple[list[BreakdownPart], Decimal]:
    """One account's parts of one day, every dimension, and the day's spend (a cent more than the line items on
    one day in five: the "unattributed" row has something to show)."""
    parts = []
    by_model: dict[str, Decimal] = {}
    for item in range(LINE_ITEMS):
        model, kind = f"model-{item // 2}", ("input", "output")[item % 2]
        cost = (Decimal((account * 7 + offset * 3 + item * 11) % 900 + 10) * CENT).quantize(CENT)
        key = f"{model}-2024-08-06, {kind}"
        parts.append(BreakdownPart(day, Dimension.LINE_ITEM, key, key, cost))
        by_model[model] = by_model.get(model, Decimal(0)) + cost
    for model, cost in by_model.items():
        tokens = int(cost * 100_000)
        parts.append(BreakdownPart(day, Dimension.MODEL, model, model, cost, tokens, tokens // 4, tokens // 3, 50))
    total = sum(by_model.values(), Decimal(0))
    share = (total / PROJECTS).quantize(CENT)
    for project in range(PROJECTS):
        cost = share if project < PROJECTS - 1 else total - share * (PROJECTS - 1)
        parts.append(BreakdownPart(day, Dimension.PROJECT, f"proj_{project}", f"Project {project}", cost))
    for n in range(KEYS):
        parts.append(BreakdownPart(day, Dimension.KEY, f"key_{n}", f"key_{n}", None, 1000 * n, 0, 500, 10))
    return parts, total + (CENT if offset % 5 == 0 else 0)


async def seed(store: Store, accounts: int, days: int, now: datetime) -> None:
    """`days` days of parts and spend plus today, and `days` answered days without spend before them, final."""
    today = now.date()
    first = today - timedelta(days=days)
    empty = [first - timedelta(days=n) for n in range(days, 0, -1)]
    for index, name in enumerate(_names(accounts)):
        parts: list[BreakdownPart] = []
        series = []
        for offset in range(days + 1):
            day = first + timedelta(days=offset)
            mine, spend = day_parts(index, day, offset)
            parts.extend(mine)
            series.append(DailySpend(day, Money(spend, "USD")))
        report = BreakdownReport("USD", (*empty, *(s.day for s in series)), tuple(parts), frozenset(Dimension))
        asked = list(report.days)
        await store.breakdowns.save(name, asked, report, settled_before=today + timedelta(days=1), now=now)
        reading = ProviderReport("USD", spent_today=series[-1].amount, daily_spend=tuple(series))
        await store.readings.add_reading(Reading(name, "openai", now, report=reading), series)


async def breakdown_bytes(url: str, engine_url: str) -> int:
    """What the breakdown tables take: their relations on PostgreSQL, SQLite's pages of them (dbstat)."""
    engine = create_async_engine(engine_url)
    try:
        async with engine.connect() as connection:
            if url.startswith("sqlite"):
                query = (
                    "SELECT sum(pgsize) FROM dbstat WHERE name IN "
                    "(SELECT name FROM sqlite_master WHERE tbl_name IN ('breakdown_parts', 'breakdown_days'))"
                )
            else:
                query = (
                    "SELECT pg_total_relation_size('breakdown_parts') + pg_total_relation_size('breakdown_days')"
                )
            return int((await connection.execute(sa.text(query))).scalar_one())
    finally:
        await engine.dispose()


async def measure(url: str, accounts: int, days: int, runs: int) -> dict[str, Any]:
    """Seed one backend, then time `tables` for 7 and for `days` days."""
    now = datetime.now(UTC)
    store = await Store.open(url)
    try:
        started = time.perf_counter()
        await seed(store, accounts, days, now)
        seeded = time.perf_counter() - started
        settings = Settings(_env_file=None, database_url=url, config_path=None)
        configured = tuple(
            Account(
                name=name,
                provider="openai",
                api_key=SecretStr("sk-admin-bench"),
                base_url="http://127.0.0.1:9",  # closed: a fetch would fail and show as a note
                spend_only=True,
                origin="bench",
            )
            for name in _names(accounts)
        )
        async with httpx.AsyncClient() as http:
            monitor = Monitor(AppConfig(settings, configured, "bench"), store, http)
            figures: dict[str, Any] = {}
            for window in (7, days):
                samples = []
                for _ in range(runs + 1):  # the first run warms caches and is left out
                    started = time.perf_counter()
                    tables = await monitor.breakdowns.tables(monitor.accounts(), Dimension.MODEL, window)
                    samples.append(time.perf_counter() - started)
                notes = [t.note for t in tables if t.note]
                assert not notes, f"the benchmark fetched: {notes[0]}"
                assert all(t.table is not None and t.table.rows for t in tables)
                figures[f"days_{window}_s"] = median(samples[1:])
    finally:
        await store.close()
    size = await breakdown_bytes(url, url)
    rows = accounts * ((days + 1) * (LINE_ITEMS + MODELS + PROJECTS + KEYS))
    return {
        "seed_s": seeded,
        "figures": figures,
        "breakdown_bytes": size,
        "part_rows": rows,
        "mb_per_account_year": size / 1e6 / accounts / ((days + 1) / 365),
        "database_bytes": await sqlite_size(url) if url.startswith("sqlite") else None,
    }


async def run_breakdown(smoke: bool, tmp: Path) -> dict[str, Any]:
    """The whole scenario; `BENCH_BREAKDOWN_BACKENDS` (default "sqlite,postgresql") chooses the backends."""
    accounts, days, runs = (2, 10, 2) if smoke else (20, 90, 9)
    result: dict[str, Any] = {"name": "breakdown", "accounts": accounts, "days": days, "runs": runs}
    backends = os.environ.get("BENCH_BREAKDOWN_BACKENDS", "sqlite,postgresql").split(",")
    if "sqlite" in backends:
        result["sqlite"] = await measure(f"sqlite+aiosqlite:///{tmp / 'breakdown.db'}", accounts, days, runs)
    problem = "not in the smoke run" if smoke else await pg_available()
    if "postgresql" not in backends:
        result["postgresql"] = {"skipped": "not asked for (BENCH_BREAKDOWN_BACKENDS)"}
    elif problem is None:
        url = await pg_recreate(database=PG_DATABASE)
        try:
            result["postgresql"] = await measure(url, accounts, days, runs)
        finally:
            await pg_recreate(drop_only=True, database=PG_DATABASE)
    else:
        result["postgresql"] = {"skipped": problem}
    return result


def scenario_breakdown(smoke: bool) -> dict[str, Any]:
    """`breakdown` over 20 accounts and 90 days (see the module's docstring)."""
    with tempfile.TemporaryDirectory(prefix="creditbot-breakdown-") as tmp:
        return asyncio.run(run_breakdown(smoke, Path(tmp)))


def breakdown_markdown(r: dict[str, Any]) -> list[str]:
    """The scenario's rows in the benchmark table: one per backend and window, then the storage."""
    lines = []
    for backend in ("sqlite", "postgresql"):
        part = r.get(backend, {})
        if "figures" not in part:
            continue
        for window in (7, r["days"]):
            median = part["figures"][f"days_{window}_s"]["median"]
            lines.append(
                f"| `breakdown --days {window}` ({backend}), {r['accounts']} accounts, {r['days']} days stored "
                f"| {median * 1000:.0f} ms | < {GOAL_S * 1000:.0f} ms | {median / GOAL_S:.2f} | — |"
            )
        lines.append(
            f"| breakdown rows ({backend}) | {part['mb_per_account_year']:.2f} MB per account-year "
            f"({part['part_rows']:,} parts: {part['breakdown_bytes'] / 1e6:.1f} MB) | — | — | — |"
        )
    return lines
