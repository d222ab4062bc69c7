"""Spend stacked by model: the last 30 complete days of each account as bars, the top 5 models and the rest as
"other" (`credits chart [account] models`); matplotlib is imported only when drawing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from bot.breakdown import Dimension
from bot.breakdown_service import gives, missing_note
from bot.breakdown_table import OTHER_LABEL, stacked, window
from bot.chart import (
    DPI,
    GREY,
    HEADLINE_PT,
    MAX_PANELS,
    NOTE_PT,
    PALETTE,
    TICK_PT,
    TITLE_PT,
    WIDTH_IN,
    _finite,
    _money,
    _png,
    _utc,
    money_and_day_axes,
)
from bot.models import Account
from bot.text import counted, cut

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from bot.monitor import Monitor

CHART_DAYS = 30
TOP_MODELS = 5
OTHER_COLOUR = "#BBBBBB"  # the rest stays quiet next to the named models
LABEL_WIDTH = 28


@dataclass(frozen=True)
class StackedSeries:
    """One account's panel: the spend of each of its top models (and "other") per day, oldest first; a day the
    provider did not answer is None in every series."""

    account: str
    currency: str
    days: tuple[date, ...]
    values: dict[str, list[Decimal | None]]  # label -> one value per day, largest model first, "other" last
    answered: frozenset[date]  # the days of `days` the provider answered for

    @property
    def missing(self) -> int:
        """How many of the days the provider did not report."""
        return sum(1 for day in self.days if day not in self.answered)

    @property
    def total(self) -> Decimal | None:
        """Everything the panel stacks, over the answered days only; None when no day was answered."""
        if self.missing == len(self.days):
            return None
        return sum((v for values in self.values.values() for v in values if v is not None), Decimal(0))


async def stacked_by_model(
    monitor: Monitor, accounts: Sequence[Account], *, wait: float | None = None, days: int = CHART_DAYS
) -> tuple[list[StackedSeries], dict[str, str]]:
    """The panels of the accounts that break spend down by model (fetching what is due for at most `wait`
    seconds), and why each other account has none or may be out of date."""
    breakdowns = monitor.breakdowns
    wanted = [a for a in accounts if gives(a, Dimension.MODEL)]
    notes = {a.name: missing_note(a, Dimension.MODEL) for a in accounts if a not in wanted}
    errors = await breakdowns.refresh_within(wanted, days, wait)
    notes |= {name: f"could not refresh, showing what is stored: {error}" for name, error in errors.items()}
    first, last = window(days, monitor.clock().date())
    span = tuple(first + timedelta(days=n) for n in range((last - first).days + 1))
    parts = await breakdowns.parts(wanted, Dimension.MODEL, first, last)
    known = await monitor.store.breakdowns.answered([a.name for a in wanted], first, last)
    series = []
    for account in wanted:
        answered = frozenset(known[account.name].days)
        _labels, values = stacked(parts[account.name], span, answered=answered, top=TOP_MODELS)
        currency = known[account.name].currency or account.currency or "USD"
        series.append(StackedSeries(account.name, currency, span, values, answered))
    return series, notes


NO_BREAKDOWN_YET = "no breakdown yet"


def not_reported(item: StackedSeries) -> str:
    """The days the provider did not report, in words ("3 days not reported")."""
    return f"{counted(item.missing, 'day')} not reported"


def _panel_total(item: StackedSeries) -> str:
    if item.total is None:
        return NO_BREAKDOWN_YET
    text = _money(item.total, item.currency)
    return f"{text} ({not_reported(item)})" if item.missing else text


def render_stacked(series: Sequence[StackedSeries], title: str, *, generated_at: datetime) -> bytes:
    """A PNG with one panel of stacked daily bars per account (at most six), legible at thumbnail size."""
    from matplotlib.figure import Figure
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    shown = list(series[:MAX_PANELS])
    hidden = len(series) - len(shown)
    layout = ConstrainedLayoutEngine(h_pad=0.08, w_pad=0.08, hspace=0.08)
    fig = Figure(figsize=(WIDTH_IN + 2.0, 1.5 + 3.2 * max(1, len(shown))), dpi=DPI, layout=layout)
    if not shown:
        ax = fig.add_subplot()
        ax.set_axis_off()
        ax.text(0.5, 0.5, NO_BREAKDOWN_YET, ha="center", va="center", fontsize=HEADLINE_PT, color=GREY)
    else:
        axes = fig.subplots(len(shown), 1, squeeze=False)
        for ax, item in zip((row[0] for row in axes), shown, strict=True):
            _draw_panel(ax, item)
    fig.suptitle(f"{title} (+{hidden} more)" if hidden else title, fontsize=HEADLINE_PT, fontweight="bold")
    fig.supxlabel(
        f"as of {_utc(generated_at):%Y-%m-%d %H:%M} UTC", fontsize=NOTE_PT, color=GREY, x=0.99, ha="right"
    )
    return _png(fig)


def _draw_panel(ax: Axes, item: StackedSeries) -> None:
    name = cut(item.account, 40)
    ax.set_title(f"{name} — last {len(item.days)} days: {_panel_total(item)}", fontsize=TITLE_PT, loc="left")
    if not item.values:
        ax.set_axis_off()
        empty = NO_BREAKDOWN_YET if item.total is None else "no spend by model"
        ax.text(0.5, 0.5, empty, transform=ax.transAxes, ha="center", va="center", color=GREY)
        return
    x = [float(day.toordinal()) for day in item.days]
    # A day the provider did not answer gets no bar at all: an empty slot, not a bar of zero.
    shown_at = [n for n, day in enumerate(item.days) if day in item.answered]
    bottom = [0.0] * len(shown_at)
    for index, (label, values) in enumerate(item.values.items()):
        heights = [_finite(values[n] or Decimal(0)) for n in shown_at]
        colour = OTHER_COLOUR if label == OTHER_LABEL else PALETTE[index % len(PALETTE)]
        shown = cut(label, LABEL_WIDTH)
        ax.bar([x[n] for n in shown_at], heights, bottom=bottom, width=0.8, color=colour, label=shown, linewidth=0)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    high = max(bottom, default=0.0) or 1.0
    ax.set_ylim(0, high * 1.1)
    ax.set_xlim(x[0] - 0.8, x[-1] + 0.8)
    money_and_day_axes(ax, item.currency, most_days=6)
    # Beside the bars rather than on them: constrained layout makes room for it.
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=NOTE_PT, frameon=False, reverse=True)
    ax.tick_params(labelsize=TICK_PT)
    ax.grid(axis="y", color="#e6e6e6", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
