"""History at day resolution in the database: `reading_days` kept up to date as readings are stored, the
background folding of readings stored before it existed, and housekeeping in small batches (retention, the
raw window, SQLite's free pages), so that no transaction holds the write lock for long."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.history import BalanceSpan, ReadingDay, fold, merge
from bot.models import ErrorKind, ProviderReport, Reading
from bot.money import Money
from bot.schema import reading_days, readings, settings_kv

log = logging.getLogger(__name__)

RAW_WINDOW = timedelta(days=8)  # readings kept attempt by attempt: the summary's day-ago comparison, and more
UNFOLDED_KEY = "history.unfolded_below"  # readings with a smaller id are not folded into reading_days yet
WRITE_LOCK_KEY = 0x63726564_72656164  # "credread": serialises writers of readings and days on PostgreSQL
BATCH_ROWS = 5000  # readings deleted per transaction: well under a second of write lock (about 0.25 s measured)
FOLD_ROWS = 2000  # readings folded per batch (the folding itself runs before the write lock is taken)
FOLDED_COLUMNS = (
    readings.c.id,
    readings.c.account,
    readings.c.provider,
    readings.c.fetched_at,
    readings.c.ok,
    readings.c.currency,
    readings.c.balance,
    readings.c.error,
    readings.c.error_kind,
)
PAUSE_SECONDS = 0.05  # between batches, so that other writers waiting on the lock get their turn
VACUUM_PAGES = 2000


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction that holds the write lock from its first statement, so that what it reads stays true
    until it commits (SQLite: BEGIN IMMEDIATE; PostgreSQL: a transaction-scoped advisory lock)."""
    async with engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            await connection.exec_driver_sql("BEGIN IMMEDIATE")
        elif connection.dialect.name == "postgresql":
            await connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITE_LOCK_KEY})
        yield connection


@dataclass
class Housekeeping:
    """What one housekeeping run did."""

    expired: int = 0  # readings older than the retention, deleted
    folded: int = 0  # readings from before reading_days existed, folded into it
    compacted: int = 0  # readings older than the raw window, deleted once folded
    freed_pages: int = 0
    finished: bool = True  # False when the time budget ran out first (the rest is done on the next run)


class HistoryStore:
    """Day rows, their folding and the batched housekeeping of readings."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._all_folded = False  # once true it stays true: new readings are folded as they are stored

    async def record(self, connection: AsyncConnection, new: Sequence[Reading]) -> None:
        """Fold newly stored readings into their days (inside the caller's write transaction)."""
        later = fold(new)
        stored = await _stored_days(connection, later)
        merge(stored, later)
        await _write_days(connection, later)

    async def unfolded_below(self, connection: AsyncConnection | None = None) -> int:
        """Readings with an id below this one are not folded into `reading_days` yet (0 or 1: none)."""
        if self._all_folded:
            return 0
        if connection is None:
            async with self.engine.connect() as own:
                below = await _cursor(own)
        else:
            below = await _cursor(connection)
        if below <= 1:
            self._all_folded = True
        return below

    async def days(self, accounts: Iterable[str], since: date) -> dict[str, list[ReadingDay]]:
        """The days of several accounts from `since` on, oldest first: a range read on (account, day), plus,
        while the background folding is under way, the readings it has not reached yet."""
        names = list(accounts)
        result: dict[str, list[ReadingDay]] = {name: [] for name in names}
        if not names:
            return result
        query = sa.select(reading_days).where(reading_days.c.account.in_(names), reading_days.c.day >= since)
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).mappings()
            stored = {(row["account"], row["day"]): _day(row) for row in rows}
            below = await self.unfolded_below(connection)
            if below > 1:
                raw = sa.select(*FOLDED_COLUMNS).where(
                    readings.c.account.in_(names),
                    readings.c.fetched_at >= datetime.combine(since, day_time(), UTC),
                    readings.c.id < below,
                )
                merge(fold(_folded_reading(r) for r in (await connection.execute(raw)).mappings()), stored)
        for (account, _day_key), day in sorted(stored.items(), key=lambda item: item[0][1]):
            result[account].append(day)
        return result

    async def fold_batch(self, batch: int = FOLD_ROWS) -> int:
        """Fold the newest batch of readings not folded yet into their days; returns how many (0: all done).

        Newest first, so that each batch is older than everything already in the days it joins, and a batch
        is all or nothing: killed half-way, the job starts again where the last committed batch ended."""
        if self._all_folded:
            return 0
        query = sa.select(*FOLDED_COLUMNS).where(readings.c.id < sa.bindparam("below"))
        async with self.engine.connect() as connection:
            below = await self.unfolded_below(connection)
            if below <= 1:
                return 0
            ordered = query.order_by(readings.c.id.desc()).limit(batch)
            rows = (await connection.execute(ordered, {"below": below})).mappings().all()
        # Folded before the write lock is taken: the lock covers only merging with the stored days and writing.
        earlier = fold(_folded_reading(row) for row in rows)
        lowest = min((row["id"] for row in rows), default=1)
        async with write_transaction(self.engine) as connection:
            if await _cursor(connection) != below:
                return max(len(rows), 1)  # another process folded these meanwhile: look again
            later = await _stored_days(connection, earlier)
            merge(earlier, later)
            await _write_days(connection, later)
            progress = settings_kv.update().where(settings_kv.c.key == UNFOLDED_KEY).values(value=str(lowest))
            await connection.execute(progress)
        if lowest <= 1:
            self._all_folded = True
        return len(rows)

    async def housekeeping(
        self, now: datetime, retention: timedelta, *, budget: float | None = None, pause: float = PAUSE_SECONDS
    ) -> Housekeeping:
        """Delete what the retention no longer keeps, fold old readings into days, drop folded readings older
        than the raw window, and give SQLite's free pages back: each in batches of a short transaction."""
        report = Housekeeping()
        deadline = None if budget is None else time.monotonic() + budget

        async def more() -> bool:
            if deadline is not None and time.monotonic() >= deadline:
                report.finished = False
                return False
            await asyncio.sleep(pause)
            return True

        cutoff = now - retention
        while (count := await self._delete_batch(readings.c.fetched_at < cutoff)) and await more():
            report.expired += count
        report.expired += count
        await self._prune_days(cutoff.date())
        while (count := await self.fold_batch()) and await more():
            report.folded += count
        report.folded += count
        if not report.finished or not self._all_folded:
            return _logged(report)
        protected = await self._newest_ids()
        old = (readings.c.fetched_at < now - RAW_WINDOW) & readings.c.id.not_in(protected)
        while (count := await self._delete_batch(old)) and await more():
            report.compacted += count
        report.compacted += count
        if report.finished:
            report.freed_pages = await self._give_space_back(more)
        return _logged(report)

    async def _delete_batch(self, condition: sa.ColumnElement[bool]) -> int:
        oldest = sa.select(readings.c.id).where(condition).order_by(readings.c.fetched_at).limit(BATCH_ROWS)
        async with self.engine.begin() as connection:
            ids = list((await connection.execute(oldest)).scalars())
            if ids:
                await connection.execute(readings.delete().where(readings.c.id.in_(ids)))
        return len(ids)

    async def _prune_days(self, before: date) -> None:
        async with self.engine.connect() as connection:
            oldest = (await connection.execute(sa.select(sa.func.min(reading_days.c.day)))).scalar()
        while oldest is not None and oldest < before:
            # A month of days per transaction: a few thousand rows for a few hundred accounts.
            oldest = min(oldest + timedelta(days=30), before)
            async with self.engine.begin() as connection:
                await connection.execute(reading_days.delete().where(reading_days.c.day < oldest))

    async def _newest_ids(self) -> list[int]:
        """Each account's newest attempt and newest good reading: kept whatever their age, since the views
        and the billing-source alert start from them."""
        newest = sa.select(sa.func.max(readings.c.id)).group_by(readings.c.account)
        good = newest.where(readings.c.ok.is_(True))
        async with self.engine.connect() as connection:
            ids = set((await connection.execute(newest)).scalars()) | set(
                (await connection.execute(good)).scalars()
            )
        return sorted(ids)

    async def _give_space_back(self, more: Any) -> int:
        """SQLite only: return free pages to the file system, a few megabytes per transaction (a database
        created before incremental vacuum existed here is converted once, when little is left in it)."""
        if self.engine.dialect.name != "sqlite":
            return 0
        freed = 0
        async with self.engine.connect() as connection:
            mode = (await connection.exec_driver_sql("PRAGMA auto_vacuum")).scalar()
            free = int((await connection.exec_driver_sql("PRAGMA freelist_count")).scalar() or 0)
            pages = int((await connection.exec_driver_sql("PRAGMA page_count")).scalar() or 0)
            if mode != 2 and free > 1000 and free * 2 > pages:
                log.info("converting the database to incremental vacuum (%d of %d pages free)", free, pages)
                await connection.exec_driver_sql("PRAGMA auto_vacuum=INCREMENTAL")
                await connection.exec_driver_sql("VACUUM")
                return free
            while mode == 2 and free > 0:
                await connection.exec_driver_sql(f"PRAGMA incremental_vacuum({VACUUM_PAGES})")
                await connection.commit()
                left = int((await connection.exec_driver_sql("PRAGMA freelist_count")).scalar() or 0)
                freed += free - left
                if left >= free or not await more():
                    break
                free = left
            await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return freed


async def _cursor(connection: AsyncConnection) -> int:
    """The stored `history.unfolded_below` (0 when there is none: nothing was ever waiting)."""
    query = sa.select(settings_kv.c.value).where(settings_kv.c.key == UNFOLDED_KEY)
    value = (await connection.execute(query)).scalar()
    return int(value) if value is not None else 0


def _logged(report: Housekeeping) -> Housekeeping:
    if report.expired or report.folded or report.compacted or report.freed_pages:
        log.info(
            "housekeeping: %d readings past the retention deleted, %d folded into days, %d past the raw window "
            "deleted, %d free pages returned%s",
            report.expired,
            report.folded,
            report.compacted,
            report.freed_pages,
            "" if report.finished else " (to be continued)",
        )
    return report


def _folded_reading(row: Any) -> Reading:
    """What folding needs of a stored reading: its time, outcome and balance (not the rest of its report)."""
    report = None
    if row["ok"]:
        balance = None if row["balance"] is None else Money(Decimal(row["balance"]), row["currency"])
        report = ProviderReport(row["currency"], balance=balance)
    kind = ErrorKind(row["error_kind"]) if row["error_kind"] else None
    return Reading(row["account"], row["provider"], row["fetched_at"], report, row["error"], kind)


def _keys_condition(keys: Iterable[tuple[str, date]]) -> sa.ColumnElement[bool]:
    wanted = list(keys)
    accounts = sorted({account for account, _ in wanted})
    days = sorted({day for _, day in wanted})
    # A superset (every account on every day named) that one index range read answers; the caller filters.
    return reading_days.c.account.in_(accounts) & reading_days.c.day.in_(days)


async def _stored_days(
    connection: AsyncConnection, wanted: dict[tuple[str, date], ReadingDay]
) -> dict[tuple[str, date], ReadingDay]:
    if not wanted:
        return {}
    rows = (await connection.execute(sa.select(reading_days).where(_keys_condition(wanted)))).mappings()
    return {key: _day(row) for row in rows if (key := (row["account"], row["day"])) in wanted}


async def _write_days(connection: AsyncConnection, days: dict[tuple[str, date], ReadingDay]) -> None:
    if not days:
        return
    exact = sa.tuple_(reading_days.c.account, reading_days.c.day).in_(list(days))
    await connection.execute(reading_days.delete().where(_keys_condition(days), exact))
    await connection.execute(reading_days.insert(), [_row(day) for day in days.values()])


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _row(day: ReadingDay) -> dict[str, Any]:
    span = day.balance
    return {
        "account": day.account,
        "day": day.day,
        "attempts": day.attempts,
        "failures": day.failures,
        "first_at": day.first_at,
        "last_at": day.last_at,
        "last_ok": day.last_ok,
        "last_error": day.last_error,
        "last_error_kind": day.last_error_kind,
        "currency": span.currency if span else None,
        "balance_first": _money(span.first) if span else None,
        "balance_last": _money(span.last) if span else None,
        "balance_min": _money(span.low) if span else None,
        "balance_max": _money(span.high) if span else None,
        "balance_first_at": span.first_at if span else None,
        "balance_last_at": span.last_at if span else None,
        "balance_drops": _money(span.drops) if span else None,
    }


def _day(row: Any) -> ReadingDay:
    span = None
    if row["currency"] is not None and row["balance_last"] is not None:
        span = BalanceSpan(
            row["currency"],
            Decimal(row["balance_first"]),
            Decimal(row["balance_last"]),
            Decimal(row["balance_min"]),
            Decimal(row["balance_max"]),
            row["balance_first_at"],
            row["balance_last_at"],
            Decimal(row["balance_drops"]),
        )
    return ReadingDay(
        row["account"],
        row["day"],
        row["attempts"],
        row["failures"],
        row["first_at"],
        row["last_at"],
        row["last_ok"],
        row["last_error"],
        row["last_error_kind"],
        span,
    )
