"""Provider clients against the wire: the loopback fake for documented behaviour, MockTransport for pitfalls."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from bot.models import BalanceSource, ErrorKind
from bot.money import Money
from bot.providers.base import (
    AuthError,
    BadResponseError,
    ProviderError,
    RateLimitedError,
    UnavailableError,
)
from bot.retry_after import parse_retry_after
from tests.conftest import fetch, fetch_request
from tests.fakes import HTML_PAGE, FakeProviderServer, Scripted, utc_today

D = Decimal


def mock_client(
    *responses: httpx.Response | Callable[[httpx.Request], httpx.Response],
) -> tuple[httpx.AsyncClient, list[httpx.Request]]:
    """A client whose transport answers with the given responses in order (the last one repeats)."""
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return answer(request) if callable(answer) else answer

    return httpx.AsyncClient(transport=httpx.MockTransport(handler)), seen


# --- OpenAI admin costs -------------------------------------------------------------------------------


async def test_openai_costs_paginates_and_sums_daily_spend(fake: FakeProviderServer) -> None:
    today = utc_today()
    fake.state.openai_daily = {
        today: D("1.20"),
        today - timedelta(days=1): D("0.75"),
        today - timedelta(days=35): D("3.00"),
    }
    async with httpx.AsyncClient() as client:
        request = fetch_request(client, "openai", fake.base_url("openai"), since=today - timedelta(days=400))
        report = await fetch("openai", request)
    # 401 daily buckets at up to 180 per page: three pages, cursor followed each time.
    assert fake.state.count("openai", "/v1/organization/costs") == 3
    pages = [r.query.get("page") for r in fake.state.requests]
    assert pages == [None, ["page_1"], ["page_2"]]
    assert report.balance is None  # OpenAI reports spend only
    assert report.spent_today.amount == D("1.2")
    assert report.daily_spend[0].day == today - timedelta(days=400)
    assert sum(d.amount.amount for d in report.daily_spend) == D("4.95")
    month_expected = sum(v for k, v in fake.state.openai_daily.items() if k >= today.replace(day=1))
    assert report.spent_month.amount == month_expected
    # end_time is never in the future and start_time is the first requested UTC midnight.
    first = fake.state.requests[0].query
    assert int(first["end_time"][0]) <= int(datetime.now(UTC).timestamp())
    assert int(first["start_time"][0]) % 86400 == 0


async def test_openai_string_amounts_and_result_key(fake: FakeProviderServer) -> None:
    today = utc_today()
    fake.state.openai_daily = {today: D("12.50")}
    fake.state.openai_string_amounts = True
    fake.state.openai_results_key = "result"  # the first published spec's name
    async with httpx.AsyncClient() as client:
        report = await fetch("openai", fetch_request(client, "openai", fake.base_url("openai")))
    assert report.spent_today.amount == D("12.50")
    assert report.currency == "USD"


async def test_openai_project_key_gets_admin_key_explanation(fake: FakeProviderServer) -> None:
    async with httpx.AsyncClient() as client:
        request = fetch_request(client, "openai", fake.base_url("openai"), key="sk-proj-abc123")
        with pytest.raises(AuthError) as caught:
            await fetch("openai", request)
    assert "admin key (sk-admin-...)" in caught.value.message
    assert "api.usage.read" in caught.value.message
    assert fake.state.count("openai") == 1  # auth failures are not retried


async def test_openai_missing_scope_with_401_is_matched_on_message() -> None:
    body = {"error": {"message": "Missing scopes: api.usage.read", "type": "invalid_request_error"}}
    client, _ = mock_client(httpx.Response(401, json=body))
    async with client:
        with pytest.raises(AuthError, match="needs an admin key"):
            await fetch("openai", fetch_request(client, "openai", "https://api.openai.com"))


async def test_openai_has_more_without_cursor_is_an_error_not_underreporting() -> None:
    page = {"object": "page", "data": [], "has_more": True, "next_page": None}
    client, _ = mock_client(httpx.Response(200, json=page))
    async with client:
        with pytest.raises(BadResponseError, match="next_page"):
            await fetch("openai", fetch_request(client, "openai", "https://api.openai.com"))


async def test_openai_repeated_cursor_is_an_error() -> None:
    page = {"object": "page", "data": [], "has_more": True, "next_page": "page_same"}
    client, seen = mock_client(httpx.Response(200, json=page))
    async with client:
        with pytest.raises(BadResponseError):
            await fetch("openai", fetch_request(client, "openai", "https://api.openai.com"))
    assert len(seen) == 2


async def test_openai_error_inside_200_is_an_error() -> None:
    client, _ = mock_client(httpx.Response(200, json={"error": {"message": "internal problem"}}))
    async with client:
        with pytest.raises(BadResponseError, match="internal problem"):
            await fetch("openai", fetch_request(client, "openai", "https://api.openai.com"))


async def test_openai_base_url_prefix_is_kept() -> None:
    bucket = {"object": "bucket", "start_time": 1_700_000_000, "end_time": 1_700_086_400, "results": []}
    page = {"object": "page", "data": [bucket], "has_more": False, "next_page": None}
    client, seen = mock_client(httpx.Response(200, json=page))
    async with client:
        await fetch("openai", fetch_request(client, "openai", "https://proxy.example/openai-proxy/"))
    assert seen[0].url.path == "/openai-proxy/v1/organization/costs"


# --- Anthropic cost report ----------------------------------------------------------------------------


async def test_anthropic_cents_strings_and_pages(fake: FakeProviderServer) -> None:
    today = utc_today()
    fake.state.anthropic_daily_cents = {today: D("123.78912"), today - timedelta(days=3): D("41300")}
    async with httpx.AsyncClient() as client:
        request = fetch_request(client, "anthropic", fake.base_url("anthropic"), since=today - timedelta(days=40))
        report = await fetch("anthropic", request)
    assert fake.state.count("anthropic") == 2  # 41 daily buckets, 31 per page
    assert report.spent_today.amount == D("1.2378912")  # cents, not dollars
    assert sum(d.amount.amount for d in report.daily_spend) == D("414.2378912")
    assert len(report.daily_spend) == 41
    headers = fake.state.requests[0].headers
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["x-api-key"].startswith("sk-ant-admin")


async def test_anthropic_inference_key_gets_admin_key_explanation(fake: FakeProviderServer) -> None:
    async with httpx.AsyncClient() as client:
        request = fetch_request(client, "anthropic", fake.base_url("anthropic"), key="sk-ant-api03-xyz")
        with pytest.raises(AuthError, match=r"Admin API key \(sk-ant-admin01-"):
            await fetch("anthropic", request)


async def test_anthropic_200_without_data_is_not_zero() -> None:
    client, _ = mock_client(httpx.Response(200, json={"type": "error"}))
    async with client:
        with pytest.raises(BadResponseError, match="missing 'data'"):
            await fetch("anthropic", fetch_request(client, "anthropic", "https://api.anthropic.com"))


@pytest.mark.parametrize("bad", ["inf", "NaN", "12,5", "", True])
async def test_anthropic_rejects_non_numeric_amounts(bad: object) -> None:
    today = utc_today().isoformat()
    body = {
        "data": [
            {
                "starting_at": f"{today}T00:00:00Z",
                "ending_at": f"{today}T23:59:59Z",
                "results": [{"amount": bad, "currency": "USD"}],
            }
        ],
        "has_more": False,
        "next_page": None,
    }
    client, _ = mock_client(httpx.Response(200, json=body))
    async with client:
        with pytest.raises(BadResponseError):
            await fetch("anthropic", fetch_request(client, "anthropic", "https://api.anthropic.com"))


# --- OpenRouter ---------------------------------------------------------------------------------------


async def test_openrouter_management_key_reports_balance(fake: FakeProviderServer) -> None:
    today = utc_today()
    fake.state.openrouter_activity = [
        {"date": f"{today - timedelta(days=1)} 00:00:00", "model": "a", "usage": 2.5, "requests": 3},
        {"date": f"{today - timedelta(days=1)} 00:00:00", "model": "b", "usage": 0.5, "requests": 1},
        {"date": f"{today}", "model": "a", "usage": 1.0, "requests": 1},
    ]
    async with httpx.AsyncClient() as client:
        report = await fetch("openrouter", fetch_request(client, "openrouter", fake.base_url("openrouter")))
    assert report.balance.amount == D("74.75")
    assert report.balance_source is BalanceSource.REPORTED
    # Today's spend so far comes from the activity of today's date.
    assert report.spent_today == Money(D("1.0"), "USD")
    assert report.daily_spend[-1].day == today
    assert {d.day: d.amount.amount for d in report.daily_spend}[today - timedelta(days=1)] == D("3.0")


async def test_openrouter_days_without_activity_rows_spent_nothing_and_today_without_rows_is_unknown(
    fake: FakeProviderServer,
) -> None:
    today = utc_today()
    first = today.replace(day=1)
    # Usage only on the second of the month (when there is one before today): nothing on the 1st.
    fake.state.openrouter_activity = [
        {"date": f"{first + timedelta(days=1)} 00:00:00", "model": "a", "usage": 2.0, "requests": 1},
        {"date": f"{today - timedelta(days=40)} 00:00:00", "model": "a", "usage": 9.0, "requests": 1},
    ]
    async with httpx.AsyncClient() as client:
        request = fetch_request(
            client, "openrouter", fake.base_url("openrouter"), since=today - timedelta(days=60)
        )
        report = await fetch("openrouter", request)
    days = {d.day: d.amount.amount for d in report.daily_spend}
    assert min(days) == today - timedelta(days=30)  # the activity's window: days before it are unknown
    assert max(days) == today - timedelta(days=1)  # no rows for today: not reported yet
    assert report.spent_today is None
    assert days.get(first, D(0)) == 0
    spent_in_month = D("2.0") if first + timedelta(days=1) < today else D(0)
    if today == first:
        assert report.spent_month is None  # nothing of this month is reported yet
    else:
        assert report.spent_month == Money(spent_in_month, "USD")
        assert report.spent_month_through == today - timedelta(days=1)


async def test_openrouter_non_management_403_falls_back_to_key_limit(fake: FakeProviderServer) -> None:
    async with httpx.AsyncClient() as client:
        request = fetch_request(client, "openrouter", fake.base_url("openrouter"), key="sk-or-v1-normal")
        report = await fetch("openrouter", request)
    assert report.balance_source is BalanceSource.KEY_LIMIT
    assert report.balance.amount == D("74.5")
    assert report.spent_month.amount == D("25.5")
    assert any("not the account balance" in note for note in report.notes)


async def test_openrouter_zeros_for_normal_key_are_not_a_zero_balance(fake: FakeProviderServer) -> None:
    fake.state.openrouter_normal_key_mode = "zeros"
    async with httpx.AsyncClient() as client:
        request = fetch_request(client, "openrouter", fake.base_url("openrouter"), key="sk-or-v1-normal")
        report = await fetch("openrouter", request)
    assert report.balance_source is BalanceSource.KEY_LIMIT
    assert report.balance.amount == D("74.5")


async def test_openrouter_zeros_without_key_details_is_an_error() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/credits"):
            return httpx.Response(200, json={"total_credits": 0, "total_usage": 0})
        return httpx.Response(500, text="boom")

    client, _ = mock_client(answer)
    async with client:
        with pytest.raises(BadResponseError, match="answered zeros"):
            await fetch("openrouter", fetch_request(client, "openrouter", "https://openrouter.ai"))


async def test_openrouter_unlimited_key_has_no_balance_rather_than_zero(fake: FakeProviderServer) -> None:
    fake.state.openrouter_key.update(limit=None, limit_remaining=None)
    async with httpx.AsyncClient() as client:
        request = fetch_request(client, "openrouter", fake.base_url("openrouter"), key="sk-or-v1-normal")
        report = await fetch("openrouter", request)
    assert report.balance is None
    assert report.spent_today.amount == D("1.5")


async def test_openrouter_invalid_key_is_an_auth_error(fake: FakeProviderServer) -> None:
    async with httpx.AsyncClient() as client:
        request = fetch_request(client, "openrouter", fake.base_url("openrouter"), key="bogus")
        with pytest.raises(AuthError, match="User not found"):
            await fetch("openrouter", request)


# --- DeepSeek -----------------------------------------------------------------------------------------


async def test_deepseek_documented_shape(fake: FakeProviderServer) -> None:
    async with httpx.AsyncClient() as client:
        report = await fetch("deepseek", fetch_request(client, "deepseek", fake.base_url("deepseek")))
    assert report.balance.amount == D("110.00")
    assert report.currency == "CNY"


@pytest.mark.parametrize(
    ("infos", "preferred", "currency", "amount"),
    [
        # USD row empty, CNY funded: the funded one, whatever the order.
        (
            [{"currency": "USD", "total_balance": "0.00"}, {"currency": "CNY", "total_balance": "71.46"}],
            None,
            "CNY",
            D("71.46"),
        ),
        (
            [{"currency": "CNY", "total_balance": 71.46}, {"currency": "USD", "total_balance": 0}],
            None,
            "CNY",
            D("71.46"),
        ),
        (
            [{"currency": "USD", "total_balance": "0.00"}, {"currency": "CNY", "total_balance": "0.00"}],
            None,
            "USD",
            D("0.00"),
        ),
        (
            [{"currency": "USD", "total_balance": "3.10"}, {"currency": "CNY", "total_balance": "71.46"}],
            "CNY",
            "CNY",
            D("71.46"),
        ),
    ],
)
async def test_deepseek_currency_choice(
    fake: FakeProviderServer, infos: list, preferred: str | None, currency: str, amount: Decimal
) -> None:
    fake.state.deepseek_infos = infos
    async with httpx.AsyncClient() as client:
        request = fetch_request(client, "deepseek", fake.base_url("deepseek"), currency=preferred)
        report = await fetch("deepseek", request)
    assert report.balance.currency == currency
    assert report.balance.amount == amount
    assert {m.currency for m in report.balances} == {i["currency"] for i in infos}  # never added together


async def test_deepseek_unavailable_flag_is_noted(fake: FakeProviderServer) -> None:
    fake.state.deepseek_available = False
    async with httpx.AsyncClient() as client:
        report = await fetch("deepseek", fetch_request(client, "deepseek", fake.base_url("deepseek")))
    assert any("not available" in note for note in report.notes)
    assert report.balance.amount == D("110.00")


async def test_deepseek_revoked_key_is_auth_and_key_is_not_echoed(fake: FakeProviderServer) -> None:
    async with httpx.AsyncClient() as client:
        request = fetch_request(client, "deepseek", fake.base_url("deepseek"), key="sk-abcdefghrevoked")
        with pytest.raises(AuthError) as caught:
            await fetch("deepseek", request)
    assert caught.value.kind is ErrorKind.AUTH
    assert "sk-abcdefghrevoked" not in caught.value.message


# --- Moonshot -----------------------------------------------------------------------------------------


async def test_moonshot_currency_follows_host() -> None:
    body = {
        "code": 0,
        "data": {"available_balance": 49.58894, "voucher_balance": 46.58893, "cash_balance": 3.00001},
        "scode": "0x0",
        "status": True,
    }
    client, _ = mock_client(httpx.Response(200, json=body))
    async with client:
        cn = await fetch("moonshot", fetch_request(client, "moonshot", "https://api.moonshot.cn"))
        intl = await fetch("moonshot", fetch_request(client, "moonshot", "https://api.moonshot.ai"))
        overridden = await fetch(
            "moonshot", fetch_request(client, "moonshot", "https://api.moonshot.cn", currency="USD")
        )
    assert (cn.currency, intl.currency, overridden.currency) == ("CNY", "USD", "USD")
    assert cn.balance.amount == D("49.58894")


async def test_moonshot_status_false_in_200_is_an_error() -> None:
    body = {"code": 1, "data": None, "scode": "0x5", "status": False, "error": None}
    client, _ = mock_client(httpx.Response(200, json=body))
    async with client:
        with pytest.raises(BadResponseError, match="moonshot reported an error"):
            await fetch("moonshot", fetch_request(client, "moonshot", "https://api.moonshot.ai"))


async def test_moonshot_wrong_region_key_explains(fake: FakeProviderServer) -> None:
    async with httpx.AsyncClient() as client:
        request = fetch_request(client, "moonshot", fake.base_url("moonshot"), key="wrong-region")
        with pytest.raises(AuthError, match="bound to a region"):
            await fetch("moonshot", request)


async def test_moonshot_negative_cash_is_noted(fake: FakeProviderServer) -> None:
    fake.state.moonshot_data = {"available_balance": 5.0, "voucher_balance": 5.0, "cash_balance": -2.5}
    async with httpx.AsyncClient() as client:
        report = await fetch("moonshot", fetch_request(client, "moonshot", fake.base_url("moonshot")))
    assert report.balance.amount == D("5.0")
    assert any("arrears" in n for n in report.notes)


# --- OpenAI legacy dashboard --------------------------------------------------------------------------


async def test_legacy_session_key_reads_grants_usage_and_limit(fake: FakeProviderServer) -> None:
    today = utc_today()
    fake.state.legacy_daily_cents = {today: 250.0, today - timedelta(days=1): 100.0}
    async with httpx.AsyncClient() as client:
        report = await fetch(
            "openai-legacy", fetch_request(client, "openai-legacy", fake.base_url("openai-legacy"))
        )
    assert report.balance.amount == D("17.3715455")
    assert report.balance_source is BalanceSource.REPORTED
    assert report.spent_today.amount == D("2.5")  # usage is in cents
    assert report.grants[0].expires_at == datetime.fromtimestamp(1682899200, UTC)
    assert any("hard limit $120.00" in n for n in report.notes)
    assert any("experimental" in n for n in report.notes)


async def test_legacy_api_key_gets_session_key_explanation(fake: FakeProviderServer) -> None:
    async with httpx.AsyncClient() as client:
        request = fetch_request(client, "openai-legacy", fake.base_url("openai-legacy"), key="sk-proj-123456")
        with pytest.raises(AuthError, match=r"browser session key \(sess-"):
            await fetch("openai-legacy", request)


async def test_legacy_expired_session_key_explains(fake: FakeProviderServer) -> None:
    async with httpx.AsyncClient() as client:
        request = fetch_request(client, "openai-legacy", fake.base_url("openai-legacy"), key="sess-abcdexpired")
        with pytest.raises(AuthError, match="expire within days"):
            await fetch("openai-legacy", request)


async def test_legacy_session_key_error_inside_200_is_auth() -> None:
    body = {
        "error": {
            "message": "Your request to GET /dashboard/billing/credit_grants must be made with a "
            "session key (that is, it can only be made from the browser).",
            "type": "server_error",
        }
    }
    client, _ = mock_client(httpx.Response(200, json=body))
    async with client:
        with pytest.raises(AuthError, match="session key"):
            await fetch("openai-legacy", fetch_request(client, "openai-legacy", "https://api.openai.com"))


# --- Shared HTTP behaviour ----------------------------------------------------------------------------


async def test_429_with_retry_after_is_retried_then_succeeds(fake: FakeProviderServer) -> None:
    fake.state.script("deepseek", Scripted(429, {"error": {"message": "slow down"}}, {"Retry-After": "1"}))
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async with httpx.AsyncClient() as client:
        request = fetch_request(client, "deepseek", fake.base_url("deepseek"))
        request.http.sleep = sleep
        report = await fetch("deepseek", request)
    assert slept == [1.0]
    assert report.balance.amount == D("110.00")


async def test_429_asking_for_longer_than_the_deadline_fails_fast(fake: FakeProviderServer) -> None:
    fake.state.script("deepseek", Scripted(429, {"error": {"message": "slow down"}}, {"Retry-After": "120"}))
    async with httpx.AsyncClient() as client:
        request = fetch_request(client, "deepseek", fake.base_url("deepseek"), timeout=3)
        with pytest.raises(RateLimitedError, match="retry after 120 s"):
            await fetch("deepseek", request)
    assert fake.state.count("deepseek") == 1


async def test_429_storm_without_retry_after_gives_up_after_bounded_attempts(fake: FakeProviderServer) -> None:
    fake.state.script("deepseek", *[Scripted(429, {"error": {"message": "busy"}}) for _ in range(10)])
    async with httpx.AsyncClient() as client:
        with pytest.raises(RateLimitedError):
            await fetch("deepseek", fetch_request(client, "deepseek", fake.base_url("deepseek")))
    assert fake.state.count("deepseek") == 3


async def test_502_html_page_then_success(fake: FakeProviderServer) -> None:
    fake.state.script("moonshot", Scripted(502, HTML_PAGE, {"Content-Type": "text/html"}))
    async with httpx.AsyncClient() as client:
        report = await fetch("moonshot", fetch_request(client, "moonshot", fake.base_url("moonshot")))
    assert report.balance is not None


async def test_persistent_html_error_page_is_a_clear_error(fake: FakeProviderServer) -> None:
    fake.state.script("moonshot", *[Scripted(502, HTML_PAGE, {"Content-Type": "text/html"}) for _ in range(3)])
    async with httpx.AsyncClient() as client:
        with pytest.raises(UnavailableError, match=r"HTTP 502\): an HTML error page"):
            await fetch("moonshot", fetch_request(client, "moonshot", fake.base_url("moonshot")))


@pytest.mark.parametrize(
    ("answer", "error", "text"),
    [
        (
            Scripted(200, b"<html><body>Login</body></html>", {"Content-Type": "text/html"}),
            BadResponseError,
            "HTML page",
        ),
        (
            Scripted(200, b'{"is_available": true, "balance_infos": [', {"Content-Type": "application/json"}),
            BadResponseError,
            "malformed JSON",
        ),
        (Scripted(200, {"is_available": True}), BadResponseError, "missing 'balance_infos'"),
        (Scripted(404, {"error": {"message": "no route"}}), BadResponseError, "HTTP 404: no route"),
    ],
)
async def test_unreadable_answers_are_clear_errors(
    fake: FakeProviderServer, answer: Scripted, error: type[ProviderError], text: str
) -> None:
    fake.state.script("deepseek", answer)
    async with httpx.AsyncClient() as client:
        with pytest.raises(error, match=text):
            await fetch("deepseek", fetch_request(client, "deepseek", fake.base_url("deepseek")))


async def test_huge_body_is_refused() -> None:
    client, _ = mock_client(httpx.Response(200, content=b"[" + b"1," * (3 * 1024 * 1024) + b"1]"))
    async with client:
        with pytest.raises(BadResponseError, match="larger than 4 MB"):
            await fetch("deepseek", fetch_request(client, "deepseek", "https://api.deepseek.com"))


async def test_stalled_body_times_out_as_unavailable(fake: FakeProviderServer) -> None:
    body = json.dumps({"is_available": True, "balance_infos": []}).encode() * 4
    fake.state.script("deepseek", *[Scripted(200, body, stall=True) for _ in range(3)])
    async with httpx.AsyncClient(timeout=httpx.Timeout(0.3)) as client:
        with pytest.raises(UnavailableError, match="did not answer in time"):
            await fetch("deepseek", fetch_request(client, "deepseek", fake.base_url("deepseek")))


async def test_connection_refused_is_unavailable_and_names_the_address() -> None:
    async with httpx.AsyncClient(timeout=1) as client:
        with pytest.raises(
            UnavailableError, match=r"could not reach deepseek: 127\.0\.0\.1:9 refused the connection"
        ):
            await fetch("deepseek", fetch_request(client, "deepseek", "http://127.0.0.1:9"))


def _failing(exc: Exception) -> httpx.AsyncClient:
    def answer(request: httpx.Request) -> httpx.Response:
        raise exc

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            httpx.ConnectError("[Errno -2] Name or service not known"),
            "the host name api.deepseek.test does not resolve (DNS)",
        ),
        (httpx.ConnectTimeout("timed out"), "api.deepseek.test did not accept a connection in time"),
        (httpx.ReadTimeout("timed out"), "deepseek did not answer in time (api.deepseek.test)"),
        (httpx.RemoteProtocolError("peer closed"), "the connection to api.deepseek.test broke off mid-answer"),
    ],
)
async def test_network_failures_name_the_host_and_what_failed(exc: Exception, expected: str) -> None:
    async with _failing(exc) as client:
        with pytest.raises(UnavailableError) as caught:
            await fetch("deepseek", fetch_request(client, "deepseek", "https://api.deepseek.test"))
    assert expected in caught.value.message


async def test_a_name_that_does_not_resolve_is_told_by_its_cause() -> None:
    error = httpx.ConnectError("All connection attempts failed")
    error.__cause__ = socket.gaierror(-2, "unknown")
    async with _failing(error) as client:
        with pytest.raises(UnavailableError, match="does not resolve"):
            await fetch("deepseek", fetch_request(client, "deepseek", "https://api.deepseek.test"))


async def test_per_host_limit_caps_concurrent_requests(fake: FakeProviderServer) -> None:
    fake.state.latency = 0.1
    async with httpx.AsyncClient() as client:
        first = fetch_request(client, "deepseek", fake.base_url("deepseek"))
        limiter = first.http.limiter
        requests = [first]
        for _ in range(9):
            other = fetch_request(client, "deepseek", fake.base_url("deepseek"))
            other.http.limiter = limiter
            requests.append(other)
        await asyncio.gather(*(fetch("deepseek", r) for r in requests))
    assert fake.state.peak_in_flight["deepseek"] == 4


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 25 Nov 2026 09:00:30 GMT", now) == 30.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


async def test_since_controls_the_requested_window(fake: FakeProviderServer) -> None:
    async with httpx.AsyncClient() as client:
        request = fetch_request(
            client, "anthropic", fake.base_url("anthropic"), since=utc_today() - timedelta(days=2)
        )
        report = await fetch("anthropic", request)
    # Two completed days; today's bucket holds no cost yet, so today is not reported (unknown, not $0).
    assert len(report.daily_spend) == 2
    assert report.daily_spend[0].day == utc_today() - timedelta(days=2)
    assert report.spent_today is None
