"""Currency columns hold unit words too ("characters", "diem", "tokens", "credits"), not only ISO codes.

SQLite does not enforce a VARCHAR length, so only PostgreSQL needs the change (widening a varchar there
rewrites nothing).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

COLUMNS = (("readings", True), ("reading_days", True), ("daily_spend", False), ("ledger", False))


def upgrade() -> None:
    """Widen every currency column to 16 characters."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, nullable in COLUMNS:
        op.alter_column(
            table, "currency", type_=sa.String(16), existing_type=sa.String(3), existing_nullable=nullable
        )


def downgrade() -> None:
    """Narrow them again (fails while a unit word is stored)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, nullable in COLUMNS:
        op.alter_column(
            table, "currency", type_=sa.String(3), existing_type=sa.String(16), existing_nullable=nullable
        )
