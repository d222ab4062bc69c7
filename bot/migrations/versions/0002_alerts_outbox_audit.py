"""Alert states, the delivery outbox, the audit log, chat-set thresholds, snoozes and subscriptions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the runtime tables."""
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "alert_states",
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("rule", sa.String(32), nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("fired_level", sa.Integer, nullable=False),
        sa.Column("episode", sa.Integer, nullable=False),
        sa.Column("period", sa.String(16)),
        sa.Column("since", tz),
        sa.Column("notified_at", tz),
        sa.Column("reminders", sa.Integer, nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("updated_at", tz, nullable=False),
        sa.PrimaryKeyConstraint("account", "rule", name="pk_alert_states"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("message", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("not_before", tz, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("claimed_at", tz),
        sa.Column("sent_at", tz),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.UniqueConstraint("key", name="uq_outbox_key"),
    )
    op.create_index("ix_outbox_status_not_before", "outbox", ["status", "not_before"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", tz, nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("user", sa.String(128), nullable=False),
        sa.Column("channel", sa.String(128)),
        sa.Column("command", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_table(
        "threshold_overrides",
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("warn_below", sa.String(48)),
        sa.Column("critical_below", sa.String(48)),
        sa.Column("updated_by", sa.String(160), nullable=False),
        sa.Column("updated_at", tz, nullable=False),
        sa.PrimaryKeyConstraint("account", name="pk_threshold_overrides"),
    )
    op.create_table(
        "snoozes",
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("until", tz, nullable=False),
        sa.Column("updated_by", sa.String(160), nullable=False),
        sa.PrimaryKeyConstraint("account", name="pk_snoozes"),
    )
    op.create_table(
        "subscriptions",
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(128), nullable=False),
        sa.Column("daily_summary", sa.String(5)),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("alerts", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(160), nullable=False),
        sa.Column("created_at", tz, nullable=False),
        sa.PrimaryKeyConstraint("platform", "channel", name="pk_subscriptions"),
    )


def downgrade() -> None:
    """Drop the runtime tables."""
    for table in ("subscriptions", "snoozes", "threshold_overrides", "audit_log", "outbox", "alert_states"):
        op.drop_table(table)
