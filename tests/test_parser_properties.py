"""Property tests: any JSON a provider might send yields a report or a clear ProviderError, never a crash
and never a balance the body did not state."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from bot.providers import PROVIDERS
from bot.providers.base import FetchRequest, HostLimiter, ProviderError, ProviderHttp

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=25,
)
# Bodies shaped like the real ones, with fields that may be missing, mistyped or odd.
shaped = st.fixed_dictionaries(
    {},
    optional={
        "data": json_values
        | st.fixed_dictionaries(
            {},
            optional={"total_credits": json_values, "total_usage": json_values, "available_balance": json_values},
        ),
        "balance_infos": st.lists(
            st.fixed_dictionaries({}, optional={"currency": json_values, "total_balance": json_values}), max_size=3
        ),
        "has_more": json_values,
        "next_page": json_values,
        "status": json_values,
        "code": json_values,
        "total_available": json_values,
        "error": json_values,
    },
)


async def run_provider(provider: str, body: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=json.dumps(body).encode(), headers={"content-type": "application/json"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        now = datetime(2026, 11, 25, 9, tzinfo=UTC)
        http = ProviderHttp(client, HostLimiter(4), provider, deadline=asyncio.get_running_loop().time() + 5)
        request = FetchRequest(http, "https://provider.test", SecretStr("sk-admin-x"), None, now.date(), now)
        try:
            report = await PROVIDERS[provider]().fetch(request)
        except ProviderError as exc:
            message = exc.message
            assert message
            return
    text = json.dumps(body)
    if report.balance is not None and report.balance.amount == 0:
        # A zero balance must come from the body itself, never from a default.
        assert "0" in text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(provider=st.sampled_from(sorted(PROVIDERS)), body=json_values | shaped)
def test_any_json_gives_a_report_or_a_clear_error(provider: str, body: Any) -> None:
    asyncio.run(run_provider(provider, body))
