"""Draws balance and spend series as a small-multiples PNG (matplotlib is imported only when drawing)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from bot.money import CURRENCY_SYMBOLS, Money, is_unit

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MAX_PANELS = 6
# Okabe–Ito: distinguishable with the common forms of colour blindness.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9")
DPI = 110
WIDTH_IN = 8.0
# Plotting is in floats; anything beyond this is clipped so matplotlib never sees inf.
PLOT_LIMIT = 1e100
TICK_PT = 12
TITLE_PT = 14
HEADLINE_PT = 16
NOTE_PT = 11
GREY = "#666666"
RAN_OUT = "ran out"  # the note of a balance at or below zero, instead of a projection into the past
UNITS = ((1e9, "B"), (1e6, "M"), (1e3, "k"), (1.0, ""))


@dataclass(frozen=True)
class ChartSeries:
    """One account's line on the chart."""

    account: str
    currency: str
    kind: Literal["balance", "spend"]  # balance: money left; spend: cumulative month-to-date spend
    points: tuple[tuple[date, Decimal], ...]  # history, oldest first
    projection: tuple[tuple[date, Decimal], ...] = ()  # dashed continuation (to run-out or month end)
    limit: Decimal | None = None  # spend: the monthly budget; balance: the warn threshold
    critical: Decimal | None = None  # balance: the critical threshold


def render_chart(series: Sequence[ChartSeries], title: str, *, generated_at: datetime) -> bytes:
    """A PNG of the series, legible at chat-thumbnail size."""
    # The Figure API keeps no pyplot global state, so this is safe in a worker thread.
    from matplotlib.figure import Figure
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    shown = list(series[:MAX_PANELS])
    hidden = len(series) - len(shown)
    if not shown:
        fig = Figure(figsize=(6.0, 2.5), dpi=DPI, layout="constrained")
        ax = fig.add_subplot()
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no data yet", ha="center", va="center", fontsize=HEADLINE_PT, color=GREY)
    else:
        ncols = 1 if len(shown) == 1 else 2
        nrows = math.ceil(len(shown) / ncols)
        layout = ConstrainedLayoutEngine(h_pad=0.08, w_pad=0.08, hspace=0.06, wspace=0.06)
        fig = Figure(figsize=(WIDTH_IN, 1.5 + 3.0 * nrows), dpi=DPI, layout=layout)
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for index, ax in enumerate(ax for row in axes for ax in row):
            if index < len(shown):
                _draw_panel(ax, shown[index], PALETTE[index % len(PALETTE)], wide=ncols == 1)
            else:
                ax.remove()
    fig.suptitle(f"{title} (+{hidden} more)" if hidden else title, fontsize=HEADLINE_PT, fontweight="bold")
    # A figure-level x label is a footer that constrained layout keeps clear of the tick labels.
    fig.supxlabel(
        f"as of {_utc(generated_at):%Y-%m-%d %H:%M} UTC", fontsize=NOTE_PT, color=GREY, x=0.99, ha="right"
    )
    return _png(fig)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    # No "Software" (version) chunk, and PNG carries no timestamp unless asked: same input, same bytes.
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None}, facecolor="white")
    return buffer.getvalue()


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _draw_panel(ax: Axes, item: ChartSeries, colour: str, *, wide: bool) -> None:
    history = _clean(item.points)
    projection = _clean(item.projection)
    limit = _finite(item.limit) if item.limit is not None and item.limit.is_finite() else None
    ax.set_title(_panel_title(item, 40 if wide else 18), fontsize=TITLE_PT, loc="left")
    if not history and not projection:
        ax.set_axis_off()
        ax.text(
            0.5,
            0.5,
            "no data yet",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=TITLE_PT,
            color=GREY,
        )
        return

    if history:
        ax.plot([x for x, _ in history], [y for _, y in history], color=colour, linewidth=2.5)
    if projection:
        ax.plot([x for x, _ in projection], [y for _, y in projection], color=colour, linewidth=2, linestyle="--")
    now_x, now_y = history[-1] if history else projection[0]
    ax.plot([now_x], [now_y], "o", color=colour, markersize=7)

    critical = _finite(item.critical) if item.critical is not None and item.critical.is_finite() else None
    values = [y for _, y in history + projection] + [v for v in (limit, critical) if v is not None]
    low, high = min([0.0, *values]), max([0.0, *values])
    if high == low:
        high = low + 1.0
    pad = (high - low) * 0.15
    ax.set_ylim(low - pad if low < 0 else low, high + pad)
    first, last = min(x for x, _ in history + projection), max(x for x, _ in history + projection)
    margin = (last - first) * 0.04 if last > first else 3.0
    ax.set_xlim(first - margin, last + margin)

    money_and_day_axes(ax, item.currency, most_days=6 if wide else 4)

    lines = [(item.limit, "budget" if item.kind == "spend" else "warn", "#999999")]
    lines.append((item.critical, "critical", "#D55E00"))
    for value, name, line_colour in lines:
        if value is None or not value.is_finite():
            continue
        ax.axhline(_finite(value), color=line_colour, linewidth=1.2, linestyle=":", zorder=1)
        ax.text(
            0.02,
            _finite(value),
            f"{name} {_money(value, item.currency)}",
            transform=ax.get_yaxis_transform(),
            ha="left",
            va="bottom",
            fontsize=NOTE_PT,
            color=GREY,
            bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 1},
        )
    note = _projection_note(item)
    if note and (len(projection) > 1 or note == RAN_OUT):
        # The top-right corner lies in the headroom above the data, so the note never sits on a line.
        ax.text(0.98, 0.98, note, transform=ax.transAxes, ha="right", va="top", fontsize=NOTE_PT, color=colour)

    ax.tick_params(labelsize=TICK_PT)
    ax.grid(axis="y", color="#e6e6e6", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def money_and_day_axes(ax: Axes, currency: str, *, most_days: int) -> None:
    """Money ticks on the y axis (one scale for the axis) and calendar-aligned days on the x axis, for the
    limits already set."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator

    locator = MaxNLocator(nbins=4)
    ticks = list(locator.tick_values(*ax.get_ylim()))
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    top = max((abs(t) for t in ticks), default=1.0)
    ax.yaxis.set_major_locator(locator)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: _tick_money(value, step, top, currency)))
    ax.xaxis.set_major_locator(FixedLocator(_day_ticks(*ax.get_xlim(), most=most_days)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: _short_day(value)))


def _clean(points: Sequence[tuple[date, Decimal]]) -> list[tuple[float, float]]:
    # Days as ordinals keep the x axis plain floats: no date converter, no timezones.
    finite = sorted(((day.toordinal(), value) for day, value in points if value.is_finite()), key=lambda p: p[0])
    return [(float(day), _finite(value)) for day, value in finite]


def _finite(value: Decimal) -> float:
    return max(-PLOT_LIMIT, min(PLOT_LIMIT, float(value))) if value.is_finite() else 0.0


def _latest(item: ChartSeries) -> Decimal | None:
    for values in ([v for _, v in item.points], [v for _, v in item.projection[:1]]):
        finite = [v for v in values if v.is_finite()]
        if finite:
            return finite[-1]
    return None


def _panel_title(item: ChartSeries, width: int) -> str:
    name = item.account if len(item.account) <= width else item.account[: width - 1] + "…"
    current = _latest(item)
    if current is None:
        return name
    return f"{name} — {_money(current, item.currency)} {'left' if item.kind == 'balance' else 'this month'}"


def _projection_note(item: ChartSeries) -> str | None:
    if item.kind == "balance" and item.points and item.points[-1][1] <= 0:
        return RAN_OUT  # nothing to project: the money is gone, not about to go
    if not item.projection:
        return None
    day, value = item.projection[-1]
    if not value.is_finite():
        return None
    if item.kind == "balance":
        return f"runs out ~{_short_day(day.toordinal())}" if value <= 0 else None
    return f"~{_money(value, item.currency)} by {_short_day(day.toordinal())}"


def _money(amount: Decimal, currency: str) -> str:
    code = currency.strip() if is_unit(currency.strip()) else currency.strip().upper()
    try:
        if code.isalpha():
            return Money(amount, code).format()
        return f"{amount.quantize(Decimal('0.01')):,.2f} {code}".strip()
    except ArithmeticError:
        # Quantizing a huge amount to cents overflows the Decimal context.
        number = f"{_finite(amount):,.3g}"
        symbol = CURRENCY_SYMBOLS.get(code)
        return f"{symbol}{number}" if symbol else f"{number} {code}".strip()


def _tick_money(value: float, step: float, top: float, currency: str) -> str:
    # One scale for the whole axis (from its largest tick), so labels never mix "$5,000" with "$10k".
    if abs(value) < 1e-9 * max(step, 1e-300):
        number = "0"
    elif top >= 1e13:
        number = f"{abs(value):.2g}"
    else:
        scale, unit = next((s, u) for s, u in UNITS if top >= max(s, 1e4) or s == 1)
        # Just enough decimals to tell ticks apart; plain amounts below 1 get cents, as money is written.
        decimals = next(
            d for d in (0, 1, 2) if d == 2 or abs(round(step / scale, d) - step / scale) < 1e-9 * step / scale
        )
        if unit == "" and decimals == 1:
            decimals = 2
        number = f"{abs(value) / scale:,.{decimals}f}{unit}"
    sign = "−" if value < 0 and any(c in "123456789" for c in number.split("e")[0]) else ""
    code = currency.strip() if is_unit(currency.strip()) else currency.strip().upper()
    symbol = CURRENCY_SYMBOLS.get(code)
    return f"{sign}{symbol}{number}" if symbol else f"{sign}{number} {code}".rstrip()


def _day_ticks(low: float, high: float, most: int) -> list[float]:
    # Calendar-aligned ticks (1st, 8th, 15th, 22nd...) read better than evenly spaced ordinals.
    first, last = max(math.ceil(low), 1), min(math.floor(high), date.max.toordinal())
    span = last - first
    if span > 3660 or span < 0:
        return []
    days = [date.fromordinal(n) for n in range(first, last + 1)]
    for keep in (
        lambda d: True,
        lambda d: d.day % 2 == 1 and d.day < 31,
        lambda d: d.day % 3 == 1 and d.day < 31,
        lambda d: d.day in (1, 5, 10, 15, 20, 25),
        lambda d: d.day in (1, 8, 15, 22),
        lambda d: d.day in (1, 15),
        lambda d: d.day == 1,
        lambda d: d.day == 1 and d.month % 3 == 1,
        lambda d: d.day == 1 and d.month == 1,
    ):
        ticks = [float(d.toordinal()) for d in days if keep(d)]
        if len(ticks) <= most:
            return ticks
    return []


def _short_day(ordinal: float) -> str:
    try:
        day = date.fromordinal(round(ordinal))
    except (ValueError, OverflowError):
        return ""
    return f"{day:%b} {day.day}"
