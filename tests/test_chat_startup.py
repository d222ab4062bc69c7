"""The first hour with a chat platform: `creditbot run` with a Slack app token that Slack refuses stops with one
line and exit 78, a signal stops the bot whatever start-up is waiting for, Socket Mode retries an unreachable
Slack with back-off, and `creditbot doctor` tries the app token and the Discord token."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from adapters.discord.adapter import DiscordAdapter
from adapters.slack.adapter import SlackAdapter
from bot.adapter import AdapterUnavailable
from bot.config import AppConfig
from bot.store import Store
from tests.conftest import make_account, make_runtime, make_settings
from tests.fake_discord import FakeDiscord
from tests.fake_slack import APP_TOKEN, BOT_TOKEN, FakeSlack, FakeSocketMode
from tests.fakes import FakeProviderServer
from tests.test_cli import run_cli
from tests.test_run_e2e import BotProcess, bot_env, free_port, write_config

WRONG_APP_TOKEN = "xapp-1-wrong-app-token-99999"
DISCORD_TOKEN = "MjIy.fake.discord-token-0123456789"
STOP_GRACE = 10.0


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


@pytest.fixture
def blackhole() -> Iterator[str]:
    """An address that accepts connections and never answers (a stuck network path)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/api/"


async def _until(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def _wait_exit(bot: BotProcess, timeout: float) -> int | None:
    try:
        return bot.proc.wait(timeout=timeout)
    except Exception:
        return None


def test_a_refused_app_token_stops_run_with_one_line_and_exit_78(
    tmp_path: Path, fake: FakeProviderServer, slack: FakeSlack
) -> None:
    write_config(tmp_path, fake)
    env = {
        **bot_env(tmp_path, free_port()),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_APP_TOKEN": WRONG_APP_TOKEN,
        "SLACK_API_URL": slack.api_url,
    }
    bot = BotProcess(tmp_path, env)
    code = _wait_exit(bot, 20)
    if code is None:
        bot.proc.kill()
        bot.proc.wait()
    err = "".join(bot.err)
    assert code == 78, err
    assert "Traceback" not in err + bot.stdout
    assert "creditbot running" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert "SLACK_APP_TOKEN" in line
    assert "invalid_auth" in line
    assert "connections:write" in line  # says how to fix it
    assert WRONG_APP_TOKEN not in err + bot.stdout
    assert BOT_TOKEN not in err + bot.stdout


def test_a_signal_stops_run_while_start_up_waits_for_slack(
    tmp_path: Path, fake: FakeProviderServer, blackhole: str
) -> None:
    write_config(tmp_path, fake)
    env = {
        **bot_env(tmp_path, free_port()),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_APP_TOKEN": APP_TOKEN,
        "SLACK_API_URL": blackhole,  # auth.test never gets an answer
    }
    bot = BotProcess(tmp_path, env)
    time.sleep(3)  # start-up is now waiting on Slack
    assert bot.proc.poll() is None, "".join(bot.err)
    started = time.monotonic()
    bot.proc.send_signal(__import__("signal").SIGTERM)
    code = _wait_exit(bot, STOP_GRACE + 5)
    elapsed = time.monotonic() - started
    if code is None:
        bot.proc.kill()
        bot.proc.wait()
    assert code is not None, f"still running {elapsed:.0f} s after SIGTERM:\n{''.join(bot.err)}"
    assert code == 0, "".join(bot.err)
    assert "Traceback" not in "".join(bot.err)


async def test_socket_mode_retries_an_unreachable_slack_with_back_off(
    tmp_path: Path, fake: FakeProviderServer, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    with FakeSocketMode() as socket_server:
        slack.state.socket_url = socket_server.url
        slack.state.dropped["apps.connections.open"] = 6  # three attempts (each retried once by slack_sdk)
        settings = make_settings(
            tmp_path, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_APP_TOKEN=APP_TOKEN, SLACK_API_URL=slack.api_url
        )
        config = AppConfig(settings, (make_account("ds", "deepseek", fake.base_url("deepseek")),), "test")
        store = await Store.open(settings.database_url)
        async with httpx.AsyncClient() as http:
            adapter = SlackAdapter(settings)
            adapter.reconnect_delays = (0.2, 0.4, 0.8)
            runtime = make_runtime(config, store, http, [adapter])
            started = time.monotonic()
            await adapter.start(runtime.handler)
            assert time.monotonic() - started < 3  # start-up does not wait for Slack to come back
            assert not adapter.connected()
            try:
                await _until(adapter.connected, 15)
                opens = [c.at for c in slack.state.called("/api/apps.connections.open")]
                assert len(opens) >= 7  # six dropped, then the one that worked
                # slack_sdk retries each call once; our wait runs from an attempt's last call to the next's first.
                gaps = [opens[i + 1] - opens[i] for i in (1, 3, 5)]
                assert all(g >= 0.2 for g in gaps), gaps
                assert gaps == sorted(gaps), gaps  # each wait longer than the last
            finally:
                await adapter.stop()
        await store.close()
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert records, "the failures were not reported"
    assert all(r.exc_info is None and not r.exc_text for r in records)  # one line each, no traceback


def test_doctor_tries_the_app_token_and_the_discord_token(
    tmp_path: Path, fake: FakeProviderServer, slack: FakeSlack
) -> None:
    write_config(tmp_path, fake)
    with FakeDiscord(token=DISCORD_TOKEN) as discord_fake:
        env = {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_APP_TOKEN": WRONG_APP_TOKEN,
            "SLACK_API_URL": slack.api_url,
            "DISCORD_TOKEN": "MjIy.wrong.discord-token-9999999999",
            "DISCORD_API_URL": discord_fake.rest_url,
        }
        result = run_cli(tmp_path, "doctor", env=env)
        assert result.returncode == 1, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        (slack_line,) = [line for line in lines if line.startswith("slack: !")]
        assert "SLACK_APP_TOKEN" in slack_line
        assert "invalid_auth" in slack_line
        (discord_line,) = [line for line in lines if line.startswith("discord: !")]
        assert "DISCORD_TOKEN" in discord_line
        assert "refused" in discord_line
        assert discord_fake.recorded("GET", "/users/@me")
        assert not discord_fake.identify_payloads  # doctor never opens the gateway

        env.update(SLACK_APP_TOKEN=APP_TOKEN, DISCORD_TOKEN=DISCORD_TOKEN)
        result = run_cli(tmp_path, "doctor", env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "slack: ok, team Test (T111), Socket Mode (app token accepted)" in result.stdout
        assert "discord: ok, logged in as creditbot (222)" in result.stdout
        assert "Traceback" not in result.stdout + result.stderr


async def test_a_discord_gateway_down_at_start_is_retried_with_back_off(
    tmp_path: Path, fake: FakeProviderServer, caplog: pytest.LogCaptureFixture
) -> None:
    with FakeDiscord(token=DISCORD_TOKEN) as discord_fake, discord_fake.patch():
        discord_fake.gateway_refusals = 2
        settings = make_settings(
            tmp_path,
            DISCORD_TOKEN=DISCORD_TOKEN,
            DISCORD_API_URL=discord_fake.rest_url,
            DISCORD_GATEWAY_URL=discord_fake.gateway_url,
            DISCORD_GUILD_IDS=str(discord_fake.guild_id),
        )
        config = AppConfig(settings, (make_account("ds", "deepseek", fake.base_url("deepseek")),), "test")
        store = await Store.open(settings.database_url)
        async with httpx.AsyncClient() as http:
            adapter = DiscordAdapter(settings, guild_ready_timeout=0.1)
            adapter.reconnect_delays = (0.2, 0.4)
            runtime = make_runtime(config, store, http, [adapter])
            try:
                with pytest.raises(AdapterUnavailable, match="keeps trying"):
                    await adapter.start(runtime.handler)  # the rest of the bot starts meanwhile
                await _until(adapter.connected, 20)
                assert discord_fake.gateway_attempts == 3
                assert len(discord_fake.identify_payloads) == 1
                syncs = discord_fake.recorded("PUT", f"/applications/*/guilds/{discord_fake.guild_id}/commands")
                assert len(syncs) == 1  # logging in again did not sync the commands again
            finally:
                await adapter.stop()
        await store.close()
    failures = [
        r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith(("discord", "adapters"))
    ]
    assert any("Discord is unreachable" in r.getMessage() for r in failures)
    assert all(r.exc_info is None and not r.exc_text for r in failures)  # one line each, no traceback
