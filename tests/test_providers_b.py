"""xAI, Venice, StepFun, DeepInfra and ElevenLabs against their loopback fake (tests/fake_billing_b.py): the
documented shapes, the pitfalls of each, strict parsing, refused keys, and each through `creditbot check`."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from bot.config import Account, AppConfig
from bot.models import BalanceSource, ProviderReport, Status
from bot.money import AmountError, Money, parse_amount
from bot.monitor import Monitor
from bot.providers import PROVIDERS
from bot.providers.base import AuthError, BadResponseError, FetchRequest, ProviderError
from bot.store import Store
from tests.conftest import fetch, fetch_request, make_settings
from tests.fake_billing_b import KEYS_B, FakeBillingServer
from tests.fakes import Scripted
from tests.test_cli import run_cli
from tests.test_parser_properties import broken_variants, json_values, run_provider

D = Decimal
ROOT = Path(__file__).resolve().parents[1]
# `python -m bot` in a subprocess must import this checkout, not whichever one the interpreter has installed.
CLI_ENV = {"PYTHONPATH": str(ROOT)}
MINE = ("xai", "venice", "stepfun", "deepinfra", "elevenlabs")


@pytest.fixture
def billing() -> Iterator[FakeBillingServer]:
    with FakeBillingServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _no_key_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    # conftest's canary check knows only its own keys; these are this file's.
    caplog.set_level(logging.INFO)
    yield
    canaries = [key[key.index("TESTKEY") :] for key in KEYS_B.values()]
    for record in caplog.get_records("call"):
        text = record.getMessage() + (record.exc_text or "")
        assert not any(c in text for c in canaries), f"a key reached the log: {text[:300]}"


def request_for(client: httpx.AsyncClient, provider: str, base_url: str, **extra: Any) -> FetchRequest:
    return fetch_request(client, provider, base_url, key=extra.pop("key", KEYS_B[provider]), **extra)


async def read(billing: FakeBillingServer, provider: str, **extra: Any) -> ProviderReport:
    team_id = extra.pop("team_id", None)
    async with httpx.AsyncClient() as client:
        request = request_for(client, provider, billing.base_url(provider), **extra)
        if team_id is not None:
            request = replace(request, team_id=team_id)
        report: ProviderReport = await fetch(provider, request)
    return report


async def read_error(billing: FakeBillingServer, provider: str, **extra: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await read(billing, provider, **extra)
    return caught.value


def test_the_class_lines_say_what_creditbot_providers_shows() -> None:
    assert {p: (PROVIDERS[p].experimental, PROVIDERS[p].reports, PROVIDERS[p].env) for p in MINE} == {
        "xai": (True, "balance", "XAI_MANAGEMENT_KEY"),
        "venice": (False, "balance", "VENICE_API_KEY"),
        "stepfun": (False, "balance", "STEPFUN_API_KEY"),
        "deepinfra": (True, "balance", "DEEPINFRA_API_KEY"),
        "elevenlabs": (False, "quota", "ELEVENLABS_API_KEY"),
    }
    assert PROVIDERS["xai"].default_base_url == "https://management-api.x.ai"
    assert "Management Keys" in PROVIDERS["xai"].key
    assert list(PROVIDERS)[-1] == "demo"


# --- xAI ------------------------------------------------------------------------------------------------


async def test_xai_negative_cents_are_credit_and_the_team_comes_from_teamid(billing: FakeBillingServer) -> None:
    report = await read(billing, "xai")
    assert report.balance == Money(D("25"), "USD")  # "-2500" cents: $25.00 left, not -$2,500
    assert report.balance_source is BalanceSource.REPORTED
    assert report.currency == "USD"
    assert any("ledger can lag" in note for note in report.notes)
    paths = [r.path for r in billing.state.requests]
    assert paths == ["/auth/management-keys/validation", "/v1/billing/teams/team-1/prepaid/balance"]
    assert billing.state.requests[0].headers["authorization"] == f"Bearer {KEYS_B['xai']}"


async def test_xai_team_from_scopeid_when_scoped_to_a_team(billing: FakeBillingServer) -> None:
    billing.state.xai_validation = {"apiKeyId": "mk-2", "scope": "SCOPE_TEAM", "scopeId": "team-2"}
    billing.state.xai_totals = {"team-2": "-1234"}
    report = await read(billing, "xai")
    assert report.balance == Money(D("12.34"), "USD")
    assert billing.state.count("xai", "/teams/team-2/prepaid/balance") == 1


async def test_xai_configured_team_makes_no_validation_call(billing: FakeBillingServer) -> None:
    billing.state.xai_totals = {"team-9": "-500"}
    report = await read(billing, "xai", team_id="team-9")
    assert report.balance == Money(D("5"), "USD")
    assert billing.state.count("xai", "/auth/management-keys/validation") == 0
    assert [r.path for r in billing.state.requests] == ["/v1/billing/teams/team-9/prepaid/balance"]


async def test_xai_positive_cents_are_money_owed(billing: FakeBillingServer) -> None:
    billing.state.xai_totals = {"team-1": "310"}
    report = await read(billing, "xai")
    assert report.balance == Money(D("-3.10"), "USD")
    assert any("$3.10 owed" in note for note in report.notes)


@pytest.mark.parametrize(
    "validation",
    [
        {"apiKeyId": "mk-3", "scope": "SCOPE_USER", "scopeId": "user-1"},
        {"apiKeyId": "mk-3", "scope": "SCOPE_TEAM"},
        {"apiKeyId": "mk-3", "teamId": ""},
    ],
)
async def test_xai_no_team_anywhere_says_to_set_team_id(
    billing: FakeBillingServer, validation: dict[str, Any]
) -> None:
    billing.state.xai_validation = validation
    error = await read_error(billing, "xai")
    assert isinstance(error, BadResponseError)
    assert "team_id" in error.message
    assert billing.state.count("xai", "/prepaid/balance") == 0


async def test_xai_validation_failing_also_says_to_set_team_id(billing: FakeBillingServer) -> None:
    billing.state.fail("xai/auth/management-keys/validation", Scripted(404, {"error": "Not found"}))
    error = await read_error(billing, "xai")
    assert "team_id" in error.message


# --- Venice ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("consumption", "expected", "beside"),
    [
        ("USD", Money(D("25"), "USD"), Money(D("90.5"), "diem")),
        (None, Money(D("25"), "USD"), Money(D("90.5"), "diem")),
        ("DIEM", Money(D("90.5"), "diem"), Money(D("25"), "USD")),
    ],
)
async def test_venice_reports_the_balance_being_spent_and_lists_the_other_beside_it(
    billing: FakeBillingServer, consumption: str | None, expected: Money, beside: Money
) -> None:
    billing.state.venice_consumption = consumption
    report = await read(billing, "venice")
    assert report.balance == expected
    assert report.currency == expected.currency
    assert report.balances == (expected, beside)  # listed, never added: no 115.5 anywhere
    assert report.refused is None


async def test_venice_other_consumption_currency_reads_its_own_balance_in_credits(
    billing: FakeBillingServer,
) -> None:
    billing.state.venice_consumption = "VCU"
    billing.state.venice_balances = {"vcu": 1500, "diem": 0, "usd": 3}
    report = await read(billing, "venice")
    assert report.balance == Money(D("1500"), "credits")
    assert report.balance.format() == "1,500 credits"


async def test_venice_consumption_currency_without_its_balance_is_an_error_naming_it(
    billing: FakeBillingServer,
) -> None:
    billing.state.venice_consumption = "BUNDLED_CREDITS"
    error = await read_error(billing, "venice")
    assert isinstance(error, BadResponseError)
    assert "BUNDLED_CREDITS" in error.message


async def test_venice_cannot_consume_is_a_refusal(billing: FakeBillingServer) -> None:
    billing.state.venice_can_consume = False
    report = await read(billing, "venice")
    assert report.refused == "Venice says requests are refused (canConsume false)"
    assert any("canConsume false" in note for note in report.notes)
    assert report.balance == Money(D("90.5"), "diem")  # the balance is still what Venice says


# --- StepFun --------------------------------------------------------------------------------------------


async def test_stepfun_balance_in_cny_with_cash_voucher_and_type_in_the_notes(billing: FakeBillingServer) -> None:
    report = await read(billing, "stepfun")
    assert report.balance == Money(D("88.42"), "CNY")
    assert report.balances == (report.balance,)
    assert report.notes == ("of which cash ¥68.42, vouchers ¥20.00", "prepaid account")
    assert billing.state.requests[0].headers["authorization"] == f"Bearer {KEYS_B['stepfun']}"


# --- DeepInfra ------------------------------------------------------------------------------------------


async def test_deepinfra_negative_stripe_balance_is_funds_and_usage_cents_are_the_period_spend(
    billing: FakeBillingServer,
) -> None:
    report = await read(billing, "deepinfra")
    assert report.balance == Money(D("12.5"), "USD")
    assert report.spent_month == Money(D("3.40"), "USD")  # 340 cents
    queries = {r.path: r.query for r in billing.state.requests}
    assert queries == {"/payment/checklist": {"compute_owed": ["true"]}, "/payment/usage": {"from": ["current"]}}


@pytest.mark.parametrize(
    "failure",
    [
        Scripted(404, {"detail": "Not Found"}),
        Scripted(500, {"detail": "Internal Server Error"}),
        Scripted(200, {"items": []}),  # no total_cost: unknown, not $0
    ],
)
async def test_deepinfra_usage_failing_leaves_the_balance_and_is_noted(
    billing: FakeBillingServer, failure: Scripted
) -> None:
    billing.state.fail("deepinfra/payment/usage", failure)
    report = await read(billing, "deepinfra")
    assert report.balance == Money(D("12.5"), "USD")
    assert report.spent_month is None
    assert any(note.startswith("spend this period unavailable") for note in report.notes)


async def test_deepinfra_checklist_failing_fails_the_fetch(billing: FakeBillingServer) -> None:
    billing.state.fail("deepinfra/payment/checklist", Scripted(404, {"detail": "Not Found"}))
    error = await read_error(billing, "deepinfra")
    assert "HTTP 404" in error.message


# --- ElevenLabs -----------------------------------------------------------------------------------------


async def test_elevenlabs_characters_left_never_in_the_answers_currency(billing: FakeBillingServer) -> None:
    assert billing.state.elevenlabs_subscription["currency"] == "usd"
    report = await read(billing, "elevenlabs")
    assert report.balance == Money(D("12500"), "characters")
    assert report.currency == "characters"
    assert report.balance.format() == "12,500 characters"
    assert report.granted_total == Money(D("30000"), "characters")
    assert report.resets_at == datetime(2030, 1, 1, tzinfo=UTC)
    assert "resets on 2030-01-01" in report.notes
    headers = billing.state.requests[0].headers
    assert headers["xi-api-key"] == KEYS_B["elevenlabs"]
    assert "authorization" not in headers


async def test_elevenlabs_run_out_after_the_reset_is_no_run_out(
    tmp_path: Path, billing: FakeBillingServer
) -> None:
    account = Account(
        name="eleven",
        provider="elevenlabs",
        api_key=SecretStr(KEYS_B["elevenlabs"]),
        base_url=billing.base_url("elevenlabs"),
        origin="test",
        spend_only=False,
    )
    config = AppConfig(make_settings(tmp_path), (account,), "test")
    start = datetime(2029, 12, 1, 6, tzinfo=UTC)
    clock = [start]
    subscription = billing.state.elevenlabs_subscription
    store = await Store.open(config.settings.database_url)
    try:
        async with httpx.AsyncClient() as http:
            monitor = Monitor(config, store, http, clock=lambda: clock[0])
            subscription["character_count"] = 10000  # 20,000 left
            await monitor.refresh()
            clock[0] = start + timedelta(hours=12)
            subscription["character_count"] = 14000  # 16,000 left: 8,000 a day, two days of runway

            later = clock[0] + timedelta(days=10)
            subscription["next_character_count_reset_unix"] = int(later.timestamp())
            await monitor.refresh()
            (before_reset,) = await monitor.views(stored_only=True)

            soon = clock[0] + timedelta(days=1)
            subscription["next_character_count_reset_unix"] = int(soon.timestamp())
            await monitor.refresh()
            (after_reset,) = await monitor.views(stored_only=True)
    finally:
        await store.close()
    # Reset in ten days: the quota runs out first, in two.
    assert before_reset.burn_rate == Money(D("8000"), "characters")
    assert before_reset.days_left == D("2")
    assert before_reset.run_out == (start + timedelta(days=2, hours=12)).date()
    # Reset tomorrow: the burn would empty it only after the renewal, so there is no run-out.
    assert after_reset.balance == Money(D("16000"), "characters")
    assert after_reset.days_left is None
    assert after_reset.run_out is None
    assert after_reset.status is Status.OK


# --- strict parsing and refused keys ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "where", "field"),
    [
        ("xai", None, "total"),
        ("xai", "total", "val"),
        ("venice", None, "balances"),
        ("venice", None, "consumptionCurrency"),
        ("venice", None, "canConsume"),
        ("venice", "balances", "diem"),
        ("stepfun", None, "balance"),
        ("deepinfra", None, "stripe_balance"),
        ("elevenlabs", None, "character_limit"),
        ("elevenlabs", None, "character_count"),
    ],
)
async def test_a_missing_field_is_an_error_naming_it_never_a_zero(
    billing: FakeBillingServer, provider: str, where: str | None, field: str
) -> None:
    body = _documented(provider)
    if where is None:
        del body[field]
    else:
        del body[where][field]
    billing.state.fail(_main_path(provider), Scripted(200, body))
    error = await read_error(billing, provider)
    assert isinstance(error, BadResponseError)
    assert f"'{field}'" in error.message


@pytest.mark.parametrize("provider", MINE)
@pytest.mark.parametrize("junk", [None, "", "junk", [], {}, True, "NaN"])
async def test_a_balance_field_that_is_not_a_number_is_an_error(
    billing: FakeBillingServer, provider: str, junk: Any
) -> None:
    body = _documented(provider)
    where, field = {
        "xai": ("total", "val"),
        "venice": ("balances", "diem"),
        "stepfun": (None, "balance"),
        "deepinfra": (None, "stripe_balance"),
        "elevenlabs": (None, "character_count"),
    }[provider]
    (body if where is None else body[where])[field] = junk
    billing.state.fail(_main_path(provider), Scripted(200, body))
    error = await read_error(billing, provider)
    assert isinstance(error, BadResponseError)


@pytest.mark.parametrize(
    ("provider", "where_made"),
    [
        ("xai", "Settings > Management Keys"),
        ("venice", "venice.ai > Settings > API"),
        ("stepfun", "platform.stepfun.com > API keys"),
        ("deepinfra", "deepinfra.com > Dashboard > API Keys"),
        ("elevenlabs", "elevenlabs.io > Developers > API Keys"),
    ],
)
async def test_a_refused_key_names_the_key_and_where_to_make_it(
    billing: FakeBillingServer, provider: str, where_made: str
) -> None:
    error = await read_error(billing, provider, key="sk-wrong-0000000000")
    assert isinstance(error, AuthError)
    assert error.status == 401
    assert "refused the key" in error.message
    assert "the account's api_key" in error.message  # where the key was set
    assert where_made in error.message
    assert len(billing.state.requests) == (2 if provider == "deepinfra" else 1)  # never retried


def _documented(provider: str) -> dict[str, Any]:
    """The fake's documented answer for a provider's balance path (a fresh copy)."""
    from tests.fake_billing_b import FakeBillingB

    state = FakeBillingB()
    body = {
        "xai": {"changes": [], "total": {"val": "-2500"}},
        "venice": {
            "canConsume": True,
            "consumptionCurrency": "DIEM",
            "balances": dict(state.venice_balances),
            "diemEpochAllocation": 100,
        },
        "stepfun": state.stepfun_account,
        "deepinfra": state.deepinfra_checklist,
        "elevenlabs": state.elevenlabs_subscription,
    }[provider]
    copy: dict[str, Any] = json.loads(json.dumps(body))
    return copy


def _main_path(provider: str) -> str:
    return {
        "xai": "xai/v1/billing/teams/team-1/prepaid/balance",
        "venice": "venice/api/v1/billing/balance",
        "stepfun": "stepfun/v1/accounts",
        "deepinfra": "deepinfra/payment/checklist",
        "elevenlabs": "elevenlabs/v1/user/subscription",
    }[provider]


# --- through `creditbot` ----------------------------------------------------------------------------------


def check_one(tmp_path: Path, billing: FakeBillingServer, provider: str, extra: str = "") -> tuple[int, Any]:
    toml = f"""
[[accounts]]
name = "{provider}-main"
provider = "{provider}"
api_key = "{KEYS_B[provider]}"
base_url = "{billing.base_url(provider)}"
{extra}
"""
    result = run_cli(tmp_path, "check", "--json", env=CLI_ENV, toml=toml)
    assert result.stdout, result.stderr
    assert KEYS_B[provider] not in result.stdout + result.stderr
    (account,) = json.loads(result.stdout)["accounts"]
    assert account["name"] == f"{provider}-main"
    assert account["provider"] == provider
    return result.returncode, account


def test_cli_xai(tmp_path: Path, billing: FakeBillingServer) -> None:
    code, account = check_one(tmp_path, billing, "xai")
    assert (code, account["status"], account["balance"], account["currency"]) == (0, "ok", 25.0, "USD")
    assert billing.state.count("xai", "/auth/management-keys/validation") == 1


def test_cli_venice_refused_is_critical_whatever_the_balance(tmp_path: Path, billing: FakeBillingServer) -> None:
    billing.state.venice_can_consume = False
    code, account = check_one(tmp_path, billing, "venice")
    assert (code, account["status"], account["balance"], account["currency"]) == (2, "critical", 90.5, "diem")
    assert account["balances"] == [{"currency": "diem", "amount": 90.5}, {"currency": "USD", "amount": 25.0}]
    assert any("canConsume false" in note for note in account["notes"])


def test_cli_venice_usd(tmp_path: Path, billing: FakeBillingServer) -> None:
    billing.state.venice_consumption = "USD"
    code, account = check_one(tmp_path, billing, "venice")
    assert (code, account["status"], account["balance"], account["currency"]) == (0, "ok", 25.0, "USD")


def test_cli_stepfun(tmp_path: Path, billing: FakeBillingServer) -> None:
    code, account = check_one(tmp_path, billing, "stepfun")
    assert (code, account["status"], account["balance"], account["currency"]) == (0, "ok", 88.42, "CNY")


def test_cli_deepinfra(tmp_path: Path, billing: FakeBillingServer) -> None:
    code, account = check_one(tmp_path, billing, "deepinfra")
    assert (code, account["status"], account["balance"], account["currency"]) == (0, "ok", 12.5, "USD")
    assert account["spent_month"] == 3.4


def test_cli_elevenlabs(tmp_path: Path, billing: FakeBillingServer) -> None:
    code, account = check_one(tmp_path, billing, "elevenlabs", 'warn_below = "10000"')
    assert (code, account["status"], account["balance"], account["currency"]) == (0, "ok", 12500.0, "characters")
    assert "resets on 2030-01-01" in account["notes"]


@pytest.mark.parametrize("provider", ["venice", "elevenlabs"])
def test_discovery_from_one_variable_lists_one_account_named_after_the_provider(
    tmp_path: Path, provider: str
) -> None:
    variable = PROVIDERS[provider].env
    assert variable is not None
    env = {**CLI_ENV, variable: KEYS_B[provider]}
    result = run_cli(tmp_path, "accounts", env=env)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if "env " in line]
    assert len(rows) == 1, result.stdout
    assert rows[0].split()[1] == provider  # the account's name
    assert f"env {variable}" in rows[0]
    assert KEYS_B[provider] not in result.stdout


# --- any answer: a report or a clear error, never a balance the body did not state --------------------------

# One body per provider, served for every path (xAI's carries its team for the validation call too).
SERVED: dict[str, dict[str, Any]] = {
    "xai": {"teamId": "team-1", "total": {"val": "-2500"}},
    "venice": {"canConsume": True, "consumptionCurrency": "DIEM", "balances": {"diem": 90.5, "usd": 25}},
    "stepfun": {"type": "prepaid", "balance": 88.42, "total_cash_balance": 68.42, "total_voucher_balance": 20},
    "deepinfra": {"stripe_balance": -12.5, "total_cost": 340},
    "elevenlabs": {"character_count": 17500, "character_limit": 30000, "next_character_count_reset_unix": 1.9e9},
}


def _stated(provider: str, body: Any) -> set[Decimal]:
    """The balances a body states, in each provider's own terms (cents, negated credit, limit minus count)."""

    def num(value: Any) -> Decimal | None:
        try:
            return parse_amount(value)
        except AmountError:
            return None

    if not isinstance(body, dict):
        return set()
    found: set[Decimal | None] = set()
    if provider == "xai" and isinstance(body.get("total"), dict):
        val = num(body["total"].get("val"))
        found.add(None if val is None else 0 - val / 100)
    if provider == "venice" and isinstance(body.get("balances"), dict):
        found.update(num(v) for v in body["balances"].values())
    if provider == "stepfun":
        found.add(num(body.get("balance")))
    if provider == "deepinfra":
        stripe = num(body.get("stripe_balance"))
        found.add(None if stripe is None else 0 - stripe)
    if provider == "elevenlabs":
        limit, count = num(body.get("character_limit")), num(body.get("character_count"))
        found.add(None if limit is None or count is None else limit - count)
    return {value for value in found if value is not None}


@pytest.mark.parametrize("provider", MINE)
def test_documented_answer_with_any_one_field_broken_never_shows_an_unstated_balance(provider: str) -> None:
    async def sweep() -> None:
        good = await run_provider(provider, SERVED[provider])
        assert good is not None
        assert good.balance is not None
        assert good.balance.amount in _stated(provider, SERVED[provider])
        for where, body in broken_variants(SERVED[provider]):
            report = await run_provider(provider, body)
            for money in (report.balance, *report.balances) if report is not None else ():
                assert money.amount in _stated(provider, body), f"{where}: {money} is not in the body"

    asyncio.run(sweep())


@pytest.mark.parametrize("provider", MINE)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.data(), status=st.sampled_from([200] * 10 + [400, 401, 403, 404, 429, 500]))
def test_any_answer_gives_a_report_or_a_clear_error(provider: str, body: st.DataObject, status: int) -> None:
    payload = body.draw(json_values | st.just(SERVED[provider]), label="body")
    report = asyncio.run(run_provider(provider, payload, status))  # anything but a ProviderError propagates
    if report is not None:
        assert status < 300
        for money in (report.balance, *report.balances):
            assert money is not None
            assert money.amount in _stated(provider, payload)


def test_cli_xai_configured_team_makes_no_validation_call(tmp_path: Path, billing: FakeBillingServer) -> None:
    billing.state.xai_totals = {"team-9": "-500"}
    code, account = check_one(tmp_path, billing, "xai", 'team_id = "team-9"')
    assert (code, account["status"], account["balance"], account["currency"]) == (0, "ok", 5.0, "USD")
    assert billing.state.count("xai", "/auth/management-keys/validation") == 0
