"""Where the money goes: spend, tokens and requests per account, UTC day and dimension (model, project, line
item, API key), as the providers' grouped billing reports give them. Value objects only; the store keeps
them (`bot.store.breakdowns`), `bot.breakdown_table` turns them into tables, drivers and series."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum


class Dimension(StrEnum):
    """What a breakdown is grouped by (`creditbot breakdown --by`)."""

    MODEL = "model"
    PROJECT = "project"  # OpenAI projects, Anthropic workspaces
    LINE_ITEM = "line_item"  # the provider's own line: model and token type
    KEY = "key"  # API keys: tokens and requests only, the sources give no money per key


UNATTRIBUTED = "unattributed"  # the key of the remainder the parts do not explain


@dataclass(frozen=True, slots=True)
class BreakdownPart:
    """One entry of one day: its cost in the report's currency and the usage behind it, where known.

    `cost` is None where the source gives no money for the dimension (API keys) or the entry appears only in
    the usage report; a token count is None where the source does not count it. `input_tokens` counts input
    as the provider counts it in total; `cached_input_tokens` is the cached part of it.
    """

    day: date
    dimension: Dimension
    key: str  # the provider's id ("gpt-4o", "proj_abc", "wrkspc_01", a line item as written)
    label: str  # the name shown: a project's or workspace's name where the API gives it, else the key
    cost: Decimal | None = None
    input_tokens: int | None = None
    cached_input_tokens: int | None = None
    output_tokens: int | None = None
    requests: int | None = None


@dataclass(frozen=True, slots=True)
class BreakdownReport:
    """What one breakdown fetch learned: the parts of every day it covered, `since` to `through`.

    `days` lists the UTC days the provider answered for (a covered day without parts spent nothing);
    today is among them only when the provider reported something for it (it lags, and a partial day is
    labelled so when shown). `dimensions` are the ones this source breaks down by. `totals` is each covered
    day's spend from the source's ungrouped costs, which the parts are reconciled with.
    """

    currency: str
    days: tuple[date, ...]
    parts: tuple[BreakdownPart, ...]
    dimensions: frozenset[Dimension]
    totals: Mapping[date, Decimal] = field(default_factory=dict)
