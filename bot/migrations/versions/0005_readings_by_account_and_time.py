"""Readings are read by account and time range (balance histories, the reading nearest a time).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Index readings on (account, fetched_at)."""
    op.create_index("ix_readings_account_fetched_at", "readings", ["account", "fetched_at"])


def downgrade() -> None:
    """Drop the index."""
    op.drop_index("ix_readings_account_fetched_at", table_name="readings")
