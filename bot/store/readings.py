"""Readings and spend: every fetch attempt, the daily spend series, the top-up ledger, and pruning by age."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.models import BalanceSource, DailySpend, ErrorKind, Grant, LedgerEntry, ProviderReport, Reading
from bot.money import Money
from bot.schema import daily_spend, ledger, readings


@dataclass(frozen=True)
class AccountReadings:
    """The latest attempt and the latest good reading of one account."""

    latest: Reading | None
    latest_good: Reading | None


class ReadingStore:
    """Fetch attempts, daily spend and the ledger of top-ups."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add_reading(self, reading: Reading, spend: Sequence[DailySpend] = ()) -> None:
        """Record one fetch attempt and, for a good one, upsert its daily spend."""
        await self.add_readings([(reading, spend)])

    async def add_readings(self, items: Sequence[tuple[Reading, Sequence[DailySpend]]]) -> None:
        """Record a poll's fetch attempts in one transaction (one commit for a thousand accounts)."""
        if not items:
            return
        async with self.engine.begin() as connection:
            await connection.execute(readings.insert(), [reading_to_row(reading) for reading, _ in items])
            for reading, spend in items:
                if spend:
                    await self._upsert_spend(connection, reading.account, spend, reading.fetched_at)

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
        newest = [
            sa.select(sa.func.max(readings.c.id))
            .where(readings.c.account == name, readings.c.ok.is_(ok))
            .scalar_subquery()
            for name in names
            for ok in (True, False)
        ]
        async with self.engine.connect() as connection:
            rows = (
                (await connection.execute(sa.select(readings).where(readings.c.id.in_(newest)))).mappings().all()
            )
        result = {name: AccountReadings(None, None) for name in names}
        by_account: dict[str, list[Reading]] = {}
        for row in rows:
            by_account.setdefault(row["account"], []).append(row_to_reading(row))
        for name, items in by_account.items():
            items.sort(key=lambda r: r.fetched_at)  # the newest attempt last
            good = [r for r in items if r.ok]
            result[name] = AccountReadings(latest=items[-1], latest_good=good[-1] if good else None)
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

    async def balance_histories(
        self, accounts: Iterable[str], since: datetime
    ) -> dict[str, list[tuple[datetime, Money]]]:
        """Reported balances of several accounts since a time, oldest first (for burn from balance changes)."""
        names = list(accounts)
        result: dict[str, list[tuple[datetime, Money]]] = {name: [] for name in names}
        if not names:
            return result
        query = (
            sa.select(readings.c.account, readings.c.fetched_at, readings.c.balance, readings.c.currency)
            .where(
                readings.c.account.in_(names),
                readings.c.ok.is_(True),
                readings.c.fetched_at >= since,
                readings.c.balance.is_not(None),
            )
            .order_by(readings.c.fetched_at)
        )
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        for row in rows:
            result[row[0]].append((row[1], Money(Decimal(row[2]), row[3])))
        return result

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
        last_good = (
            sa.select(sa.func.max(readings.c.id))
            .where(readings.c.account == account, readings.c.ok.is_(True))
            .scalar_subquery()
        )
        query = sa.select(sa.func.count()).where(
            readings.c.account == account, readings.c.id > sa.func.coalesce(last_good, 0)
        )
        async with self.engine.connect() as connection:
            return int((await connection.execute(query)).scalar_one())

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

    async def prune(self, now: datetime, retention: timedelta, keep_spend_since: dict[str, date]) -> int:
        """Delete readings older than the retention, and daily spend no ledger still needs."""
        cutoff = now - retention
        async with self.engine.begin() as connection:
            deleted = (await connection.execute(readings.delete().where(readings.c.fetched_at < cutoff))).rowcount
            spend_cutoff = cutoff.date()
            condition = daily_spend.c.day < spend_cutoff
            for account, first_day in keep_spend_since.items():
                condition = condition & sa.not_(
                    (daily_spend.c.account == account) & (daily_spend.c.day >= min(first_day, spend_cutoff))
                )
            await connection.execute(daily_spend.delete().where(condition))
        return int(deleted or 0)


def _money(value: Money | None) -> str | None:
    return None if value is None else str(value.amount)


def _money_json(value: Money | None) -> dict[str, str] | None:
    return None if value is None else {"amount": str(value.amount), "currency": value.currency}


def _money_from(value: Any) -> Money | None:
    return None if value is None else Money(Decimal(value["amount"]), value["currency"])


def reading_to_row(reading: Reading) -> dict[str, Any]:
    """Columns for one reading; the daily series lives in its own table."""
    report = reading.report
    row: dict[str, Any] = {
        "account": reading.account,
        "provider": reading.provider,
        "fetched_at": reading.fetched_at,
        "ok": report is not None,
        "error": reading.error,
        "error_kind": reading.error_kind.value if reading.error_kind else None,
        # Every row has every column, so that a poll's readings can be inserted in one executemany.
        "currency": None,
        "balance": None,
        "balance_source": None,
        "spent_today": None,
        "spent_month": None,
        "report": None,
    }
    if report is not None:
        row.update(
            currency=report.currency,
            balance=_money(report.balance),
            balance_source=report.balance_source.value if report.balance_source else None,
            spent_today=_money(report.spent_today),
            spent_month=_money(report.spent_month),
            report={
                "balances": [_money_json(m) for m in report.balances],
                "granted_total": _money_json(report.granted_total),
                "grants": [
                    {
                        "granted": _money_json(g.granted),
                        "used": _money_json(g.used),
                        "expires_at": g.expires_at.isoformat() if g.expires_at else None,
                    }
                    for g in report.grants
                ],
                "notes": list(report.notes),
                "spent_month_through": (
                    report.spent_month_through.isoformat() if report.spent_month_through else None
                ),
            },
        )
    return row


def row_to_reading(row: Any) -> Reading:
    """The Reading stored in one row (without its daily series)."""
    report = None
    if row["ok"]:
        currency = row["currency"]
        extra = row["report"] or {}

        def money(column: str) -> Money | None:
            return None if row[column] is None else Money(Decimal(row[column]), currency)

        report = ProviderReport(
            currency=currency,
            balance=money("balance"),
            balance_source=BalanceSource(row["balance_source"]) if row["balance_source"] else None,
            balances=tuple(m for m in (_money_from(v) for v in extra.get("balances", [])) if m is not None),
            spent_today=money("spent_today"),
            spent_month=money("spent_month"),
            granted_total=_money_from(extra.get("granted_total")),
            grants=tuple(
                Grant(
                    granted=_money_from(g["granted"]) or Money.zero(currency),
                    used=_money_from(g["used"]) or Money.zero(currency),
                    expires_at=datetime.fromisoformat(g["expires_at"]).astimezone(UTC)
                    if g["expires_at"]
                    else None,
                )
                for g in extra.get("grants", [])
            ),
            notes=tuple(extra.get("notes", [])),
            spent_month_through=(
                date.fromisoformat(extra["spent_month_through"]) if extra.get("spent_month_through") else None
            ),
        )
    return Reading(
        account=row["account"],
        provider=row["provider"],
        fetched_at=row["fetched_at"],
        report=report,
        error=row["error"],
        error_kind=ErrorKind(row["error_kind"]) if row["error_kind"] else None,
    )
