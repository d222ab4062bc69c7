"""The providers' breakdowns (`fetch_breakdown`) against the loopback fake of the grouped reports
(tests/fake_breakdown.py), and hand-written answers where one shape is the point."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.breakdown import BreakdownPart, BreakdownReport, Dimension
from bot.providers import PROVIDERS
from bot.providers.base import AuthError, BadResponseError, ProviderError
from tests.conftest import fetch_request
from tests.fake_breakdown import CostLine, FakeBreakdown, FakeBreakdownServer, month_of_lines
from tests.fakes import Scripted

TODAY = date(2026, 11, 25)
NOW = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
D = Decimal
Key = tuple[date, Dimension, str]


@pytest.fixture
def fake() -> Iterator[FakeBreakdownServer]:
    with FakeBreakdownServer(FakeBreakdown(today=TODAY)) as server:
        yield server


async def breakdown(
    server: FakeBreakdownServer, provider: str, since: date, until: date, *, key: str | None = None
) -> BreakdownReport:
    async with httpx.AsyncClient(timeout=5) as client:
        request = fetch_request(client, provider, server.base_url(provider), key=key, since=since, now=NOW)
        return await PROVIDERS[provider]().fetch_breakdown(request, until)


async def spend(server: FakeBreakdownServer, provider: str, since: date) -> dict[date, Decimal]:
    async with httpx.AsyncClient(timeout=5) as client:
        request = fetch_request(client, provider, server.base_url(provider), since=since, now=NOW)
        report = await PROVIDERS[provider]().fetch(request)
    return {entry.day: entry.amount.amount for entry in report.daily_spend}


def _sum(lines: list[CostLine], *types: str) -> int:
    return sum(line.tokens for line in lines if line.token_type in types)


def expected(provider: str, lines: list[CostLine], names: dict[str, str]) -> dict[Key, BreakdownPart]:
    """The parts the issue's rules make of the fake's lines, worked out here from the lines alone."""
    groups: dict[Key, list[CostLine]] = {}
    label: dict[Key, str] = {}
    for line in lines:
        entries = [(Dimension.MODEL, line.model, line.model)]
        if provider != "openrouter":
            text = (
                f"{line.model}, {line.token_type}"
                if provider == "openai"
                else f"{line.model} {line.token_type} tokens"
            )
            default = ("default", "no project") if provider == "openai" else ("default", "Default workspace")
            project = default if line.project is None else (line.project, names.get(line.project, line.project))
            entries += [
                (Dimension.LINE_ITEM, text, text),
                (Dimension.PROJECT, *project),
                (Dimension.KEY, line.api_key, line.api_key),
            ]
        for dimension, key, name in entries:
            groups.setdefault((line.day, dimension, key), []).append(line)
            label[(line.day, dimension, key)] = name
    parts = {}
    for (day, dimension, key), members in groups.items():
        money = dimension is not Dimension.KEY
        tokens = dimension in (Dimension.MODEL, Dimension.KEY)
        counted = tokens and provider != "anthropic"
        parts[(day, dimension, key)] = BreakdownPart(
            day,
            dimension,
            key,
            label[(day, dimension, key)],
            cost=sum((m.cost for m in members), D(0)) if money else None,
            input_tokens=_sum(members, "input", "cached input") if tokens else None,
            cached_input_tokens=_sum(members, "cached input") if tokens and provider != "openrouter" else None,
            output_tokens=_sum(members, "output") if tokens else None,
            requests=sum(m.requests for m in members) if counted else None,
        )
    return parts


def by_key(report: BreakdownReport) -> dict[Key, BreakdownPart]:
    return {(p.day, p.dimension, p.key): p for p in report.parts}


ANTHROPIC_MONTH: dict[str, Any] = {
    "models": ("claude-sonnet-4", "claude-haiku-4"),
    "newcomer": "claude-opus-5",
    "projects": ("wrkspc_main", None, "wrkspc_gone"),
}


@pytest.mark.parametrize("provider", ["openai", "anthropic", "openrouter"])
async def test_parts_are_the_lines_grouped_by_the_issues_rules(fake: FakeBreakdownServer, provider: str) -> None:
    first, newcomer_from = TODAY - timedelta(days=29), TODAY - timedelta(days=12)
    extra = (
        ANTHROPIC_MONTH
        if provider == "anthropic"
        else {"projects": ("proj_main", "proj_batch", None, "proj_gone")}
    )
    lines = month_of_lines(first, TODAY, newcomer_from=newcomer_from, **extra)
    setattr(fake.state, provider, lines)
    fake.state.list_page_size = 1  # the names come a page at a time
    report = await breakdown(fake, provider, first, TODAY)

    names = fake.state.projects if provider == "openai" else fake.state.workspaces
    assert by_key(report) == expected(provider, lines, names)
    assert report.days == tuple(first + timedelta(days=n) for n in range(30))  # today reported, so covered
    assert report.dimensions == PROVIDERS[provider].breakdowns
    assert report.currency == "USD"
    newcomer = extra.get("newcomer", "o3")
    assert min(p.day for p in report.parts if p.key == newcomer) == newcomer_from
    if provider != "openrouter":
        # Known names label projects and workspaces; an unknown id is labelled by itself.
        labels = {p.key: p.label for p in report.parts if p.dimension is Dimension.PROJECT}
        main = "proj_main" if provider == "openai" else "wrkspc_main"
        assert labels[main] == names[main]
        assert labels[main] != main
        gone = "proj_gone" if provider == "openai" else "wrkspc_gone"
        assert labels[gone] == gone


async def test_openai_pages_through_every_report(fake: FakeBreakdownServer) -> None:
    first = TODAY - timedelta(days=29)
    fake.state.openai = month_of_lines(first, TODAY)
    fake.state.list_page_size = 1
    await breakdown(fake, "openai", first, TODAY)
    costs = fake.state.of("openai", "/costs")
    usage = fake.state.of("openai", "/usage/completions")
    # 30 days at 7 buckets a page is 5 pages for the ungrouped costs and each grouping; usage at 5 a page is 6.
    assert len(costs) == 3 * 5
    assert len(usage) == 2 * 6
    assert all(int(r.query["limit"][0]) <= 180 for r in costs)
    assert all(int(r.query["limit"][0]) <= 31 for r in usage)
    assert fake.state.count("openai", "/projects") == len(fake.state.projects)  # one a page
    # Every request ends no later than the request's now: a future end_time fails on the real API.
    assert all(int(r.query["end_time"][0]) <= NOW.timestamp() for r in [*costs, *usage])


async def test_anthropic_pages_through_every_report(fake: FakeBreakdownServer) -> None:
    first = TODAY - timedelta(days=29)
    fake.state.anthropic = month_of_lines(first, TODAY, **ANTHROPIC_MONTH)
    await breakdown(fake, "anthropic", first, TODAY)
    costs = fake.state.of("anthropic", "/cost_report")
    usage = fake.state.of("anthropic", "/usage_report/messages")
    assert len(costs) == 3 * 5  # ungrouped, by description, by workspace
    assert len(usage) == 2 * 6
    assert {r.query.get("group_by[]", ["none"])[0] for r in costs} == {"none", "description", "workspace_id"}
    assert {r.query["group_by[]"][0] for r in usage} == {"model", "api_key_id"}
    assert all(r.query["ending_at"] == [f"{TODAY + timedelta(days=1)}T00:00:00Z"] for r in [*costs, *usage])


@pytest.mark.parametrize("provider", ["openai", "anthropic", "openrouter"])
async def test_model_costs_sum_exactly_to_the_daily_spend(fake: FakeBreakdownServer, provider: str) -> None:
    first = TODAY - timedelta(days=20)
    extra = ANTHROPIC_MONTH if provider == "anthropic" else {}
    setattr(fake.state, provider, month_of_lines(first, TODAY, quiet_days=[TODAY - timedelta(days=3)], **extra))
    report = await breakdown(fake, provider, first, TODAY)
    daily = await spend(fake, provider, first)
    assert set(report.days) <= set(daily)
    for day in report.days:
        models = sum(
            (p.cost or D(0) for p in report.parts if p.day == day and p.dimension is Dimension.MODEL), D(0)
        )
        assert models == daily[day]
        if provider != "openrouter":
            for dimension in (Dimension.PROJECT, Dimension.LINE_ITEM):
                parts = [p.cost for p in report.parts if p.day == day and p.dimension is dimension]
                assert sum((c for c in parts if c is not None), D(0)) == daily[day]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_a_known_gap_is_exactly_the_difference(fake: FakeBreakdownServer, provider: str) -> None:
    first, gap_day = TODAY - timedelta(days=10), TODAY - timedelta(days=4)
    extra = ANTHROPIC_MONTH if provider == "anthropic" else {}
    setattr(fake.state, provider, month_of_lines(first, TODAY, **extra))
    fake.state.gaps[(provider, gap_day)] = D("3.17")
    report = await breakdown(fake, provider, first, TODAY)
    daily = await spend(fake, provider, first)
    for day in report.days:
        models = sum(
            (p.cost or D(0) for p in report.parts if p.day == day and p.dimension is Dimension.MODEL), D(0)
        )
        assert daily[day] - models == (D("3.17") if day == gap_day else D(0))
        # The breakdown carries the ungrouped total itself, as the spend client reads it.
        assert report.totals[day] == daily[day]
    assert set(report.totals) == set(report.days)


@pytest.mark.parametrize("provider", ["openai", "anthropic", "openrouter"])
async def test_lagging_today_is_not_covered_and_a_quiet_past_day_is(
    fake: FakeBreakdownServer, provider: str
) -> None:
    first, quiet = TODAY - timedelta(days=6), TODAY - timedelta(days=2)
    extra = ANTHROPIC_MONTH if provider == "anthropic" else {}
    setattr(fake.state, provider, month_of_lines(first, TODAY, quiet_days=[quiet], **extra))
    fake.state.lag_today = True
    report = await breakdown(fake, provider, first, TODAY)
    assert report.days == tuple(first + timedelta(days=n) for n in range(6))
    assert quiet in report.days
    assert not [p for p in report.parts if p.day == quiet]
    assert not [p for p in report.parts if p.day == TODAY]
    assert [p for p in report.parts if p.day == quiet - timedelta(days=1)]


@pytest.mark.parametrize("provider", ["openai", "anthropic", "openrouter"])
async def test_a_past_until_asks_for_nothing_beyond_it(fake: FakeBreakdownServer, provider: str) -> None:
    first, until = TODAY - timedelta(days=20), TODAY - timedelta(days=9)
    extra = ANTHROPIC_MONTH if provider == "anthropic" else {}
    setattr(fake.state, provider, month_of_lines(first, TODAY, **extra))
    report = await breakdown(fake, provider, first, until)
    assert report.days[-1] == until
    assert max(p.day for p in report.parts) == until
    end = datetime.combine(until + timedelta(days=1), datetime.min.time(), UTC)
    for recorded in fake.state.of(provider):
        if provider == "openai" and "end_time" in recorded.query:
            assert int(recorded.query["end_time"][0]) == int(end.timestamp())
        if provider == "anthropic" and "ending_at" in recorded.query:
            assert recorded.query["ending_at"] == [f"{until + timedelta(days=1)}T00:00:00Z"]
        if provider == "openrouter":
            assert "date" not in recorded.query  # today's rows are not needed
    assert fake.state.count(provider) > 0


async def test_openrouter_covers_its_window_and_no_day_before_it(fake: FakeBreakdownServer) -> None:
    first = TODAY - timedelta(days=45)
    fake.state.openrouter = month_of_lines(first, TODAY)
    report = await breakdown(fake, "openrouter", first, TODAY)
    window_start = TODAY - timedelta(days=30)
    assert report.days == tuple(window_start + timedelta(days=n) for n in range(31))
    assert min(p.day for p in report.parts) == window_start
    assert PROVIDERS["openrouter"].breakdown_reach_days == 30
    assert {r.query.get("date", [""])[0] for r in fake.state.of("openrouter", "/activity")} == {"", str(TODAY)}


@pytest.mark.parametrize(
    ("provider", "hint"),
    [("openai", "admin key (sk-admin-...)"), ("anthropic", "Admin API key"), ("openrouter", "management key")],
)
async def test_a_refused_key_says_which_key_is_needed(fake: FakeBreakdownServer, provider: str, hint: str) -> None:
    with pytest.raises(AuthError) as caught:
        await breakdown(fake, provider, TODAY - timedelta(days=3), TODAY, key="bad")
    assert hint in caught.value.message
    assert caught.value.status == 401


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_one_failing_source_fails_the_whole_breakdown(fake: FakeBreakdownServer, provider: str) -> None:
    path = "/v1/organization/projects" if provider == "openai" else "/v1/organizations/usage_report/messages"
    fake.state.faults[provider + path] = Scripted(404, {"error": {"message": "gone"}})
    with pytest.raises(BadResponseError):
        await breakdown(fake, provider, TODAY - timedelta(days=3), TODAY)


async def test_the_fake_refuses_limits_the_real_apis_refuse(fake: FakeBreakdownServer) -> None:
    async with httpx.AsyncClient(
        base_url=fake.base_url("openai"), headers={"Authorization": "Bearer x"}
    ) as client:
        start = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp())
        costs = await client.get("/v1/organization/costs", params={"start_time": start, "limit": 366})
        usage = await client.get("/v1/organization/usage/completions", params={"start_time": start, "limit": 32})
        future = await client.get("/v1/organization/costs", params={"start_time": start, "end_time": 2**40})
    assert costs.status_code == 400
    assert costs.json()["error"]["message"] == (
        "Invalid limit provided: 366. Limit must be less than or equal to 180."
    )
    assert usage.status_code == 400
    assert future.status_code == 400


# ---- hand-written answers --------------------------------------------------------------------------------

DAY0 = TODAY - timedelta(days=1)
START0 = int(datetime.combine(DAY0, datetime.min.time(), UTC).timestamp())


def page(*results: dict[str, Any], start: int = START0) -> dict[str, Any]:
    return {"object": "page", "data": [{"start_time": start, "results": list(results)}], "has_more": False}


def aws(*results: dict[str, Any]) -> dict[str, Any]:
    bucket = {"starting_at": f"{DAY0}T00:00:00Z", "ending_at": f"{TODAY}T00:00:00Z", "results": list(results)}
    return {"data": [bucket], "has_more": False, "next_page": None}


async def answered(provider: str, route: Callable[[httpx.Request], Any]) -> BreakdownReport:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=route(request))

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        request = fetch_request(client, provider, "https://provider.test", since=DAY0, now=NOW)
        return await PROVIDERS[provider]().fetch_breakdown(request, DAY0)


def openai_route(line_items: list[Any], usage: list[Any], projects: list[Any] | None = None) -> Any:
    def route(request: httpx.Request) -> Any:
        if request.url.path.endswith("/projects"):
            return {"data": [], "has_more": False}
        group = request.url.params.get("group_by")
        if request.url.path.endswith("/costs"):
            return page(*(line_items if group == "line_item" else projects or []))
        return page(*(usage if group == "model" else []))

    return route


async def test_openai_merges_costs_and_usage_by_model_and_reads_numbers_too() -> None:
    costs = [
        {"amount": {"value": 1.25, "currency": "usd"}, "line_item": "gpt-4o, input", "project_id": None},
        {"amount": {"value": "0.75", "currency": "USD"}, "line_item": " gpt-4o , output", "project_id": None},
        {"amount": {"value": "2", "currency": "usd"}, "line_item": "web search tool calls", "project_id": None},
    ]
    usage = [
        {
            "input_tokens": 100,
            "input_cached_tokens": 40,
            "output_tokens": 7,
            "num_model_requests": 2,
            "model": "gpt-4o",
        },
        {"input_tokens": 5, "output_tokens": 1, "num_model_requests": 1, "model": "gpt-4o"},
        {"input_tokens": 9, "output_tokens": 3, "num_model_requests": 4, "model": "o3"},
        {"input_tokens": 9, "output_tokens": 3, "num_model_requests": 4, "model": None},
    ]
    parts = by_key(await answered("openai", openai_route(costs, usage)))
    assert parts[(DAY0, Dimension.MODEL, "gpt-4o")] == BreakdownPart(
        DAY0, Dimension.MODEL, "gpt-4o", "gpt-4o", D("2.00"), 105, 40, 8, 3
    )
    assert parts[(DAY0, Dimension.MODEL, "o3")].cost is None  # only in usage
    assert parts[(DAY0, Dimension.MODEL, "o3")].cached_input_tokens is None  # never counted
    assert parts[(DAY0, Dimension.MODEL, "web search tool calls")].input_tokens is None  # only in costs
    assert parts[(DAY0, Dimension.LINE_ITEM, " gpt-4o , output")].cost == D("0.75")


async def test_anthropic_counts_cache_writes_as_input_and_names_modelless_costs_by_description() -> None:
    def route(request: httpx.Request) -> Any:
        group = request.url.params.get("group_by[]")
        if request.url.path.endswith("/workspaces"):
            return {"data": [{"id": "wrkspc_1", "name": "Prod"}], "has_more": False}
        if request.url.path.endswith("/cost_report"):
            if group == "workspace_id":
                return aws({"amount": "250", "currency": "USD", "workspace_id": None})
            return aws(
                {"amount": "123.78912", "currency": "USD", "description": "Opus input", "model": "claude-opus-5"},
                {"amount": "126.21088", "currency": "USD", "description": "Code Execution Usage", "model": None},
            )
        if group == "model":
            cache = {"ephemeral_5m_input_tokens": 30, "ephemeral_1h_input_tokens": 4}
            return aws(
                {
                    "uncached_input_tokens": 100,
                    "cache_read_input_tokens": 20,
                    "cache_creation": cache,
                    "output_tokens": 9,
                    "model": "claude-opus-5",
                }
            )
        return aws({"uncached_input_tokens": 1, "output_tokens": 2, "api_key_id": None})

    parts = by_key(await answered("anthropic", route))
    assert parts[(DAY0, Dimension.MODEL, "claude-opus-5")] == BreakdownPart(
        DAY0, Dimension.MODEL, "claude-opus-5", "claude-opus-5", D("1.2378912"), 154, 20, 9, None
    )
    assert parts[(DAY0, Dimension.MODEL, "Code Execution Usage")].cost == D("1.2621088")
    assert parts[(DAY0, Dimension.PROJECT, "default")].label == "Default workspace"
    assert parts[(DAY0, Dimension.PROJECT, "default")].cost == D("2.5")
    assert parts[(DAY0, Dimension.KEY, "none")].input_tokens == 1


@pytest.mark.parametrize(
    ("provider", "route"),
    [
        ("openai", openai_route([{"line_item": "gpt-4o, input", "project_id": None}], [])),
        ("openai", openai_route([{"amount": {"currency": "usd"}, "line_item": "gpt-4o, input"}], [])),
        (
            "openai",
            openai_route(
                [{"amount": {"value": "1", "currency": "usd"}, "line_item": "a, input"}],
                [],
                [{"amount": {"value": "1", "currency": "eur"}, "project_id": "p"}],
            ),
        ),
        ("anthropic", lambda r: aws({"currency": "USD", "description": "x"})),
        ("openrouter", lambda r: {"data": [{"date": str(DAY0), "model": "m", "requests": 1}]}),
    ],
    ids=[
        "openai-no-amount",
        "openai-no-value",
        "openai-two-currencies",
        "anthropic-no-amount",
        "openrouter-no-usage",
    ],
)
async def test_a_cost_without_its_money_or_in_two_currencies_is_refused(provider: str, route: Any) -> None:
    with pytest.raises(BadResponseError):
        await answered(provider, route)


# Anything a provider may answer, served on every path: a report or a ProviderError, never a crash.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
results = st.dictionaries(
    st.sampled_from(
        [
            "amount",
            "line_item",
            "project_id",
            "model",
            "description",
            "input_tokens",
            "output_tokens",
            "num_model_requests",
            "uncached_input_tokens",
            "usage",
            "date",
            "api_key_id",
            "workspace_id",
        ]
    ),
    json_values | st.sampled_from(["1.5", 3, "gpt-4o, input", str(DAY0), {"value": "1", "currency": "usd"}]),
    max_size=8,
)
shaped = st.fixed_dictionaries(
    {
        "data": st.lists(
            st.fixed_dictionaries(
                {
                    "start_time": st.just(START0) | json_values,
                    "starting_at": st.just(f"{DAY0}T00:00:00Z") | json_values,
                },
                optional={"results": st.lists(results, max_size=3) | json_values},
            ),
            max_size=2,
        )
        | st.lists(results, max_size=3),
        "has_more": st.just(False) | json_values,
    }
)


@pytest.mark.parametrize("provider", ["openai", "anthropic", "openrouter"])
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=json_values | shaped)
def test_any_answer_gives_a_breakdown_or_a_clear_error(provider: str, body: Any) -> None:
    async def run() -> None:
        report: BreakdownReport | str
        try:
            report = await answered(provider, lambda _request: json.loads(json.dumps(body)))
        except ProviderError as exc:
            report = exc.message
        if isinstance(report, str):
            assert report  # says what went wrong
        else:
            assert set(report.days) <= {DAY0}
            assert all(p.day in report.days for p in report.parts)

    asyncio.run(run())


@pytest.mark.parametrize("provider", ["openai", "anthropic", "openrouter"])
async def test_the_spend_clients_read_lines_plus_gaps_on_the_real_clock(provider: str) -> None:
    # Integration tests run the whole monitor against this fake on the real clock (today=None).
    today = datetime.now(UTC).date()
    first = today - timedelta(days=9)
    state = FakeBreakdown()
    extra = ANTHROPIC_MONTH if provider == "anthropic" else {}
    setattr(state, provider, month_of_lines(first, today, quiet_days=[first + timedelta(days=2)], **extra))
    if provider != "openrouter":
        state.gaps[(provider, first + timedelta(days=4))] = D("3.17")
    with FakeBreakdownServer(state) as server:
        async with httpx.AsyncClient(timeout=5) as client:
            request = fetch_request(client, provider, server.base_url(provider), since=first)
            report = await PROVIDERS[provider]().fetch(request)
    daily = {entry.day: entry.amount.amount for entry in report.daily_spend}
    assert daily == {
        first + timedelta(days=n): state.spend(provider, first + timedelta(days=n)) for n in range(10)
    }
    assert daily[first + timedelta(days=2)] == 0
