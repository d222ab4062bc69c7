"""Regression tests for problems found in review: each one would fail on the code before its fix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from bot.config import ConfigError, Settings, load_config, validate_base_url
from bot.models import Status
from bot.providers.base import AuthError
from bot.store import Store
from tests.conftest import TEST_KEYS, build_monitor, fetch, fetch_request, make_account
from tests.fakes import FakeProviderServer, Scripted
from tests.test_cli import accounts_toml, run_cli


def test_table_survives_provider_text_that_looks_like_markup(tmp_path: Path, fake: FakeProviderServer) -> None:
    fake.state.script("deepseek", Scripted(401, {"error": {"message": "Authentication Fails [/auth] [bold]x"}}))
    result = run_cli(tmp_path, "check", "--account", "ds", env={"OPENAI_ADMIN_KEY": "x"}, toml=accounts_toml(fake))
    assert result.returncode == 3, result.stderr
    assert "[/auth] [bold]x" in result.stdout
    assert "Traceback" not in result.stderr


async def test_key_echoed_after_a_long_message_is_removed_before_cutting() -> None:
    key = "sk-abcdefghijklmnopqrstuvwxyz0123456789"
    body = {"error": {"message": "x" * 262 + f" your api key {key} is invalid"}}
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(401, json=body))
    ) as client:
        request = fetch_request(client, "deepseek", "https://api.deepseek.com", key=key)
        request.http.secrets = (key,)
        with pytest.raises(AuthError) as caught:
            await fetch("deepseek", request)
    assert key[:12] not in caught.value.message


async def test_legacy_extras_refused_keep_the_balance(fake: FakeProviderServer) -> None:
    forbidden = {"error": {"message": "must be made with a session key", "type": "server_error"}}

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("credit_grants"):
            return httpx.Response(
                200,
                json={
                    "object": "credit_summary",
                    "total_granted": 18.0,
                    "total_available": 17.4,
                    "grants": {"data": []},
                },
            )
        return httpx.Response(403, json=forbidden)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        report = await fetch("openai-legacy", fetch_request(client, "openai-legacy", "https://api.openai.com"))
    assert report.balance is not None
    assert str(report.balance.amount) == "17.4"


async def test_legacy_zero_without_grants_is_not_a_zero_balance() -> None:
    body = {
        "object": "credit_summary",
        "total_granted": 0.0,
        "total_used": 0.0,
        "total_available": 0.0,
        "grants": {"object": "list", "data": []},
    }

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=body) if "credit_grants" in request.url.path else httpx.Response(404)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        report = await fetch("openai-legacy", fetch_request(client, "openai-legacy", "https://api.openai.com"))
    assert report.balance is None
    assert any("pay-as-you-go" in note for note in report.notes)


def test_sdk_style_v1_base_url_is_not_doubled() -> None:
    assert validate_base_url("https://api.moonshot.cn/v1/") == "https://api.moonshot.cn"
    assert validate_base_url("https://proxy.example/openai") == "https://proxy.example/openai"


@pytest.mark.parametrize("key", ["sk-abc\rdef", "sk-a bc", "sk-abc\u2026"])
def test_keys_with_stray_characters_are_config_errors(key: str) -> None:
    settings = Settings(_env_file=None, DEEPSEEK_API_KEY=key)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="DEEPSEEK_API_KEY: contains spaces, control or non-ASCII") as caught:
        load_config(settings, environ={})
    assert key not in str(caught.value)


def test_surrounding_whitespace_is_stripped_from_keys() -> None:
    settings = Settings(_env_file=None, DEEPSEEK_API_KEY="  sk-abcdef123456\n")  # type: ignore[call-arg]
    assert load_config(settings, environ={}).accounts[0].api_key.get_secret_value() == "sk-abcdef123456"


def test_sync_database_driver_is_a_configuration_error(tmp_path: Path, fake: FakeProviderServer) -> None:
    result = run_cli(
        tmp_path,
        "check",
        "--account",
        "ds",
        toml=accounts_toml(fake),
        env={"OPENAI_ADMIN_KEY": "x", "CREDITBOT_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"},
    )
    assert result.returncode == 78
    assert "async driver" in result.stderr
    assert "Traceback" not in result.stderr


def test_absurd_duration_is_a_configuration_error(tmp_path: Path) -> None:
    result = run_cli(
        tmp_path,
        "check",
        env={"CREDITBOT_FETCH_TIMEOUT": "99999999999999d", "DEEPSEEK_API_KEY": TEST_KEYS["deepseek"]},
    )
    assert result.returncode == 78
    assert "CREDITBOT_FETCH_TIMEOUT" in result.stderr


async def test_too_old_reading_is_reported_stale_with_its_time(
    tmp_path: Path, store: Store, http: httpx.AsyncClient, fake: FakeProviderServer
) -> None:
    monitor = build_monitor(
        tmp_path, store, http, [make_account("ds", "deepseek", fake.base_url("deepseek"))], stale_after="1h"
    )
    await monitor.refresh()
    monitor.clock = lambda: datetime.now(UTC) + timedelta(hours=3)
    fake.state.script("deepseek", Scripted(401, {"error": {"message": "revoked"}}))
    (view,) = await monitor.views(refresh=True)
    assert view.status is Status.ERROR
    assert view.stale is True
    assert view.fetched_at is not None
    assert view.balance is None


async def test_a_lone_surrogate_in_a_provider_error_cannot_break_storing_the_poll(
    tmp_path: Path, store: Store
) -> None:
    # JSON may escape a lone surrogate; no database can encode it, and a poll stores all accounts at once.
    body = b'{"error": {"message": "down \\ud800 for maintenance"}}'
    transport = httpx.MockTransport(lambda _request: httpx.Response(400, content=body))
    async with httpx.AsyncClient(transport=transport) as http:
        monitor = build_monitor(
            tmp_path, store, http, [make_account("ds", "deepseek", "https://api.deepseek.com")]
        )
        (reading,) = await monitor.refresh()
    assert "down" in (reading.error or "")
    assert "\ud800" not in (reading.error or "")
    stored = (await store.readings.latest_readings(["ds"]))["ds"].latest
    assert stored is not None
    assert stored.error == reading.error


async def test_an_html_403_from_something_in_between_is_not_a_refused_key(
    tmp_path: Path, store: Store, fake: FakeProviderServer
) -> None:
    # A firewall or proxy page is a failing source (alert after N failures), not a key to replace (at once).
    from bot.models import ErrorKind
    from tests.fakes import HTML_PAGE

    fake.state.script("deepseek", Scripted(403, HTML_PAGE))
    async with httpx.AsyncClient() as http:
        monitor = build_monitor(tmp_path, store, http, [make_account("ds", "deepseek", fake.base_url("deepseek"))])
        (reading,) = await monitor.refresh()
    assert reading.error_kind is ErrorKind.BAD_RESPONSE
    assert "HTML page" in (reading.error or "")
    assert "refused the key" not in (reading.error or "")
