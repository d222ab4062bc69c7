"""Breakdowns: which days were asked for and answered, and each day's parts, replaced a day at a time."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.breakdown import BreakdownPart, BreakdownReport, Dimension
from bot.schema import breakdown_days, breakdown_parts
from bot.store.history import write_transaction

# Days per DELETE/INSERT statement when storing a long first fetch: well under every backend's parameter limit.
DAYS_PER_STATEMENT = 200


@dataclass(frozen=True, slots=True)
class BreakdownDay:
    """What is known about one account's breakdown on one UTC day."""

    day: date
    reported: bool  # the provider answered for the day (a day without parts then spent nothing)
    final: bool  # answered after the day had settled: never asked for again
    currency: str | None
    fetched_at: datetime
    total: Decimal | None = None  # the day's spend from the ungrouped costs, where the source gave it


@dataclass(slots=True)
class Answered:
    """The days one account's breakdown source answered for, with their totals and the newest currency."""

    days: set[date] = field(default_factory=set)
    totals: dict[date, Decimal] = field(default_factory=dict)  # from the ungrouped costs, where given
    currency: str | None = None


class BreakdownStore:
    """Breakdown days and parts."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def save(
        self, account: str, asked: Sequence[date], report: BreakdownReport, *, settled_before: date, now: datetime
    ) -> None:
        """Store what one fetch of `asked` days answered: the reported days' parts replace what was stored for
        them; a day asked but not reported (today, while the provider lags) is remembered as asked, and keeps
        nothing from an earlier answer. Days before `settled_before` are final."""
        reported = set(report.days)
        days = sorted(set(asked) | reported)
        async with write_transaction(self.engine) as connection:
            for start in range(0, len(days), DAYS_PER_STATEMENT):
                chunk = days[start : start + DAYS_PER_STATEMENT]
                where = (breakdown_days.c.account == account) & breakdown_days.c.day.in_(chunk)
                await connection.execute(breakdown_days.delete().where(where))
                # Every dimension named, so that the delete seeks the primary key (account, dimension, day).
                dimensions = breakdown_parts.c.dimension.in_([d.value for d in Dimension])
                await connection.execute(
                    breakdown_parts.delete().where(
                        (breakdown_parts.c.account == account) & dimensions & breakdown_parts.c.day.in_(chunk)
                    )
                )
            await connection.execute(
                breakdown_days.insert(),
                [
                    {
                        "account": account,
                        "day": day,
                        "reported": day in reported,
                        "final": day in reported and day < settled_before,
                        "currency": report.currency if day in reported else None,
                        "total": _text(report.totals.get(day)) if day in reported else None,
                        "fetched_at": now,
                    }
                    for day in days
                ],
            )
            rows = [_part_row(account, part) for part in report.parts if part.day in reported]
            if rows:
                await connection.execute(breakdown_parts.insert(), rows)

    async def days(self, accounts: Iterable[str], since: date, until: date) -> dict[str, dict[date, BreakdownDay]]:
        """The stored breakdown days of each account from `since` to `until`."""
        names = list(accounts)
        result: dict[str, dict[date, BreakdownDay]] = {name: {} for name in names}
        if not names:
            return result
        query = sa.select(breakdown_days).where(
            breakdown_days.c.account.in_(names), breakdown_days.c.day.between(since, until)
        )
        async with self.engine.connect() as connection:
            for row in (await connection.execute(query)).mappings():
                result[row["account"]][row["day"]] = BreakdownDay(
                    row["day"],
                    row["reported"],
                    row["final"],
                    row["currency"],
                    row["fetched_at"],
                    None if row["total"] is None else Decimal(row["total"]),
                )
        return result

    async def settled(
        self, accounts: Iterable[str], since: date, until: date, now: datetime, max_age: timedelta
    ) -> dict[str, set[date]]:
        """The days of each account that need no fetch: final, or asked for within `max_age` of `now`; a day
        before today only if that was after it ended (one last asked for while it ran is still partial)."""
        names = list(accounts)
        result: dict[str, set[date]] = {name: set() for name in names}
        if not names:
            return result
        c = breakdown_days.c
        today = now.astimezone(UTC).date()
        midnight = datetime.combine(today, time(0), tzinfo=UTC)
        fresh = (c.fetched_at > now - max_age) & ((c.fetched_at >= midnight) | (c.day >= today))
        condition = c.account.in_(names) & c.day.between(since, until) & (c.final | fresh)
        every_day = {since + timedelta(days=n) for n in range((until - since).days + 1)}
        # Usually every day is settled: counting says so in one short answer per account.
        counted = sa.select(c.account, sa.func.count()).where(condition).group_by(c.account)
        async with self.engine.connect() as connection:
            counts = dict((await connection.execute(counted)).tuples().all())
            partly = [name for name in names if counts.get(name, 0) not in (0, len(every_day))]
            rows: Sequence[Any] = []
            if partly:
                listed = sa.select(c.account, sa.type_coerce(c.day, sa.String)).where(
                    condition & c.account.in_(partly)
                )
                rows = (await connection.execute(listed)).tuples().all()
        for name in names:
            if counts.get(name) == len(every_day):
                result[name] = set(every_day)
        for account, day in rows:
            result[account].add(_date(day))
        return result

    async def answered(self, accounts: Iterable[str], since: date, until: date) -> dict[str, Answered]:
        """The days of each account the provider answered for, their totals, and the newest one's currency."""
        names = list(accounts)
        result = {name: Answered() for name in names}
        if not names:
            return result
        c = breakdown_days.c
        query = (
            sa.select(c.account, sa.type_coerce(c.day, sa.String), c.currency, c.total)
            .where(c.account.in_(names), c.day.between(since, until), c.reported)
            .order_by(c.day)
        )
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).tuples().all()
        for account, text, currency, total in rows:
            day = _date(text)
            answered = result[account]
            answered.days.add(day)
            answered.currency = currency
            if total is not None:
                answered.totals[day] = Decimal(total)
        return result

    async def parts(
        self, accounts: Iterable[str], dimension: Dimension, since: date, until: date
    ) -> dict[str, list[BreakdownPart]]:
        """The parts of one dimension for each account from `since` to `until`, oldest day first."""
        names = list(accounts)
        result: dict[str, list[BreakdownPart]] = {name: [] for name in names}
        if not names:
            return result
        c = breakdown_parts.c
        query = (
            sa.select(
                c.account,
                sa.type_coerce(c.day, sa.String),  # parsed below: much cheaper than the type's own processing
                c.key,
                c.label,
                c.cost,
                c.input_tokens,
                c.cached_input_tokens,
                c.output_tokens,
                c.requests,
            )
            .where(
                breakdown_parts.c.account.in_(names),
                breakdown_parts.c.day.between(since, until),
                breakdown_parts.c.dimension == dimension.value,
            )
            .order_by(breakdown_parts.c.day)
        )
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        # Plain tuples, built positionally: a 90-day table reads tens of thousands of rows.
        for account, day, key, label, cost, input_tokens, cached, output_tokens, requests in rows:
            result[account].append(
                BreakdownPart(
                    _date(day),
                    dimension,
                    key,
                    label,
                    None if cost is None else Decimal(cost),
                    input_tokens,
                    cached,
                    output_tokens,
                    requests,
                )
            )
        return result

    async def prune(self, before: date) -> None:
        """Forget breakdowns of days before `before` (the retention): an account per short transaction, each
        delete seeking its key (account, dimension, day) rather than scanning the tables."""
        async with self.engine.connect() as connection:
            accounts = list((await connection.execute(sa.select(breakdown_days.c.account).distinct())).scalars())
        dimensions = breakdown_parts.c.dimension.in_([d.value for d in Dimension])
        for account in accounts:
            async with self.engine.begin() as connection:
                await connection.execute(
                    breakdown_parts.delete().where(
                        breakdown_parts.c.account == account, dimensions, breakdown_parts.c.day < before
                    )
                )
                await connection.execute(
                    breakdown_days.delete().where(
                        breakdown_days.c.account == account, breakdown_days.c.day < before
                    )
                )


def _part_row(account: str, part: BreakdownPart) -> dict[str, Any]:
    return {
        "account": account,
        "day": part.day,
        "dimension": part.dimension.value,
        # The columns are 255 wide; a provider's line item never comes close, but must not fail the write.
        "key": part.key[:255],
        "label": part.label[:255],
        "cost": None if part.cost is None else str(part.cost),
        "input_tokens": part.input_tokens,
        "cached_input_tokens": part.cached_input_tokens,
        "output_tokens": part.output_tokens,
        "requests": part.requests,
    }


def _date(value: Any) -> date:
    """A day read without the Date type's processing: text on SQLite, a date already on PostgreSQL."""
    return value if isinstance(value, date) else date.fromisoformat(value)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
