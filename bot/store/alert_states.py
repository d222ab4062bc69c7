"""Alert state: where each rule of each account stands, kept between polls and restarts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.models import AlertState, Rule
from bot.schema import alert_states


class AlertStateStore:
    """Loads and replaces `AlertState`s; the only place that knows their row shape."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def load(self) -> list[AlertState]:
        """Every stored alert state."""
        async with self.engine.connect() as connection:
            rows = (await connection.execute(sa.select(alert_states))).mappings().all()
        return [_state(row) for row in rows]

    async def save(self, states: Sequence[AlertState], *, now: datetime) -> None:
        """Replace the given (account, rule) states in one transaction."""
        if not states:
            return
        keys = sorted({(state.account, state.rule.value) for state in states})
        async with self.engine.begin() as connection:
            # One statement for any number of accounts (a poll saves every account's states).
            await connection.execute(
                alert_states.delete().where(sa.tuple_(alert_states.c.account, alert_states.c.rule).in_(keys))
            )
            await connection.execute(alert_states.insert(), [{**_row(s), "updated_at": now} for s in states])


def _state(row: Any) -> AlertState:
    values = {f.name: row[f.name] for f in fields(AlertState)}
    return AlertState(**{**values, "rule": Rule(row["rule"]), "suppressed": bool(row["suppressed"])})


def _row(state: AlertState) -> dict[str, Any]:
    return {**asdict(state), "rule": state.rule.value}
