"""`/metrics` tells strangers nothing: off (404) without a token unless declared public, 401 without the
right bearer token, and `/healthz` and `/readyz` name no account."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.console import ConsoleAdapter
from bot.config import AppConfig
from bot.money import Money
from bot.monitor import Monitor
from bot.store import Store
from bot.web import start_http
from tests.conftest import make_account, make_runtime, make_settings
from tests.fakes import FakeProviderServer
from tests.test_cli import run_cli
from tests.test_run_e2e import free_port

TOKEN = "metrics-token-0123456789abcdef"
ACCOUNT = "finance-ledger-7"  # a name that must not show on the open endpoints


async def serve(tmp_path: Path, fake: FakeProviderServer, **settings: Any) -> AsyncIterator[str]:
    config = AppConfig(
        make_settings(tmp_path, **settings),
        (make_account(ACCOUNT, "deepseek", fake.base_url("deepseek")),),
        "test",
    )
    store = await Store.open(config.settings.database_url)
    async with httpx.AsyncClient() as http:
        runtime = make_runtime(config, store, http, [ConsoleAdapter(interactive=False)])
        await runtime.poll()
        port = free_port()
        web = await start_http(port, runtime.http_routes(), host="127.0.0.1")
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            await web.cleanup()
            await store.close()


@pytest.fixture
async def no_token(tmp_path: Path, fake: FakeProviderServer) -> AsyncIterator[str]:
    async for url in serve(tmp_path, fake):
        yield url


@pytest.fixture
async def with_token(tmp_path: Path, fake: FakeProviderServer) -> AsyncIterator[str]:
    async for url in serve(tmp_path, fake, CREDITBOT_METRICS_TOKEN=TOKEN):
        yield url


@pytest.fixture
async def public(tmp_path: Path, fake: FakeProviderServer) -> AsyncIterator[str]:
    async for url in serve(tmp_path, fake, CREDITBOT_METRICS_PUBLIC="true"):
        yield url


async def test_without_a_token_metrics_are_off(no_token: str) -> None:
    async with httpx.AsyncClient() as client:
        for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}):
            answer = await client.get(f"{no_token}/metrics", headers=headers)
            assert answer.status_code == 404
            assert "creditbot_" not in answer.text
            assert ACCOUNT not in answer.text


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        f"Bearer  {TOKEN}",
        f"Bearer {TOKEN[:-1]}",
        f"Bearer {TOKEN}x",
        f"bearer{TOKEN}",
        TOKEN,
        f"Basic {TOKEN}",
    ],
)
async def test_a_wrong_or_missing_token_gets_401_and_no_metric(with_token: str, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{with_token}/metrics", headers=headers)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert "creditbot_" not in answer.text
    assert ACCOUNT not in answer.text


async def test_the_right_token_gets_the_metrics(with_token: str) -> None:
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{with_token}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    assert f'creditbot_balance{{account="{ACCOUNT}",currency="CNY",provider="deepseek"}} 110.0' in answer.text


async def test_declared_public_metrics_need_no_token(public: str) -> None:
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{public}/metrics")
    assert answer.status_code == 200
    assert "creditbot_balance" in answer.text


async def test_health_and_readiness_name_no_account(with_token: str) -> None:
    async with httpx.AsyncClient() as client:
        for path in ("healthz", "readyz"):
            answer = await client.get(f"{with_token}/{path}")
            assert answer.status_code == 200
            assert ACCOUNT not in answer.text
            assert "deepseek" not in answer.text
            assert "127.0.0.1" not in answer.text


def test_doctor_says_which_mode_is_in_force_never_the_token(tmp_path: Path) -> None:
    modes = {
        "needs the token of CREDITBOT_METRICS_TOKEN": {"CREDITBOT_METRICS_TOKEN": TOKEN},
        "is open to anyone who reaches PORT": {"CREDITBOT_METRICS_PUBLIC": "true"},
        "is off (404): set CREDITBOT_METRICS_TOKEN": {},
    }
    for says, env in modes.items():
        result = run_cli(tmp_path, "doctor", env=env)
        assert f"metrics: /metrics {says}" in result.stdout
        assert TOKEN not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("token", "reason"),
    [("short-token", "at least 16 characters"), ("has a space in it 0123456789", "without spaces")],
)
def test_an_unusable_token_is_one_configuration_line(tmp_path: Path, token: str, reason: str) -> None:
    result = run_cli(tmp_path, "check", env={"CREDITBOT_METRICS_TOKEN": token})
    assert result.returncode == 78
    assert reason in result.stderr
    assert token not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


async def test_a_scrape_reads_balances_from_the_store(tmp_path: Path, fake: FakeProviderServer) -> None:
    today = datetime.now(UTC).date()
    fake.state.openai_daily = {today - timedelta(days=i): Decimal(1) for i in range(1, 4)}
    account = make_account("oa", "openai", fake.base_url("openai"))
    config = AppConfig(make_settings(tmp_path, CREDITBOT_METRICS_PUBLIC="true"), (account,), "test")
    store = await Store.open(config.settings.database_url)
    try:
        async with httpx.AsyncClient() as http:
            runtime = make_runtime(config, store, http, [])
            await runtime.poll()
            # A top-up recorded by `creditbot topup` in another process, after the last poll.
            other = Monitor(config, store, http)
            await other.record_topup(account, Money(Decimal(50), "USD"), today - timedelta(days=3), "cli")
            port = free_port()
            web = await start_http(port, runtime.http_routes(), host="127.0.0.1")
            try:
                answer = await http.get(f"http://127.0.0.1:{port}/metrics")
            finally:
                await web.cleanup()
    finally:
        await store.close()
    assert 'creditbot_balance{account="oa",currency="USD",provider="openai"} 47.0' in answer.text
