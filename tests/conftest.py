"""Shared fixtures: the loopback fake providers, a temporary store, and a monitor wired to both."""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from bot.config import Account, AppConfig, Settings
from bot.monitor import Monitor
from bot.providers import PROVIDERS
from bot.providers.base import FetchRequest, HostLimiter, ProviderHttp
from bot.runtime import Runtime
from bot.store import Store
from tests.fakes import FakeProviders, FakeProviderServer

TEST_KEYS = {
    "openai": "sk-admin-TESTKEYopenai0000000000",
    "anthropic": "sk-ant-admin01-TESTKEYanthropic000000",
    "openrouter": "sk-or-mgmt-TESTKEYopenrouter00000",
    "deepseek": "sk-TESTKEYdeepseek000000000000",
    "moonshot": "sk-TESTKEYmoonshot000000000000",
    "openai-legacy": "sess-TESTKEYlegacy00000000000000",
}


@pytest.fixture
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(FakeProviders()) as server:
        yield server


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'creditbot.db'}",
        "config_path": None,
        "fetch_timeout": 5,
        "cache_seconds": 0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def make_account(name: str, provider: str, base_url: str, **extra: Any) -> Account:
    key = extra.pop("api_key", None) or TEST_KEYS[provider]
    extra.setdefault("spend_only", PROVIDERS[provider].spend_only)
    return Account(name=name, provider=provider, api_key=SecretStr(key), base_url=base_url, origin="test", **extra)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'creditbot.db'}")
    yield opened
    await opened.close()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


def build_monitor(
    tmp_path: Path, store: Store, http: httpx.AsyncClient, accounts: list[Account], **settings: Any
) -> Monitor:
    config = AppConfig(make_settings(tmp_path, **settings), tuple(accounts), "test")
    return Monitor(config, store, http)


async def no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


def fetch_request(
    client: httpx.AsyncClient,
    provider: str,
    base_url: str,
    *,
    key: str | None = None,
    currency: str | None = None,
    since: date | None = None,
    now: Any = None,
    timeout: float = 5.0,
) -> FetchRequest:
    """A FetchRequest the way the monitor builds one, with retries that do not really sleep."""
    from datetime import UTC, datetime, timedelta

    now = now or datetime.now(UTC)
    loop = asyncio.get_running_loop()
    http = ProviderHttp(client, HostLimiter(4), provider=provider, deadline=loop.time() + timeout, sleep=no_sleep)
    return FetchRequest(
        http=http,
        base_url=base_url,
        api_key=SecretStr(key or TEST_KEYS[provider]),
        currency=currency,
        since=since or (now.date() - timedelta(days=40)),
        now=now,
    )


async def fetch(provider: str, request: FetchRequest) -> Any:
    return await PROVIDERS[provider]().fetch(request)


D = Decimal


# Every test doubles as a secrecy check: the keys and tokens the suite runs with are canaries, and no log
# record of any test, at INFO or above, may carry one, not even before the redacting filter that
# `creditbot run` installs (that filter is the second line of defence, not the first).
CANARIES = (
    *(key[key.index("TESTKEY") :] for key in TEST_KEYS.values()),
    "test-bot-token-0123456789",  # tests/fake_slack.py
    "test-signing-secret-0123456789",
    "test-app-token-0123456789",
    "fake.discord-token-0123456789",  # tests/test_discord.py
)


@pytest.fixture(autouse=True)
def _no_canary_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.INFO)
    yield
    for record in [*caplog.get_records("setup"), *caplog.get_records("call")]:
        text = record.getMessage() + (record.exc_text or "")
        if record.exc_info and record.exc_info[1] is not None:
            text += "".join(traceback.format_exception(record.exc_info[1]))
        leaked = [canary for canary in CANARIES if canary in text]
        assert not leaked, f"a canary secret reached the log ({record.name}): {text[:300]}"


def make_runtime(
    config: AppConfig,
    store: Store,
    http: Any,
    adapters: Sequence[Any],
    *,
    clock: Any = None,
    charts: Any = None,
    leadership: Any = None,
) -> Runtime:
    """A runtime over one monitor of `config` (as `bot.app` builds it), with an optional settable clock."""
    monitor = Monitor(config, store, http, **({"clock": clock} if clock is not None else {}))
    return Runtime(monitor, adapters, charts=charts, leadership=leadership)
