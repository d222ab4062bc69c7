"""A loopback fake of the grouped billing reports behind the breakdowns (OpenAI costs and completions usage,
Anthropic cost and messages usage reports, OpenRouter activity), built from the grouping rules of
../shared/reference/provider-apis-2.md section 3 and provider-apis.md sections 1 to 3.

The data is a list of `CostLine`s per provider: one model's one token type on one day, in one project and
under one key. Every endpoint answers from those lines, grouped the way the real API groups: a dimension not
grouped by is `null`, the ungrouped costs hold the lines plus any `gaps` (money no group explains), so the
spend clients (`OpenAIProvider.fetch` ...) read the same days as the breakdowns. Each provider lives under
its own path prefix (`/openai`, `/anthropic`, `/openrouter`): an account's `base_url` is
`base_url(provider)`. Every request is recorded.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.fakes import RecordedRequest, Scripted
from tests.loopback_billing import Answer, LoopbackBilling

DAY = 86400
OPENROUTER_WINDOW_DAYS = 30
# The fake's token types and the names Anthropic's cost report gives them.
ANTHROPIC_TOKEN_TYPES = {
    "input": "uncached_input_tokens",
    "cached input": "cache_read_input_tokens",
    "output": "output_tokens",
}


@dataclass
class CostLine:
    """One model's one token type on one UTC day, in one project (workspace) and under one API key."""

    day: date
    model: str
    token_type: str  # "input", "output" or "cached input"
    cost: Decimal  # USD
    project: str | None = "proj_main"  # OpenAI project id / Anthropic workspace id; None = default / no project
    api_key: str = "key_a"
    tokens: int = 0
    requests: int = 0

    @property
    def line_item(self) -> str:
        """OpenAI's line item: "gpt-4o, input"."""
        return f"{self.model}, {self.token_type}"

    @property
    def description(self) -> str:
        """Anthropic's description: "claude-sonnet-4 input tokens"."""
        return f"{self.model} {self.token_type} tokens"


@dataclass
class FakeBreakdown:
    """State and behaviour of the fake; tests change the fields, the server reads them."""

    openai: list[CostLine] = field(default_factory=list)
    anthropic: list[CostLine] = field(default_factory=list)
    openrouter: list[CostLine] = field(default_factory=list)
    # Money in the ungrouped total of a day that no group explains: (provider, day) -> USD. OpenRouter's
    # activity rows are its only source, so a gap there has nowhere to show and is ignored.
    gaps: dict[tuple[str, date], Decimal] = field(default_factory=dict)
    projects: dict[str, str] = field(default_factory=lambda: {"proj_main": "Main app", "proj_batch": "Batch jobs"})
    workspaces: dict[str, str] = field(default_factory=lambda: {"wrkspc_main": "Production"})
    today: date | None = None  # the fake's "today" (UTC); None = the real UTC date
    lag_today: bool = False  # True: today's buckets and rows come back empty (provider lag)
    openrouter_credits: tuple[Decimal, Decimal] = (Decimal("100"), Decimal("20"))  # total_credits, total_usage
    page_days: int = 7  # the most daily buckets a cost report page holds (the APIs allow 180 / 31)
    usage_page_days: int = 5  # the most buckets a usage page holds: fewer than the 31 a client may ask for
    list_page_size: int = 100  # the most projects or workspaces a list page holds
    # A lasting fault, keyed by provider ("openai") or provider and path ("openai/v1/organization/projects").
    faults: dict[str, Scripted] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, provider: str, path_suffix: str = "") -> int:
        """How many requests reached a provider (optionally one path)."""
        return sum(1 for r in self.requests if r.provider == provider and r.path.endswith(path_suffix))

    def of(self, provider: str, path_suffix: str = "") -> list[RecordedRequest]:
        """The requests a provider got (optionally on one path), oldest first."""
        return [r for r in self.requests if r.provider == provider and r.path.endswith(path_suffix)]

    def current_day(self) -> date:
        """The fake's today."""
        return self.today or datetime.now(UTC).date()

    def lines(self, provider: str, day: date) -> list[CostLine]:
        """A provider's lines of one day, none for a lagging today."""
        if self.lag_today and day == self.current_day():
            return []
        lines: list[CostLine] = getattr(self, provider)
        return [line for line in lines if line.day == day]

    def spend(self, provider: str, day: date) -> Decimal:
        """What the ungrouped cost report says of a day: its lines plus its gap."""
        if self.lag_today and day == self.current_day():
            return Decimal(0)
        return sum((line.cost for line in self.lines(provider, day)), Decimal(0)) + self.gaps.get(
            (provider, day), Decimal(0)
        )


def month_of_lines(
    first_day: date,
    last_day: date,
    *,
    models: tuple[str, ...] = ("gpt-4o", "gpt-4o-mini"),
    newcomer: str = "o3",
    newcomer_from: date | None = None,
    projects: tuple[str | None, ...] = ("proj_main", "proj_batch", None),
    api_keys: tuple[str, ...] = ("key_a", "key_b"),
    quiet_days: Iterable[date] = (),
    seed: int = 18,
) -> list[CostLine]:
    """A realistic stretch of usage: every model every day in every token type, spread over projects and keys,
    and `newcomer` only from `newcomer_from` (default: halfway); `quiet_days` have no lines at all."""
    rng = random.Random(seed)
    start_new = newcomer_from or first_day + (last_day - first_day) // 2
    quiet = set(quiet_days)
    lines: list[CostLine] = []
    day = first_day
    while day <= last_day:
        active = (*models, newcomer) if day >= start_new else models
        for model in active if day not in quiet else ():
            for token_type in ("input", "cached input", "output"):
                for project in rng.sample(projects, k=rng.randint(1, len(projects))):
                    lines.append(
                        CostLine(
                            day=day,
                            model=model,
                            token_type=token_type,
                            cost=Decimal(rng.randint(1, 5_000_000)).scaleb(-6),
                            project=project,
                            api_key=rng.choice(api_keys),
                            tokens=rng.randint(1_000, 2_000_000),
                            # Requests are counted once per call: on its input line.
                            requests=rng.randint(1, 900) if token_type == "input" else 0,
                        )
                    )
        day += timedelta(days=1)
    return lines


Query = dict[str, list[str]]
Getters = dict[str, Callable[[CostLine], Any]]


def _money(value: Decimal) -> str:
    return format(value, "f")


def _group_by(query: Query) -> set[str]:
    # Clients send group_by, group_by[] repeated, or (defensively) comma-joined.
    values = [*query.get("group_by", []), *query.get("group_by[]", [])]
    return {part.strip() for value in values for part in value.split(",") if part.strip()}


def _limit(query: Query, default: int, most: int) -> int | Answer:
    try:
        limit = int(query.get("limit", [str(default)])[0])
    except ValueError:
        return 400, {"error": {"message": "Invalid limit provided.", "type": "invalid_request_error"}}
    if not 1 <= limit <= most:
        message = f"Invalid limit provided: {limit}. Limit must be less than or equal to {most}."
        return 400, {"error": {"message": message, "type": "invalid_request_error", "param": "limit"}}
    return limit


def _page(starts: list[int], query: Query, size: int) -> tuple[list[int], str | None]:
    """The bucket starts of the page a cursor asks for, and the next page's cursor."""
    cursor = query.get("page", [""])[0]
    first = int(cursor.removeprefix("page_")) if cursor else starts[0] if starts else 0
    remaining = [s for s in starts if s >= first]
    page = remaining[:size]
    return page, (f"page_{remaining[size]}" if len(remaining) > size else None)


def _day(start: int) -> date:
    return datetime.fromtimestamp(start, UTC).date()


def _grouped(lines: list[CostLine], keys: Getters) -> dict[tuple[Any, ...], list[CostLine]]:
    groups: dict[tuple[Any, ...], list[CostLine]] = defaultdict(list)
    for line in lines:
        groups[tuple(key(line) for key in keys.values())].append(line)
    return groups


def _tokens(lines: list[CostLine], *types: str) -> int:
    return sum(line.tokens for line in lines if line.token_type in types)


# ---- OpenAI ----------------------------------------------------------------------------------------------

OPENAI_COST_GROUPS: dict[str, Callable[[CostLine], Any]] = {
    "line_item": lambda line: line.line_item,
    "project_id": lambda line: line.project,
    "api_key_id": lambda line: line.api_key,
}
OPENAI_USAGE_GROUPS: dict[str, Callable[[CostLine], Any]] = {
    "model": lambda line: line.model,
    "project_id": lambda line: line.project,
    "api_key_id": lambda line: line.api_key,
}


def _openai_error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}


def _openai_window(state: FakeBreakdown, query: Query) -> list[int] | Answer:
    tomorrow = int(datetime.combine(state.current_day() + timedelta(days=1), datetime.min.time(), UTC).timestamp())
    try:
        start = int(query["start_time"][0])
        end = int(query.get("end_time", [str(tomorrow)])[0])
    except (KeyError, ValueError):
        return 400, _openai_error("start_time is required and must be an integer (Unix seconds)")
    # A future end_time fails on the real API: beyond the fake's today, or beyond the real clock when the fake
    # runs on it.
    if end > tomorrow or (state.today is None and end > time.time() + 60):
        return 400, _openai_error("end_time must not be in the future")
    if end <= start:
        return 400, _openai_error("end_time must be after start_time")
    first = start // DAY * DAY
    return list(range(first, end, DAY))


def _openai_report(state: FakeBreakdown, query: Query, *, costs: bool) -> Answer:
    limit = _limit(query, 7, 180 if costs else 31)
    if isinstance(limit, tuple):
        return limit
    starts = _openai_window(state, query)
    if isinstance(starts, tuple):
        return starts
    groups = _group_by(query)
    known = OPENAI_COST_GROUPS if costs else OPENAI_USAGE_GROUPS
    if groups - set(known):
        return 400, _openai_error(f"Invalid group_by: {sorted(groups - set(known))}")
    page, cursor = _page(starts, query, min(limit, state.page_days if costs else state.usage_page_days))
    data = []
    for start in page:
        day = _day(start)
        lines = state.lines("openai", day)
        if costs:
            results = _openai_cost_results(state, day, lines, groups)
        else:
            results = _openai_usage_results(lines, groups)
        data.append({"object": "bucket", "start_time": start, "end_time": start + DAY, "results": results})
    return 200, {"object": "page", "data": data, "has_more": cursor is not None, "next_page": cursor}


def _openai_cost_results(state: FakeBreakdown, day: date, lines: list[CostLine], groups: set[str]) -> list[Any]:
    def result(value: Decimal, **dimensions: Any) -> dict[str, Any]:
        # Live answers give the value as a JSON string.
        fields = {name: dimensions.get(name) for name in OPENAI_COST_GROUPS}
        money = {"value": _money(value), "currency": "usd"}
        return {"object": "organization.costs.result", "amount": money, **fields, "quantity": None}

    if not groups:
        total = state.spend("openai", day)
        return [result(total)] if lines or total else []
    keys = {name: key for name, key in OPENAI_COST_GROUPS.items() if name in groups}
    return [
        result(sum((line.cost for line in members), Decimal(0)), **dict(zip(keys, values, strict=True)))
        for values, members in _grouped(lines, keys).items()
    ]


def _openai_usage_results(lines: list[CostLine], groups: set[str]) -> list[Any]:
    keys = {name: key for name, key in OPENAI_USAGE_GROUPS.items() if name in groups}
    results = []
    for values, members in (_grouped(lines, keys) if lines else {}).items():
        dimensions = dict(zip(keys, values, strict=True))
        results.append(
            {
                "object": "organization.usage.completions.result",
                "input_tokens": _tokens(members, "input", "cached input"),
                "input_cached_tokens": _tokens(members, "cached input"),
                "output_tokens": _tokens(members, "output"),
                "input_audio_tokens": 0,
                "output_audio_tokens": 0,
                "num_model_requests": sum(line.requests for line in members),
                **{name: dimensions.get(name) for name in (*OPENAI_USAGE_GROUPS, "user_id", "batch")},
            }
        )
    return results


def _listed(names: dict[str, str], query: Query, cursor_param: str, size: int) -> tuple[list[str], bool]:
    ids = list(names)
    after = query.get(cursor_param, [""])[0]
    if after:
        ids = ids[ids.index(after) + 1 :] if after in ids else []
    try:
        limit = int(query.get("limit", ["20"])[0])
    except ValueError:
        limit = 20
    page = ids[: min(limit, size)]
    return page, len(ids) > len(page)


def _openai(state: FakeBreakdown, path: str, query: Query, headers: dict[str, str]) -> Answer:
    key = _bearer(headers)
    if not key or key == "bad":
        return 401, _openai_error("Incorrect API key provided.")
    if path == "/v1/organization/costs":
        return _openai_report(state, query, costs=True)
    if path == "/v1/organization/usage/completions":
        return _openai_report(state, query, costs=False)
    if path == "/v1/organization/projects":
        page, more = _listed(state.projects, query, "after", state.list_page_size)
        data = [
            {"id": i, "object": "organization.project", "name": state.projects[i], "status": "active"}
            for i in page
        ]
        first, last = (page[0], page[-1]) if page else (None, None)
        return 200, {"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": more}
    return 404, _openai_error(f"Invalid URL (GET {path})")


# ---- Anthropic -------------------------------------------------------------------------------------------


def _anthropic_error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


def _rfc3339(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _anthropic_report(state: FakeBreakdown, query: Query, *, costs: bool) -> Answer:
    limit = _limit(query, 7, 31)
    if isinstance(limit, tuple):
        return 400, _anthropic_error("invalid_request_error", str(limit[1]["error"]["message"]))
    today = datetime.combine(state.current_day(), datetime.min.time(), UTC)
    try:
        start = _rfc3339(query["starting_at"][0])
        # Without ending_at the cost report ends at 00:00 UTC today.
        end = (
            _rfc3339(query["ending_at"][0]) if "ending_at" in query else today + timedelta(days=0 if costs else 1)
        )
    except (KeyError, ValueError):
        return 400, _anthropic_error("invalid_request_error", "starting_at is required (RFC 3339)")
    if start >= end:
        return 400, _anthropic_error("invalid_request_error", "ending date must be after starting date")
    first = int(start.timestamp()) // DAY * DAY
    starts = list(range(first, int(end.timestamp()), DAY))
    groups = _group_by(query)
    known = {"description", "workspace_id"} if costs else {"model", "api_key_id", "workspace_id"}
    if groups - known:
        return 400, _anthropic_error("invalid_request_error", f"invalid group_by[]: {sorted(groups - known)}")
    page, cursor = _page(starts, query, min(limit, state.page_days if costs else state.usage_page_days))
    data = []
    for bucket_start in page:
        day = _day(bucket_start)
        lines = state.lines("anthropic", day)
        results = _anthropic_costs(state, day, lines, groups) if costs else _anthropic_usage(lines, groups)
        data.append(
            {
                "starting_at": f"{day.isoformat()}T00:00:00Z",
                "ending_at": f"{(day + timedelta(days=1)).isoformat()}T00:00:00Z",
                "results": results,
            }
        )
    return 200, {"data": data, "has_more": cursor is not None, "next_page": cursor}


def _anthropic_costs(state: FakeBreakdown, day: date, lines: list[CostLine], groups: set[str]) -> list[Any]:
    def result(dollars: Decimal, line: CostLine | None, workspace: Any) -> dict[str, Any]:
        described = line is not None
        return {
            "amount": _money(dollars * 100),  # cents, as a decimal string
            "currency": "USD",
            "description": line.description if line else None,
            "model": line.model if line else None,
            "token_type": ANTHROPIC_TOKEN_TYPES.get(line.token_type, line.token_type) if line else None,
            "cost_type": "tokens" if described else None,
            "service_tier": "standard" if described else None,
            "context_window": "0-200k" if described else None,
            "workspace_id": workspace,
        }

    if not groups:
        total = state.spend("anthropic", day)
        return [result(total, None, None)] if lines or total else []
    keys: dict[str, Callable[[CostLine], Any]] = {}
    if "description" in groups:
        keys["description"] = lambda line: line.description
    if "workspace_id" in groups:
        keys["workspace_id"] = lambda line: line.project
    results = []
    for values, members in _grouped(lines, keys).items():
        dimensions = dict(zip(keys, values, strict=True))
        total = sum((line.cost for line in members), Decimal(0))
        results.append(
            result(total, members[0] if "description" in groups else None, dimensions.get("workspace_id"))
        )
    return results


def _anthropic_usage(lines: list[CostLine], groups: set[str]) -> list[Any]:
    getters: dict[str, Callable[[CostLine], Any]] = {
        "model": lambda line: line.model,
        "api_key_id": lambda line: line.api_key,
        "workspace_id": lambda line: line.project,
    }
    keys = {name: key for name, key in getters.items() if name in groups}
    results = []
    for values, members in (_grouped(lines, keys) if lines else {}).items():
        dimensions = dict(zip(keys, values, strict=True))
        results.append(
            {
                "uncached_input_tokens": _tokens(members, "input"),
                "cache_read_input_tokens": _tokens(members, "cached input"),
                "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
                "output_tokens": _tokens(members, "output"),
                "server_tool_use": {"web_search_requests": 0},
                "service_tier": None,
                "context_window": None,
                **{name: dimensions.get(name) for name in getters},
            }
        )
    return results


def _anthropic(state: FakeBreakdown, path: str, query: Query, headers: dict[str, str]) -> Answer:
    key = headers.get("x-api-key", "")
    if not key or key == "bad":
        return 401, _anthropic_error("authentication_error", "invalid x-api-key")
    if path == "/v1/organizations/cost_report":
        return _anthropic_report(state, query, costs=True)
    if path == "/v1/organizations/usage_report/messages":
        return _anthropic_report(state, query, costs=False)
    if path == "/v1/organizations/workspaces":
        page, more = _listed(state.workspaces, query, "after_id", state.list_page_size)
        data = [{"id": i, "type": "workspace", "name": state.workspaces[i], "archived_at": None} for i in page]
        first, last = (page[0], page[-1]) if page else (None, None)
        return 200, {"data": data, "has_more": more, "first_id": first, "last_id": last}
    return 404, _anthropic_error("not_found_error", f"Not found: {path}")


# ---- OpenRouter ------------------------------------------------------------------------------------------


ENDPOINT_GROUPS: Getters = {"model": lambda line: line.model, "endpoint": lambda line: line.project}


def _activity_rows(state: FakeBreakdown, days: Iterable[date]) -> list[dict[str, Any]]:
    rows = []
    for day in days:
        # One row per model and endpoint; the fake's endpoints are its lines' projects.
        groups = _grouped(state.lines("openrouter", day), ENDPOINT_GROUPS)
        for (model, endpoint), members in groups.items():
            rows.append(
                {
                    "date": day.isoformat(),
                    "model": model,
                    "model_permaslug": model,
                    "endpoint_id": f"ep-{endpoint}",
                    "provider_name": "Fake",
                    "usage": float(sum((line.cost for line in members), Decimal(0))),
                    "byok_usage_inference": 0,
                    "requests": sum(line.requests for line in members),
                    "prompt_tokens": _tokens(members, "input", "cached input"),
                    "completion_tokens": _tokens(members, "output"),
                    "reasoning_tokens": 0,
                }
            )
    return rows


def _openrouter(state: FakeBreakdown, path: str, query: Query, headers: dict[str, str]) -> Answer:
    key = _bearer(headers)
    if not key or key == "bad":
        return 401, {"error": {"message": "User not found.", "code": 401}}
    today = state.current_day()
    if path == "/api/v1/credits":
        total_credits, total_usage = state.openrouter_credits
        return 200, {"data": {"total_credits": float(total_credits), "total_usage": float(total_usage)}}
    if path == "/api/v1/key":
        spent_today = sum((line.cost for line in state.lines("openrouter", today)), Decimal(0))
        spent_month = sum(
            (line.cost for line in state.openrouter if line.day.replace(day=1) == today.replace(day=1)), Decimal(0)
        )
        return 200, {
            "data": {
                "label": "sk-or-v1-fak...key",
                "limit": None,
                "limit_remaining": None,
                "usage": float(state.openrouter_credits[1]),
                "usage_daily": float(spent_today),
                "usage_monthly": float(spent_month),
                "is_free_tier": False,
                "is_management_key": True,
                "is_provisioning_key": True,
            }
        }
    if path == "/api/v1/activity":
        window = [today - timedelta(days=n) for n in range(OPENROUTER_WINDOW_DAYS, 0, -1)]
        if "date" in query:
            try:
                asked = date.fromisoformat(query["date"][0])
            except ValueError:
                return 400, {"error": {"message": "Invalid date", "code": 400}}
            return 200, {"data": _activity_rows(state, [asked] if asked in (*window, today) else [])}
        return 200, {"data": _activity_rows(state, window)}
    return 404, {"error": {"message": "Not Found", "code": 404}}


def _bearer(headers: dict[str, str]) -> str:
    value = headers.get("authorization", "")
    return value[7:].strip() if value.startswith("Bearer ") else ""


ROUTES = {"openai": _openai, "anthropic": _anthropic, "openrouter": _openrouter}


class FakeBreakdownServer(LoopbackBilling[FakeBreakdown]):
    """Runs `FakeBreakdown` on 127.0.0.1 in a background thread."""

    def __init__(self, state: FakeBreakdown | None = None) -> None:
        super().__init__(state or FakeBreakdown(), ROUTES, locked_routes=True)
