"""Breakdown arithmetic: tables reconcile with the day's spend, drivers against their medians, stacked series."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.breakdown import UNATTRIBUTED, BreakdownPart, Dimension
from bot.breakdown_table import build_table, drivers, month_costs, stacked, window

D = Decimal
TODAY = date(2026, 3, 10)
MODEL = Dimension.MODEL


def part(day: date, key: str, cost: str | None, **usage: int) -> BreakdownPart:
    return BreakdownPart(day, MODEL, key, key.upper(), None if cost is None else D(cost), **usage)


def days_back(n: int) -> date:
    return TODAY - timedelta(days=n)


def test_the_window_is_the_last_n_complete_days() -> None:
    assert window(7, TODAY) == (date(2026, 3, 3), date(2026, 3, 9))
    assert window(1, date(2026, 3, 1)) == (date(2026, 2, 28), date(2026, 2, 28))


def test_parts_that_sum_exactly_leave_no_unattributed_row() -> None:
    parts = [part(days_back(1), "a", "1.25"), part(days_back(1), "b", "0.75"), part(days_back(2), "a", "2")]
    spend = {days_back(1): D("2.00"), days_back(2): D("2")}
    table = build_table(MODEL, parts, spend, spend.keys(), *window(7, TODAY))
    assert table.total == D("4.00")
    assert [(r.key, r.cost) for r in table.rows] == [("a", D("3.25")), ("b", D("0.75"))]
    assert sum(r.cost for r in table.rows if r.cost is not None) == table.total
    assert [r.share for r in table.rows] == [D("0.8125"), D("0.1875")]


def test_a_known_gap_comes_out_as_exactly_that_unattributed_amount() -> None:
    parts = [part(days_back(1), "a", "10.00"), part(days_back(3), "a", "5.00")]
    spend = {days_back(1): D("13.17"), days_back(3): D("5.00")}
    table = build_table(MODEL, parts, spend, spend.keys(), *window(7, TODAY))
    assert table.rows[-1].key == UNATTRIBUTED
    assert table.rows[-1].cost == D("3.17")
    assert sum(r.cost for r in table.rows if r.cost is not None) == table.total == D("18.17")


def test_a_day_the_breakdown_did_not_answer_is_unattributed_as_a_whole() -> None:
    spend = {days_back(1): D("4"), days_back(2): D("6")}
    parts = [part(days_back(1), "a", "4")]
    table = build_table(MODEL, parts, spend, [days_back(1)], *window(7, TODAY))
    assert {r.key: r.cost for r in table.rows} == {"a": D("4"), UNATTRIBUTED: D("6")}


def test_a_day_without_spend_counts_its_parts_and_no_day_known_is_no_total() -> None:
    parts = [part(days_back(1), "a", "4")]
    table = build_table(MODEL, parts, {}, [days_back(1)], *window(7, TODAY))
    assert table.total == D("4")
    assert [r.key for r in table.rows] == ["a"]
    empty = build_table(MODEL, [], {}, [], *window(7, TODAY))
    assert empty.total is None
    assert empty.rows == ()


def test_change_is_against_the_previous_period_of_the_same_length() -> None:
    first, last = window(3, TODAY)
    previous = (first - timedelta(days=3), first - timedelta(days=1))
    parts = [
        part(days_back(1), "a", "5"),
        part(days_back(5), "a", "2"),
        part(days_back(1), "new", "1"),  # a model that appears mid-period: no earlier cost, change is all of it
        part(days_back(8), "a", "100"),  # before both periods: ignored
    ]
    spend = {days_back(1): D("6"), days_back(5): D("2"), days_back(8): D("100")}
    answered = [days_back(n) for n in range(1, 9)]  # quiet days answered too: they spent nothing
    table = build_table(MODEL, parts, spend, answered, first, last, previous=previous)
    rows = {r.key: r for r in table.rows}
    assert rows["a"].previous_cost == D("2")
    assert rows["a"].change == D("3")
    assert rows["new"].previous_cost == D("0")
    assert rows["new"].change == D("1")
    # One day of the previous period not broken down (out of reach, a failed fetch): no change is invented.
    partly = build_table(MODEL, parts, spend, [d for d in answered if d != days_back(6)], first, last,
                         previous=previous)  # fmt: skip
    assert [(r.previous_cost, r.change) for r in partly.rows] == [(None, None), (None, None)]


def test_keys_without_known_spend_give_no_total_rather_than_zero() -> None:
    key_parts = [BreakdownPart(days_back(1), Dimension.KEY, "key_a", "key_a", None, 1000)]
    table = build_table(Dimension.KEY, key_parts, {}, [days_back(1)], *window(7, TODAY))
    assert table.total is None
    assert table.rows[0].input_tokens == 1000


def test_a_share_is_a_fraction_from_0_to_1_and_a_negative_amount_has_none() -> None:
    parts = [part(days_back(1), "a", "12"), part(days_back(1), "credit", "-2")]
    table = build_table(MODEL, parts, {days_back(1): D("10")}, [days_back(1)], *window(7, TODAY))
    shares = {r.key: r.share for r in table.rows}
    assert shares == {"a": D("1"), "credit": None}
    assert sum(r.cost for r in table.rows if r.cost is not None) == table.total


def test_no_previous_change_when_the_previous_period_is_unknown() -> None:
    first, last = window(3, TODAY)
    previous = (first - timedelta(days=3), first - timedelta(days=1))
    only_now = [part(days_back(1), "a", "5")]
    table = build_table(MODEL, only_now, {days_back(1): D("5")}, [days_back(1)], first, last, previous=previous)
    assert table.rows[0].previous_cost is None
    assert table.rows[0].change is None


def test_keys_carry_tokens_but_no_money_and_nothing_reconciles() -> None:
    key_parts = [
        BreakdownPart(days_back(1), Dimension.KEY, "key_a", "key_a", None, 1000, 200, 50, 7),
        BreakdownPart(days_back(2), Dimension.KEY, "key_a", "key_a", None, 10, None, 5, 1),
    ]
    spend = {days_back(1): D("9"), days_back(2): D("1")}
    table = build_table(Dimension.KEY, key_parts, spend, spend.keys(), *window(7, TODAY))
    assert table.total == D("10")
    (row,) = table.rows
    assert (row.cost, row.share, row.input_tokens, row.cached_input_tokens, row.output_tokens, row.requests) == (
        None,
        None,
        1010,
        200,
        55,
        8,
    )


def test_a_model_known_only_from_usage_has_no_cost_and_sorts_after_the_costed() -> None:
    parts = [part(days_back(1), "tokens-only", None, input_tokens=50), part(days_back(1), "a", "1")]
    table = build_table(MODEL, parts, {days_back(1): D("1")}, [days_back(1)], *window(7, TODAY))
    assert [(r.key, r.cost) for r in table.rows] == [("a", D("1")), ("tokens-only", None)]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 14), st.sampled_from("abcde"), st.decimals(0, 1000, places=6)), max_size=40),
    st.dictionaries(st.integers(1, 14), st.decimals(-5, 1000, places=6), max_size=14),
    st.integers(1, 14),
)
def test_rows_always_add_up_to_the_total(
    entries: list[tuple[int, str, Decimal]], extra: dict[int, Decimal], days: int
) -> None:
    parts = [part(days_back(n), key, str(cost)) for n, key, cost in entries]
    spend: dict[date, Decimal] = {}
    for p in parts:
        spend[p.day] = spend.get(p.day, D(0)) + (p.cost or D(0))
    for n, gap in extra.items():
        spend[days_back(n)] = spend.get(days_back(n), D(0)) + gap
    table = build_table(MODEL, parts, spend, spend.keys(), *window(days, TODAY))
    in_window = [d for d in spend if window(days, TODAY)[0] <= d <= window(days, TODAY)[1]]
    assert table.total == (sum((spend[d] for d in in_window), D(0)) if in_window else None)
    assert sum((r.cost for r in table.rows if r.cost is not None), D(0)) == (table.total or D(0))
    assert all(r.share is None or D(0) <= r.share <= D(1) for r in table.rows)


def test_drivers_are_the_top_three_against_their_seven_day_median() -> None:
    day = days_back(1)
    parts = [part(day, k, c) for k, c in (("a", "41.20"), ("b", "5"), ("c", "3"), ("d", "1"))]
    parts += [part(day - timedelta(days=n), "a", "6.10") for n in range(1, 8)]
    parts += [part(day - timedelta(days=n), "b", "4") for n in (1, 2, 3)]  # zero on the 4 other days
    reported = [day - timedelta(days=n) for n in range(0, 8)]
    spend = {day: D("50.20")}
    found = drivers(parts, spend, reported, day)
    assert [(d.key, d.cost, d.median, d.change) for d in found] == [
        ("a", D("41.20"), D("6.10"), D("35.10")),
        ("b", D("5"), D("0"), D("5")),
        ("c", D("3"), D("0"), D("3")),
    ]
    assert found[0].share == D("0.8207")
    assert drivers(parts, spend, reported[1:], day) == []  # the day itself was not reported


def test_drivers_leave_unanswered_days_out_of_the_median() -> None:
    day = days_back(1)
    parts = [part(day, "a", "10"), part(day - timedelta(days=1), "a", "4")]
    found = drivers(parts, {}, [day, day - timedelta(days=1)], day)
    assert found[0].median == D("4")
    assert found[0].share is None


def test_stacked_keeps_the_top_five_and_folds_the_rest_into_other() -> None:
    days = [days_back(n) for n in range(3, 0, -1)]
    parts = [part(days[i % 3], f"m{k}", str(10 - k)) for k in range(7) for i in range(2)]
    labels, series = stacked(parts, days, answered=days)
    assert labels == ["M0", "M1", "M2", "M3", "M4", "other"]
    total = sum((p.cost or D(0)) for p in parts)
    assert sum(sum(values) for values in series.values()) == total
    assert series["other"] == [D(9), D(9), D(0)]
    assert series["M0"] == [D(10), D(10), D(0)]


def test_month_costs_are_bounded_to_the_top_entries() -> None:
    parts = [part(date(2026, 3, 1), f"m{k:02}", str(k + 1)) for k in range(12)]
    parts.append(part(date(2026, 2, 28), "m00", "1000"))  # last month: not counted
    costs = month_costs(parts, date(2026, 3, 1))
    assert len(costs) == 10
    assert "M00" not in costs
    assert costs["M11"] == D("12")
