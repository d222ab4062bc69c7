"""The chart renderer: valid, deterministic PNGs for every shape of input, and matplotlib only when drawing."""

from __future__ import annotations

import struct
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.chart import ChartSeries, render_chart

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 25, 14, 30, tzinfo=UTC)
TODAY = NOW.date()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def balance(name: str, start: str = "80", daily: str = "1.45", currency: str = "USD") -> ChartSeries:
    points = tuple((TODAY - timedelta(days=29 - i), Decimal(start) - Decimal(daily) * i) for i in range(30))
    left = points[-1][1]
    run_out = TODAY + timedelta(days=int(left / Decimal(daily)) + 1)
    return ChartSeries(name, currency, "balance", points, ((TODAY, left), (run_out, Decimal(0))), Decimal(20))


def spend(name: str, currency: str = "USD") -> ChartSeries:
    points = tuple((date(2026, 11, 1) + timedelta(days=i), Decimal("0.48") * (i + 1)) for i in range(25))
    projection = ((TODAY, points[-1][1]), (date(2026, 11, 30), Decimal("14.40")))
    return ChartSeries(name, currency, "spend", points, projection, Decimal(100))


def render(series: list[ChartSeries], title: str = "LLM credits") -> bytes:
    return render_chart(series, title, generated_at=NOW)


@pytest.mark.parametrize("count", [1, 3, 8])
def test_renders_a_png_of_reasonable_size(count: int) -> None:
    series = [balance(f"acct-{i}") if i % 2 == 0 else spend(f"acct-{i}") for i in range(count)]
    data = render(series)
    assert data.startswith(PNG_SIGNATURE)
    assert 5_000 < len(data) < 500_000
    width, height = png_size(data)
    assert 700 <= width <= 1000
    assert height >= 450


def test_more_accounts_make_a_taller_image() -> None:
    heights = [png_size(render([balance(f"a{i}") for i in range(n)]))[1] for n in (1, 3, 6)]
    assert heights == sorted(heights)
    assert heights[0] < heights[-1]


def test_more_than_six_accounts_are_cut_and_counted_in_the_title(monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.figure import Figure

    titles: list[str] = []
    panels: list[int] = []
    original = Figure.suptitle

    def spy(self: Figure, t: str, **kwargs: Any) -> Any:
        titles.append(t)
        panels.append(len(self.axes))
        return original(self, t, **kwargs)

    monkeypatch.setattr(Figure, "suptitle", spy)
    data = render([balance(f"acct-{i}") for i in range(8)], title="Credits")
    assert data.startswith(PNG_SIGNATURE)
    assert titles == ["Credits (+2 more)"]
    assert panels == [6]


def test_same_input_gives_identical_bytes() -> None:
    series = [balance("openai-main"), spend("claude"), balance("deepseek", "500", "12", "CNY")]
    assert render(series) == render(list(series))


def test_footer_time_changes_the_image() -> None:
    series = [balance("openai-main")]
    later = render_chart(series, "LLM credits", generated_at=NOW + timedelta(minutes=1))
    assert render(series) != later


def test_empty_input_renders_a_no_data_image() -> None:
    data = render([])
    assert data.startswith(PNG_SIGNATURE)
    width, height = png_size(data)
    assert width < 880
    assert height < 450


@pytest.mark.parametrize(
    "series",
    [
        ChartSeries("single", "CNY", "balance", ((TODAY, Decimal("71.46")),)),
        ChartSeries("single-spend", "USD", "spend", ((TODAY, Decimal("3.20")),), (), Decimal(50)),
        ChartSeries(
            "projection-only", "EUR", "balance", (), ((TODAY, Decimal(5)), (TODAY + timedelta(days=3), Decimal(0)))
        ),
        ChartSeries("nothing", "USD", "spend", ()),
        ChartSeries(
            "zeros", "USD", "spend", tuple((TODAY - timedelta(days=i), Decimal(0)) for i in range(5, -1, -1))
        ),
        ChartSeries(
            "negative", "USD", "balance", ((TODAY - timedelta(days=1), Decimal(-5)), (TODAY, Decimal(-7)))
        ),
        ChartSeries(
            "huge",
            "CHF",
            "balance",
            ((TODAY - timedelta(days=1), Decimal("1e40")), (TODAY, Decimal("1e400"))),
            ((TODAY, Decimal("1e400")), (TODAY + timedelta(days=9), Decimal("-1e500"))),
            Decimal("1e30"),
        ),
        ChartSeries("tiny", "USD", "balance", ((TODAY, Decimal("1e-30")),), (), Decimal("1e-40")),
        ChartSeries("odd-currency", "usd", "spend", ((TODAY, Decimal("1.999")),), (), Decimal("NaN")),
        ChartSeries("not-finite", "USD", "balance", ((TODAY, Decimal("NaN")), (TODAY, Decimal("sNaN")))),
        ChartSeries(
            "an-account-name-much-too-long-to-fit-in-a-panel-title", "USD", "balance", ((TODAY, Decimal(1)),)
        ),
    ],
    ids=lambda s: s.account[:20],
)
def test_edge_cases_render(series: ChartSeries) -> None:
    for shown in ([series], [series, balance("other")]):
        assert render(shown).startswith(PNG_SIGNATURE)


def test_naive_generated_at_is_taken_as_utc() -> None:
    series = [balance("openai-main")]
    naive = render_chart(series, "LLM credits", generated_at=NOW.replace(tzinfo=None))
    assert naive == render(series)


def test_importing_the_module_does_not_import_matplotlib() -> None:
    code = "import sys, bot.chart; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == "False"


def test_preview_of_a_realistic_two_account_chart() -> None:
    data = render([balance("openai-main"), spend("claude")], title="LLM credits: last 30 days and projection")
    Path("/tmp/chart-preview.png").write_bytes(data)
    assert data.startswith(PNG_SIGNATURE)
    assert png_size(data) == (880, 495)


def test_critical_line_and_a_title_true_to_the_history() -> None:
    from bot.chart_data import chart_title

    full = balance("a")
    with_critical = ChartSeries("b", "USD", "balance", full.points, full.projection, Decimal(20), Decimal(5))
    assert render_chart([with_critical], "t", generated_at=NOW).startswith(PNG_SIGNATURE)
    assert chart_title([full]) == "LLM credits: last 30 days and projection"
    one_point = ChartSeries("c", "USD", "balance", ((TODAY, Decimal(9)),))
    assert chart_title([one_point]) == "LLM credits: today and projection"
    three_days = ChartSeries(
        "d", "USD", "balance", tuple((TODAY - timedelta(days=i), Decimal(9)) for i in (2, 1, 0))
    )
    assert chart_title([three_days]) == "LLM credits: the last 3 days and projection"
