"""The creditbot database (SQLAlchemy Core, async): one `Store` with a part per concern, each returning typed
objects: `readings` (fetch attempts, spend, ledger), `outbox`, `alerts` (alert state) and `settings`."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.alert_states import AlertStateStore
from bot.store.database import MIGRATIONS_DIR, Database, StoreError, database_problem, is_database_error
from bot.store.outbox import NewMessage, OutboxItem, OutboxStore
from bot.store.readings import AccountReadings, ReadingStore, reading_to_row, row_to_reading
from bot.store.settings import AuditEntry, SettingsStore, Subscription, ThresholdOverride

__all__ = [
    "MIGRATIONS_DIR",
    "AccountReadings",
    "AuditEntry",
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
        self.readings = ReadingStore(engine)
        self.outbox = OutboxStore(engine)
        self.alerts = AlertStateStore(engine)
        self.settings = SettingsStore(engine)
