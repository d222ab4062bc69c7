"""The outbox: every message waits here under a unique key, is claimed, sent, then marked."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.schema import charts, outbox

WAITING = ("pending", "claimed")


@dataclass(frozen=True)
class NewMessage:
    """A message to queue: its unique key, where it goes, what it is, and when it may go out."""

    key: str
    platform: str
    channel: str
    kind: str  # "alert", "summary" or "test"
    severity: str
    message: dict[str, Any]  # `Message.to_json()`, plus what the kind needs (a summary's values)
    not_before: datetime


@dataclass(frozen=True)
class OutboxItem:
    """A message waiting to be delivered (or delivered)."""

    id: int
    key: str
    platform: str
    channel: str
    kind: str
    severity: str
    message: dict[str, Any]
    status: str
    attempts: int
    not_before: datetime
    last_error: str | None = None
    created_at: datetime | None = None
    claimed_at: datetime | None = None  # the last attempt


class OutboxStore:
    """Queueing, claiming and marking messages; a duplicate key is never queued twice."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def enqueue(self, message: NewMessage, *, now: datetime) -> bool:
        """Queue a message unless one with the same key exists; True when queued."""
        try:
            async with self.engine.begin() as connection:
                await _insert(connection, [message], now)
        except IntegrityError:
            return False
        return True

    async def enqueue_many(self, messages: Sequence[NewMessage], *, now: datetime) -> list[str]:
        """Queue several messages in one transaction, skipping keys that exist; returns the keys queued."""
        if not messages:
            return []
        existing = await self.existing_keys(m.key for m in messages)
        fresh = [m for m in messages if m.key not in existing]
        if not fresh:
            return []
        try:
            async with self.engine.begin() as connection:
                await _insert(connection, fresh, now)
        except IntegrityError:
            # Another process queued some of them meanwhile: fall back to one at a time.
            return [m.key for m in fresh if await self.enqueue(m, now=now)]
        return [m.key for m in fresh]

    async def open_messages(self, now: datetime, lease: timedelta, limit: int = 1000) -> list[OutboxItem]:
        """Messages not delivered yet (pending, or claimed by a process that gave no sign for a lease), oldest
        first, whether due or not."""
        query = (
            _with_charts()
            .where(
                sa.or_(
                    outbox.c.status == "pending",
                    (outbox.c.status == "claimed") & (outbox.c.claimed_at < now - lease),
                )
            )
            .order_by(outbox.c.id)
            .limit(limit)
        )
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).mappings().all()
        return [_outbox_item(row) for row in rows]

    async def claimed_channels(self, since: datetime) -> set[tuple[str, str]]:
        """Channels (platform, channel) with a message claimed at or after `since`: being sent now, or left
        claimed by a process that died while sending it."""
        query = (
            sa.select(outbox.c.platform, outbox.c.channel)
            .where(outbox.c.status == "claimed", outbox.c.claimed_at >= since)
            .distinct()
        )
        async with self.engine.connect() as connection:
            return {(row[0], row[1]) for row in (await connection.execute(query)).all()}

    async def mark_skipped(self, item_id: int, reason: str) -> None:
        """Record that a message was deliberately not sent (e.g. its account was snoozed meanwhile)."""
        async with self.engine.begin() as connection:
            await connection.execute(
                outbox.update().where(outbox.c.id == item_id).values(status="skipped", last_error=reason)
            )
            await _drop_unneeded_charts(connection)

    async def claim(self, item: OutboxItem, now: datetime, lease: timedelta) -> bool:
        """Take a message for sending; False when someone else has it."""
        condition = (outbox.c.id == item.id) & sa.or_(
            outbox.c.status == "pending", (outbox.c.status == "claimed") & (outbox.c.claimed_at < now - lease)
        )
        async with self.engine.begin() as connection:
            result = await connection.execute(
                outbox.update()
                .where(condition)
                .values(status="claimed", claimed_at=now, attempts=outbox.c.attempts + 1)
            )
        return bool(result.rowcount)

    async def mark_sent(self, item_id: int, now: datetime) -> None:
        """Record a successful delivery."""
        async with self.engine.begin() as connection:
            await connection.execute(
                outbox.update().where(outbox.c.id == item_id).values(status="sent", sent_at=now)
            )
            await _drop_unneeded_charts(connection)

    async def mark_failed(self, item_id: int, error: str, retry_at: datetime | None) -> None:
        """Record a failed attempt: back to pending for a retry, or failed for good."""
        values: dict[str, Any] = {"last_error": error[:1000]}
        values.update(status="pending", not_before=retry_at) if retry_at else values.update(status="failed")
        async with self.engine.begin() as connection:
            await connection.execute(outbox.update().where(outbox.c.id == item_id).values(**values))
            if retry_at is None:
                await _drop_unneeded_charts(connection)

    async def items(self, kind: str | None = None) -> list[OutboxItem]:
        """Every outbox row (optionally of one kind), oldest first."""
        query = _with_charts().order_by(outbox.c.id)
        if kind:
            query = query.where(outbox.c.kind == kind)
        async with self.engine.connect() as connection:
            return [_outbox_item(row) for row in (await connection.execute(query)).mappings().all()]

    async def prune(self, before: datetime, batch: int = 500) -> int:
        """Delete delivered, failed and skipped messages queued before a time, a batch per transaction (so the
        write lock is held briefly); messages still waiting are kept whatever their age."""
        done = ("sent", "failed", "skipped")
        deleted = 0
        while True:
            oldest = (
                sa.select(outbox.c.id)
                .where(outbox.c.status.in_(done), outbox.c.created_at < before)
                .order_by(outbox.c.id)
                .limit(batch)
            )
            async with self.engine.begin() as connection:
                ids = list((await connection.execute(oldest)).scalars())
                if ids:
                    await connection.execute(outbox.delete().where(outbox.c.id.in_(ids)))
            deleted += len(ids)
            if len(ids) < batch:
                return deleted

    async def undelivered(self, limit: int = 100) -> list[OutboxItem]:
        """Messages that failed for good, and those still waiting after a failed attempt, newest first (without
        their charts: only the listing is wanted)."""
        query = (
            sa.select(outbox)
            .where(
                sa.or_(
                    outbox.c.status == "failed",
                    (outbox.c.status.in_(WAITING)) & (outbox.c.last_error.is_not(None)),
                )
            )
            .order_by(outbox.c.id.desc())
            .limit(limit)
        )
        async with self.engine.connect() as connection:
            return [_outbox_item(row) for row in (await connection.execute(query)).mappings().all()]

    async def existing_keys(self, keys: Iterable[str]) -> set[str]:
        """Which of these outbox keys were ever queued."""
        wanted = list(keys)
        if not wanted:
            return set()
        async with self.engine.connect() as connection:
            rows = await connection.execute(sa.select(outbox.c.key).where(outbox.c.key.in_(wanted)))
            return set(rows.scalars())


async def _insert(connection: AsyncConnection, messages: Sequence[NewMessage], now: datetime) -> None:
    """Queue messages; a chart they carry is stored once, however many channels' rows share it."""
    rows = []
    pngs: dict[str, bytes] = {}
    for message in messages:
        row: dict[str, Any] = {**asdict(message), "status": "pending", "attempts": 0, "created_at": now}
        row["chart_key"] = None
        if chart := message.message.get("chart"):
            png = base64.b64decode(chart)
            row["chart_key"] = hashlib.sha256(png).hexdigest()
            row["message"] = {**message.message, "chart": None}
            pngs[row["chart_key"]] = png
        rows.append(row)
    if pngs:
        dialect = connection.dialect.name
        insert: Any = postgresql.insert(charts) if dialect == "postgresql" else sqlite.insert(charts)
        await connection.execute(
            insert.on_conflict_do_nothing(index_elements=["key"]),
            [{"key": key, "png": png, "created_at": now} for key, png in pngs.items()],
        )
    await connection.execute(outbox.insert(), rows)


async def _drop_unneeded_charts(connection: AsyncConnection) -> None:
    """Delete the charts that no message still waiting to go out refers to."""
    needed = sa.select(outbox.c.chart_key).where(outbox.c.status.in_(WAITING), outbox.c.chart_key.is_not(None))
    await connection.execute(charts.delete().where(charts.c.key.not_in(needed)))


def _with_charts() -> sa.Select[Any]:
    return sa.select(outbox, charts.c.png).select_from(
        outbox.outerjoin(charts, outbox.c.chart_key == charts.c.key)
    )


def _outbox_item(row: Any) -> OutboxItem:
    message = row["message"]
    if row["chart_key"] is not None and row.get("png") is not None:
        message = {**message, "chart": base64.b64encode(row["png"]).decode()}
    return OutboxItem(
        id=row["id"],
        key=row["key"],
        platform=row["platform"],
        channel=row["channel"],
        kind=row["kind"],
        severity=row["severity"],
        message=message,
        status=row["status"],
        attempts=row["attempts"],
        not_before=row["not_before"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        claimed_at=row["claimed_at"],
    )
