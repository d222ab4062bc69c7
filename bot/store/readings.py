"""Readings and spend: every fetch attempt, the daily spend series, the top-up ledger, and pruning by age."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.models import DailySpend, LedgerEntry, Reading
from bot.money import Money
from bot.schema import daily_spend, ledger, readings
from bot.store.history import HistoryStore, write_transaction
from bot.store.rows import reading_to_row, row_to_reading


@dataclass(frozen=True)
class AccountReadings:
    """The latest attempt and the latest good reading of one account."""

    latest: Reading | None
    latest_good: Reading | None
    streak: int | None = None  # failed attempts in a row up to the latest (None: stored before it was counted)


class ReadingStore:
    """Fetch attempts, daily spend and the ledger of top-ups."""

    def __init__(self, engine: AsyncEngine, history: HistoryStore) -> None:
        self.engine = engine
        self.history = history

    async def add_reading(self, reading: Reading, spend: Sequence[DailySpend] = ()) -> None:
        """Record one fetch attempt and, for a good one, upsert its daily spend."""
        await self.add_readings([(reading, spend)])

    async def add_readings(self, items: Sequence[tuple[Reading, Sequence[DailySpend]]]) -> None:
        """Record a poll's fetch attempts in one transaction (one commit for a thousand accounts), each with its
        failure streak, and fold them into their days."""
        if not items:
            return
        ordered = sorted((reading for reading, _ in items), key=lambda r: r.fetched_at)
        async with write_transaction(self.engine) as connection:
            streaks = await self._streaks(connection, {r.account for r in ordered if not r.ok})
            rows = []
            for reading in ordered:
                streak = 0 if reading.ok else streaks.get(reading.account, 0) + 1
                streaks[reading.account] = streak
                rows.append({**reading_to_row(reading), "streak": streak})
            await connection.execute(readings.insert(), rows)
            await self.history.record(connection, ordered)
            for reading, spend in items:
                if spend:
                    await self._upsert_spend(connection, reading.account, spend, reading.fetched_at)

    async def _streaks(self, connection: AsyncConnection, accounts: set[str]) -> dict[str, int]:
        """The failure streak of each account's newest attempt (counted the slow way, once, for an attempt
        stored before streaks were)."""
        if not accounts:
            return {}
        newest = sa.select(sa.func.max(readings.c.id)).where(readings.c.account.in_(sorted(accounts)))
        query = sa.select(readings.c.account, readings.c.ok, readings.c.streak).where(
            readings.c.id.in_(newest.group_by(readings.c.account))
        )
        streaks = {}
        for account, ok, streak in (await connection.execute(query)).all():
            if streak is None:
                streak = 0 if ok else await _counted_streak(connection, account)
            streaks[account] = int(streak)
        return streaks

    async def _upsert_spend(
        self, connection: AsyncConnection, account: str, spend: Sequence[DailySpend], now: datetime
    ) -> None:
        days = [entry.day for entry in spend]
        await connection.execute(
            daily_spend.delete().where(daily_spend.c.account == account, daily_spend.c.day.in_(days))
        )
        await connection.execute(
            daily_spend.insert(),
            [
                {
                    "account": account,
                    "day": e.day,
                    "currency": e.amount.currency,
                    "amount": str(e.amount.amount),
                    "updated_at": now,
                }
                for e in spend
            ],
        )

    async def latest_readings(self, accounts: Iterable[str]) -> dict[str, AccountReadings]:
        """For each account, its latest attempt and its latest good reading."""
        names = list(accounts)
        if not names:
            return {}
        # Each account's newest good and newest failed reading, each one seek at the end of its part of the
        # (account, ok, id) index: the cost does not grow with the history.
        async with self.engine.connect() as connection:
            query = _newest_lateral(names) if connection.dialect.name == "postgresql" else _newest_seeks(names)
            rows = (await connection.execute(query)).mappings().all()
        result = {name: AccountReadings(None, None) for name in names}
        by_account: dict[str, list[tuple[Reading, int | None]]] = {}
        for row in rows:
            by_account.setdefault(row["account"], []).append((row_to_reading(row), row["streak"]))
        for name, items in by_account.items():
            items.sort(key=lambda item: item[0].fetched_at)  # the newest attempt last
            good = [r for r, _ in items if r.ok]
            latest, streak = items[-1]
            result[name] = AccountReadings(latest, good[-1] if good else None, streak)
        return result

    async def shown_currencies(self, accounts: Iterable[str]) -> dict[str, str]:
        """The currency of each account's newest good reading (one cheap statement for any number of accounts)."""
        names = list(accounts)
        if not names:
            return {}
        newest = (
            sa.select(sa.func.max(readings.c.id))
            .where(readings.c.account.in_(names), readings.c.ok.is_(True))
            .group_by(readings.c.account)
        )
        query = sa.select(readings.c.account, readings.c.currency).where(readings.c.id.in_(newest))
        async with self.engine.connect() as connection:
            return {account: currency for account, currency in (await connection.execute(query)).all()}

    async def has_readings_before(self, when: datetime) -> bool:
        """True when any account was fetched before a time (the bot was already at work then)."""
        query = sa.select(readings.c.id).where(readings.c.fetched_at < when).limit(1)
        async with self.engine.connect() as connection:
            return (await connection.execute(query)).first() is not None

    async def balances_near(
        self, accounts: Iterable[str], when: datetime, window: timedelta
    ) -> dict[str, tuple[datetime, Money]]:
        """For each account, the reported balance read nearest to `when`, within `window` either side."""
        names = list(accounts)
        if not names:
            return {}
        query = sa.select(
            readings.c.account, readings.c.fetched_at, readings.c.balance, readings.c.currency
        ).where(
            readings.c.account.in_(names),
            readings.c.ok.is_(True),
            readings.c.balance.is_not(None),
            readings.c.fetched_at.between(when - window, when + window),
        )
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        nearest: dict[str, tuple[datetime, Money]] = {}
        for account, at, balance, currency in rows:
            if account not in nearest or abs(at - when) < abs(nearest[account][0] - when):
                nearest[account] = (at, Money(Decimal(balance), currency))
        return nearest

    async def failure_streak(self, account: str) -> int:
        """How many attempts in a row have failed, counting back from the latest."""
        async with self.engine.connect() as connection:
            return await _counted_streak(connection, account)

    async def daily_spends(self, since: dict[str, date]) -> dict[str, list[DailySpend]]:
        """`daily_spend` of several accounts in one query, each from its own first day."""
        result: dict[str, list[DailySpend]] = {name: [] for name in since}
        if not since:
            return result
        query = (
            sa.select(daily_spend.c.account, daily_spend.c.day, daily_spend.c.amount, daily_spend.c.currency)
            .where(daily_spend.c.account.in_(list(since)), daily_spend.c.day >= min(since.values()))
            .order_by(daily_spend.c.day)
        )
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        for row in rows:
            if row[1] >= since[row[0]]:
                result[row[0]].append(DailySpend(row[1], Money(Decimal(row[2]), row[3])))
        return result

    async def spend_coverage(self, accounts: Iterable[str]) -> dict[str, tuple[date, date]]:
        """First and last stored spend day per account."""
        names = list(accounts)
        query = (
            sa.select(daily_spend.c.account, sa.func.min(daily_spend.c.day), sa.func.max(daily_spend.c.day))
            .where(daily_spend.c.account.in_(names))
            .group_by(daily_spend.c.account)
        )
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return {row[0]: (row[1], row[2]) for row in rows}

    async def add_ledger_entry(self, entry: LedgerEntry) -> int:
        """Record a top-up and return its id."""
        async with self.engine.begin() as connection:
            result = await connection.execute(
                ledger.insert().values(
                    account=entry.account,
                    amount=str(entry.amount.amount),
                    currency=entry.amount.currency,
                    on_day=entry.on_day,
                    source=entry.source,
                    recorded_at=entry.recorded_at,
                )
            )
            key = result.inserted_primary_key
            return int(key[0]) if key else 0

    async def ledger_entries(self, accounts: Iterable[str]) -> dict[str, list[LedgerEntry]]:
        """Recorded top-ups per account, oldest first."""
        names = list(accounts)
        query = sa.select(ledger).where(ledger.c.account.in_(names)).order_by(ledger.c.on_day, ledger.c.id)
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).mappings().all()
        result: dict[str, list[LedgerEntry]] = {name: [] for name in names}
        for row in rows:
            result[row["account"]].append(
                LedgerEntry(
                    account=row["account"],
                    amount=Money(Decimal(row["amount"]), row["currency"]),
                    on_day=row["on_day"],
                    source=row["source"],
                    recorded_at=row["recorded_at"],
                    entry_id=row["id"],
                )
            )
        return result

    async def prune_spend(self, now: datetime, retention: timedelta, keep_spend_since: dict[str, date]) -> None:
        """Delete daily spend older than the retention that no ledger still needs (one row per account-day)."""
        spend_cutoff = (now - retention).date()
        condition = daily_spend.c.day < spend_cutoff
        for account, first_day in keep_spend_since.items():
            condition = condition & sa.not_(
                (daily_spend.c.account == account) & (daily_spend.c.day >= min(first_day, spend_cutoff))
            )
        async with self.engine.begin() as connection:
            await connection.execute(daily_spend.delete().where(condition))


async def _counted_streak(connection: AsyncConnection, account: str) -> int:
    """Failed attempts since the newest good reading, counted row by row."""
    newest = await connection.execute(
        sa.select(readings.c.streak, readings.c.ok)
        .where(readings.c.account == account)
        .order_by(readings.c.id.desc())
        .limit(1)
    )
    row = newest.first()
    if row is not None and row[0] is not None:
        return 0 if row[1] else int(row[0])
    last_good = (
        sa.select(sa.func.max(readings.c.id))
        .where(readings.c.account == account, readings.c.ok.is_(True))
        .scalar_subquery()
    )
    query = sa.select(sa.func.count()).where(
        readings.c.account == account, readings.c.id > sa.func.coalesce(last_good, 0)
    )
    return int((await connection.execute(query)).scalar_one())


def _newest_seeks(names: Sequence[str]) -> sa.Select[Any]:
    """The newest good and failed reading of each account: one scalar subquery (an index seek) each."""
    newest = [
        sa.select(sa.func.max(readings.c.id))
        .where(readings.c.account == name, readings.c.ok.is_(ok))
        .scalar_subquery()
        for name in names
        for ok in (True, False)
    ]
    return sa.select(readings).where(readings.c.id.in_(newest))


def _newest_lateral(names: Sequence[str]) -> sa.CompoundSelect[Any]:
    """The same on PostgreSQL as a lateral join over the names: the same seeks, but one small plan (hundreds of
    scalar subqueries cost PostgreSQL more to plan than to run)."""
    listed = sa.values(sa.column("name", sa.String), name="names").data([(name,) for name in names])

    def newest(ok: bool) -> sa.Select[Any]:
        one = (
            sa.select(readings)
            .where(readings.c.account == listed.c.name, readings.c.ok.is_(ok))
            .order_by(readings.c.id.desc())
            .limit(1)
            .lateral()
        )
        return sa.select(one).select_from(listed.join(one, sa.true()))

    return sa.union_all(newest(True), newest(False))
