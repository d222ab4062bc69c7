"""History costs one row per account and day: the daily rollup of readings, each reading's failure streak, and
summary charts stored once per fan-out.

The existing readings are folded into `reading_days` afterwards, in small batches by the leader
(`bot.store.history`), from the newest down; `history.unfolded_below` holds how far it has come, and reads
fold the rows below it themselves meanwhile. The upgrade itself only changes the schema: one transaction.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

MONEY = sa.String(48)


def upgrade() -> None:
    """Create `reading_days` and `charts`; add `readings.streak` and `outbox.chart_key`; mark what to fold."""
    op.create_table(
        "reading_days",
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_ok", sa.Boolean, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("last_error_kind", sa.String(16)),
        sa.Column("currency", sa.String(3)),
        sa.Column("balance_first", MONEY),
        sa.Column("balance_last", MONEY),
        sa.Column("balance_min", MONEY),
        sa.Column("balance_max", MONEY),
        sa.Column("balance_first_at", sa.DateTime(timezone=True)),
        sa.Column("balance_last_at", sa.DateTime(timezone=True)),
        sa.Column("balance_drops", MONEY),
        sa.PrimaryKeyConstraint("account", "day", name="pk_reading_days"),
    )
    op.create_table(
        "charts",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("png", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_charts"),
    )
    op.add_column("readings", sa.Column("streak", sa.Integer))
    op.add_column("outbox", sa.Column("chart_key", sa.String(64)))
    op.create_index("ix_outbox_chart_key", "outbox", ["chart_key"])
    # Every reading stored so far waits to be folded (ids below this one); new readings are folded as stored.
    op.execute(
        "INSERT INTO settings_kv (key, value) "
        "SELECT 'history.unfolded_below', CAST(COALESCE(MAX(id), 0) + 1 AS VARCHAR(20)) FROM readings"
    )


def downgrade() -> None:
    """Drop what the upgrade added."""
    op.execute("DELETE FROM settings_kv WHERE key = 'history.unfolded_below'")
    op.drop_index("ix_outbox_chart_key", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("chart_key")
    with op.batch_alter_table("readings") as batch:
        batch.drop_column("streak")
    op.drop_table("charts")
    op.drop_table("reading_days")
