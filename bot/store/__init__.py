"""The creditbot database (SQLAlchemy Core, async): one `Store` with a part per concern, each returning typed
objects: `readings` (fetch attempts, spend, ledger), `history` (readings per day, housekeeping), `outbox`,
`alerts` (alert state), `settings` and `breakdowns` (where the money goes)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.alert_states import AlertStateStore
from bot.store.breakdowns import Answered, BreakdownDay, BreakdownStore
from bot.store.database import MIGRATIONS_DIR, Database, StoreError, database_problem, is_database_error
from bot.store.history import HistoryStore, Housekeeping
from bot.store.outbox import NewMessage, OutboxItem, OutboxStore
from bot.store.readings import AccountReadings, ReadingStore
from bot.store.rows import reading_to_row, row_to_reading
from bot.store.settings import AuditEntry, SettingsStore, Subscription, ThresholdOverride

__all__ = [
    "MIGRATIONS_DIR",
    "AccountReadings",
    "Answered",
    "AuditEntry",
    "BreakdownDay",
    "Housekeeping",
    "NewMessage",
    "OutboxItem",
    "Store",
    "StoreError",
    "Subscription",
    "ThresholdOverride",
    "database_problem",
    "is_database_error",
    "reading_to_row",
    "row_to_reading",
]


class Store(Database):
    """The open database and its parts."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self.history = HistoryStore(engine)
        self.readings = ReadingStore(engine, self.history)
        self.outbox = OutboxStore(engine)
        self.alerts = AlertStateStore(engine)
        self.settings = SettingsStore(engine)
        self.breakdowns = BreakdownStore(engine)
