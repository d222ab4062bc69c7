"""Any provider answer yields a report or a clear ProviderError: no crash, no balance the body did not state."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from bot.models import ProviderReport
from bot.money import AmountError, parse_amount
from bot.providers import PROVIDERS
from bot.providers.base import FetchRequest, HostLimiter, ProviderError, ProviderHttp

NOW = datetime(2026, 11, 25, 9, tzinfo=UTC)
# The providers whose answers are fuzzed here; the others have the same properties tested beside their
# own fakes (their parsers turn cents, negated amounts and limits into balances in ways of their own).
FUZZED_ELSEWHERE = {
    "http-json": "tests/test_http_json.py",
    "relay": "tests/test_providers_a.py",
    "siliconflow": "tests/test_providers_a.py",
    "novita": "tests/test_providers_a.py",
    "xai": "tests/test_providers_b.py",
    "venice": "tests/test_providers_b.py",
    "stepfun": "tests/test_providers_b.py",
    "deepinfra": "tests/test_providers_b.py",
    "elevenlabs": "tests/test_providers_b.py",
}
# Every provider that reads an HTTP answer (the demo account makes none).
HTTP_PROVIDERS = sorted(p for p in PROVIDERS if p != "demo" and p not in FUZZED_ELSEWHERE)
SPEND_ONLY = sorted(p for p in HTTP_PROVIDERS if PROVIDERS[p].spend_only)
KEYS = {"anthropic": "sk-ant-admin01-x", "openai-legacy": "sess-x", "openai": "sk-admin-x"}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=25,
)
# Amounts as providers send them (numbers, numeric strings, zeros of every spelling), and as they break.
good_amounts = (
    st.integers(0, 10**6)
    | st.floats(0, 10**6)
    | st.decimals(0, 10**6, places=5, allow_nan=False).map(str)
    | st.sampled_from([0, 0.0, -0.0, "0", "0.00", 49.58894, "110.00"])
)
bad_amounts = (
    st.floats() | st.integers(-(10**4), -1) | st.sampled_from(["", "1e400", "NaN", "inf", "12,5", True, None, []])
)
amounts = good_amounts | good_amounts | bad_amounts
currencies = st.sampled_from(["USD", "usd", "CNY", "USD", "CNY", "EUR", "", "US", "DOLLAR", None, 1])


def maybe(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A JSON object whose fields may each be missing."""
    return st.fixed_dictionaries({}, optional=fields)


def doc(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A JSON object with all its fields, mostly; else any of them missing."""
    full = st.fixed_dictionaries(fields)
    return full | full | maybe(**fields)


day_starts = st.integers(0, 45).map(lambda n: int((NOW - timedelta(days=n)).timestamp()) // 86400 * 86400)
has_more = st.just(False) | st.booleans() | json_values
next_page = st.none() | st.text(max_size=8)
# The documented shapes, fields present or not, well-typed or not: these reach the parsers' success paths.
SHAPED: dict[str, st.SearchStrategy[Any]] = {
    "openai": doc(
        object=st.just("page"),
        data=st.lists(
            doc(
                start_time=day_starts | day_starts | json_values,
                results=st.lists(doc(amount=doc(value=amounts, currency=currencies)), max_size=3),
            ),
            max_size=4,
        ),
        has_more=has_more,
        next_page=next_page,
    ),
    "anthropic": doc(
        data=st.lists(
            doc(
                starting_at=day_starts.map(lambda s: datetime.fromtimestamp(s, UTC).isoformat()) | json_values,
                results=st.lists(doc(amount=amounts, currency=currencies), max_size=3),
            ),
            max_size=4,
        ),
        has_more=has_more,
        next_page=next_page,
    ),
    "openrouter": doc(
        data=doc(
            total_credits=amounts,
            total_usage=amounts,
            limit=amounts,
            limit_remaining=amounts,
            usage_daily=amounts,
            usage_monthly=amounts,
            is_management_key=st.booleans() | json_values,
        )
        | json_values,
    )
    | maybe(total_credits=amounts, total_usage=amounts),
    "deepseek": doc(
        is_available=st.booleans() | json_values,
        balance_infos=st.lists(doc(currency=currencies, total_balance=amounts), min_size=1, max_size=2)
        | st.lists(doc(currency=currencies, total_balance=amounts), max_size=3)
        | json_values,
    ),
    "moonshot": doc(
        code=st.just(0) | st.sampled_from([1, "0", None]),
        status=st.just(True) | st.sampled_from([False, "true", None]),
        scode=st.just("0x0"),
        data=doc(available_balance=amounts, voucher_balance=amounts, cash_balance=amounts) | json_values,
    ),
    "openai-legacy": doc(
        object=st.just("credit_summary") | st.just("list"),
        total_available=amounts,
        total_granted=amounts,
        grants=doc(data=st.lists(doc(grant_amount=amounts, used_amount=amounts), max_size=2) | json_values),
    ),
}
error_field = maybe(error=json_values | maybe(message=json_values, type=json_values))


def with_error(shape: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A shaped body that may also carry an `error` field (an error inside a 200)."""
    return st.tuples(shape, error_field).map(lambda pair: {**pair[0], **pair[1]} if pair[1] else pair[0])


def bodies(provider: str) -> st.SearchStrategy[Any]:
    """Anything, the documented shape, or the documented shape with an error beside it."""
    return json_values | SHAPED[provider] | SHAPED[provider] | with_error(SHAPED[provider])


async def _no_wait(_seconds: float) -> None:
    return None


async def run_provider(provider: str, body: Any, status: int = 200) -> ProviderReport | None:
    """The report a provider makes of `body` (served for every request), or None after a clear ProviderError."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            status, content=json.dumps(body).encode(), headers={"content-type": "application/json"}
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        deadline = asyncio.get_running_loop().time() + 5
        http = ProviderHttp(client, HostLimiter(4), provider, deadline=deadline, sleep=_no_wait)
        key = SecretStr(KEYS.get(provider, "sk-x0000000"))
        request = FetchRequest(http, "https://provider.test", key, None, (NOW - timedelta(days=40)).date(), NOW)
        try:
            return await PROVIDERS[provider]().fetch(request)
        except ProviderError as exc:
            message = exc.message
    assert message  # says what went wrong
    return None


def _objects(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for child in value.values():
            yield from _objects(child)
    elif isinstance(value, list):
        for child in value:
            yield from _objects(child)


def _number(value: Any) -> Decimal | None:
    try:
        return parse_amount(value)
    except AmountError:
        return None


BALANCE_FIELDS = ("total_balance", "available_balance", "total_available", "limit_remaining")


def stated_balances(body: Any) -> set[Decimal]:
    """Every balance the body states: a balance field, or OpenRouter's credits minus usage."""
    stated = set()
    for obj in _objects(body):
        for name in BALANCE_FIELDS:
            if (value := _number(obj.get(name))) is not None:
                stated.add(value)
        credits, usage = _number(obj.get("total_credits")), _number(obj.get("total_usage"))
        if credits is not None and usage is not None:
            stated.add(credits - usage)
    return stated


def test_every_provider_is_covered() -> None:
    assert set(HTTP_PROVIDERS) == {"openai", "openai-legacy", "anthropic", "openrouter", "deepseek", "moonshot"}
    assert set(SHAPED) == set(HTTP_PROVIDERS)
    # Every other registered provider is fuzzed beside its fake, and every such file exists.
    assert set(PROVIDERS) - {"demo"} <= set(HTTP_PROVIDERS) | set(FUZZED_ELSEWHERE)
    root = Path(__file__).resolve().parent.parent
    assert all((root / path).exists() for name, path in FUZZED_ELSEWHERE.items() if name in PROVIDERS)


@pytest.mark.parametrize("provider", HTTP_PROVIDERS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.data(),
    status=st.sampled_from([200] * 26 + [201, 204, 301, 400, 401, 403, 404, 422, 429, 500, 502, 503, 520]),
)
def test_any_answer_gives_a_report_or_a_clear_error_never_an_unstated_balance(
    provider: str, body: st.DataObject, status: int
) -> None:
    payload = body.draw(bodies(provider), label="body")
    report = asyncio.run(run_provider(provider, payload, status))
    if report is None:
        return
    assert status < 300  # an error status is never read as figures
    stated = stated_balances(payload)
    for money in (report.balance, *report.balances):
        # Every balance shown comes from the body, a zero above all: never a default or a failure.
        if money is not None:
            assert money.amount in stated, f"{money} is not in the body"


# The documented answers (tests/fakes.py and the provider reference), one per provider; served for every path.
DOCUMENTED: dict[str, Any] = {
    "openai": {
        "object": "page",
        "data": [
            {
                "object": "bucket",
                "start_time": int(NOW.timestamp()) // 86400 * 86400,
                "end_time": int(NOW.timestamp()) // 86400 * 86400 + 86400,
                "results": [{"object": "organization.costs.result", "amount": {"value": 0.06, "currency": "usd"}}],
            }
        ],
        "has_more": False,
        "next_page": None,
    },
    "anthropic": {
        "data": [
            {
                "starting_at": f"{NOW.date()}T00:00:00Z",
                "ending_at": f"{NOW.date() + timedelta(days=1)}T00:00:00Z",
                "results": [{"amount": "123.78912", "currency": "USD", "cost_type": "tokens"}],
            }
        ],
        "has_more": False,
        "next_page": None,
    },
    "openrouter": {
        "data": {
            "total_credits": 100.5,
            "total_usage": 25.75,
            "limit": 100,
            "limit_remaining": 74.5,
            "usage_daily": 1.5,
            "usage_monthly": 25.5,
            "is_management_key": True,
        }
    },
    "deepseek": {
        "is_available": True,
        "balance_infos": [
            {
                "currency": "CNY",
                "total_balance": "110.00",
                "granted_balance": "10.00",
                "topped_up_balance": "100.00",
            }
        ],
    },
    "moonshot": {
        "code": 0,
        "data": {"available_balance": 49.58894, "voucher_balance": 46.58893, "cash_balance": 3.00001},
        "scode": "0x0",
        "status": True,
    },
    "openai-legacy": {
        "object": "credit_summary",
        "total_granted": 18.0,
        "total_used": 0.6284545,
        "total_available": 17.3715455,
        "grants": {
            "object": "list",
            "data": [
                {"object": "credit_grant", "grant_amount": 18.0, "used_amount": 0.6284545, "expires_at": 1.7e9}
            ],
        },
    },
}


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING = _Missing()
BREAKAGES = (MISSING, None, 0, "0", "", "junk", [], {}, True, -1)


def broken_variants(value: Any) -> Iterator[tuple[str, Any]]:
    """(where, body) for every way of breaking one field (or one list item) of a body."""
    if isinstance(value, dict):
        for key, child in value.items():
            for breakage in BREAKAGES:
                rest = {k: v for k, v in value.items() if k != key}
                yield f"{key}={breakage!r}", rest if breakage is MISSING else {**rest, key: breakage}
            for where, broken in broken_variants(child):
                yield f"{key}.{where}", {**value, key: broken}
    elif isinstance(value, list):
        for index, child in enumerate(value):
            for where, broken in broken_variants(child):
                yield f"[{index}].{where}", [*value[:index], broken, *value[index + 1 :]]


@pytest.mark.parametrize("provider", HTTP_PROVIDERS)
def test_documented_answer_with_any_one_field_broken_never_shows_an_unstated_balance(provider: str) -> None:
    async def sweep() -> None:
        good = await run_provider(provider, DOCUMENTED[provider])
        assert good is not None  # the documented answer itself reads
        for where, body in broken_variants(DOCUMENTED[provider]):
            report = await run_provider(provider, body)
            for money in (report.balance, *report.balances) if report is not None else ():
                if money is not None:
                    assert money.amount in stated_balances(body), f"{where}: {money} is not in the body"

    asyncio.run(sweep())


def _buckets(body: Any) -> int:
    data = body.get("data") if isinstance(body, dict) else None
    return sum(1 for b in data if isinstance(b, dict)) if isinstance(data, list) else 0


@pytest.mark.parametrize("provider", SPEND_ONLY)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(body={"object": "page", "data": [], "has_more": False, "next_page": None})
@given(body=st.data())
def test_spend_comes_from_cost_buckets_never_from_an_empty_answer(provider: str, body: Any) -> None:
    # `body` is either the explicit example (a page without buckets) or drawn from the documented shape.
    payload = body if isinstance(body, dict) else body.draw(with_error(SHAPED[provider]), label="body")
    report = asyncio.run(run_provider(provider, payload))
    if report is not None and report.daily_spend:
        assert _buckets(payload) > 0, "a spend series was read from an answer without a single cost bucket"
