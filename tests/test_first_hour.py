"""The first hour with creditbot (issue 15): a configuration mistake is one clear line, never silence, a hang
or a message that waits forever; hints stay readable; the terminal shows what was asked, once."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot import app, oneoff
from bot.config import AppConfig, ConfigError, Settings, load_config
from bot.models import AlertState, Rule
from bot.store import NewMessage, Store
from bot.store.settings import Subscription
from bot.text import redact
from tests.conftest import TEST_KEYS, build_monitor, make_account, make_runtime, make_settings
from tests.fakes import FakeProviderServer, Scripted
from tests.test_cli import run_cli

DEEPSEEK_TOML = '[[accounts]]\nname = "ds"\nprovider = "deepseek"\napi_key = "{key}"\nbase_url = "{url}"\n'


def settings_for(tmp_path: Path, toml: str, **env: str) -> Settings:
    path = tmp_path / "creditbot.toml"
    path.write_text(toml)
    return Settings(_env_file=None, CREDITBOT_CONFIG=str(path), **env)  # type: ignore[call-arg]


def problems(tmp_path: Path, toml: str, **options: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(settings_for(tmp_path, toml), environ={"OPENAI_ADMIN_KEY": "sk-admin-x"}, **options)
    return caught.value.problems


# 1. Channels on a platform without credentials


@pytest.mark.parametrize(("platform", "setting"), [("slack", "SLACK_BOT_TOKEN"), ("discord", "DISCORD_TOKEN")])
def test_a_toml_channel_on_a_platform_without_credentials_is_a_configuration_error(
    tmp_path: Path, fake: FakeProviderServer, platform: str, setting: str
) -> None:
    toml = DEEPSEEK_TOML.format(key=TEST_KEYS["deepseek"], url=fake.base_url("deepseek"))
    toml += f'\n[[channels]]\nplatform = "{platform}"\nid = "C42"\n'
    result = run_cli(tmp_path, "check", toml=toml)
    assert result.returncode == 78, result.stdout + result.stderr
    (line,) = result.stderr.splitlines()
    assert "channels[0] 'C42'" in line
    assert setting in line
    assert "Traceback" not in result.stderr


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    opened = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'creditbot.db'}")
    yield opened
    await opened.close()


def slack_subscription() -> Subscription:
    return Subscription("slack", "C9", None, "UTC", "warning", "U1")


async def test_messages_to_a_subscribed_channel_whose_platform_lost_its_credentials_fail_with_the_reason(
    tmp_path: Path, store: Store, fake: FakeProviderServer, caplog: pytest.LogCaptureFixture
) -> None:
    now = datetime.now(UTC)
    await store.settings.save_subscription(slack_subscription(), now)
    accounts = (make_account("ds", "deepseek", fake.base_url("deepseek")),)
    settings = make_settings(tmp_path, poll_seconds=3600, http_enabled=False)
    config = AppConfig(settings, accounts, "test", unconfigured={"slack": "SLACK_BOT_TOKEN"})
    async with httpx.AsyncClient() as http:
        runtime = make_runtime(config, store, http, [])
        message = NewMessage("alert:slack:C9:ds:x", "slack", "C9", "alert", "warning", {"title": "t"}, now)
        await store.outbox.enqueue(message, now=now)
        with caplog.at_level(logging.WARNING, logger="bot.runtime"):
            await runtime.start()
        try:
            await runtime.dispatch()
        finally:
            await runtime.stop()
    (item,) = await store.outbox.items("alert")
    assert item.status == "failed"
    assert item.last_error == "slack is not configured: SLACK_BOT_TOKEN is not set"
    warning = next(r.getMessage() for r in caplog.records if "slack:C9" in r.getMessage())
    assert "SLACK_BOT_TOKEN" in warning
    assert "subscribed by U1" in warning


async def test_doctor_flags_a_subscribed_channel_whose_platform_lost_its_credentials(
    tmp_path: Path, store: Store, fake: FakeProviderServer
) -> None:
    await store.settings.save_subscription(slack_subscription(), datetime.now(UTC))
    accounts = (make_account("ds", "deepseek", fake.base_url("deepseek")),)
    config = AppConfig(make_settings(tmp_path), accounts, "test", unconfigured={"slack": "SLACK_BOT_TOKEN"})
    checks = [check async for check in oneoff.doctor(config, "no accounts")]
    flagged = [check.line for check in checks if check.problem]
    assert len(flagged) == 1
    assert "slack:C9" in flagged[0]
    assert "SLACK_BOT_TOKEN" in flagged[0]


def test_the_composition_root_refuses_channels_of_platforms_it_cannot_reach(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "creditbot.toml").write_text('[[channels]]\nplatform = "discord"\nid = "D1"\n')
    monkeypatch.chdir(tmp_path)
    for variable in ("DISCORD_TOKEN", "SLACK_BOT_TOKEN", "CREDITBOT_CONFIG"):
        monkeypatch.delenv(variable, raising=False)
    # The logging set-up belongs to the command line; here it would replace pytest's capture.
    monkeypatch.setattr("bot.logs.configure_logging", lambda *_args, **_options: None)
    with pytest.raises(ConfigError, match="DISCORD_TOKEN"):
        app.load()
    monkeypatch.setenv("DISCORD_TOKEN", "fake.discord-token-0123456789")
    assert [c.key for c in app.load().channels] == ["discord:D1"]


# 2. Misspellings


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            '[[account]]\nname="a"\nprovider="openai"\napi_key="k"',
            "[[account]]: is not a known table (did you mean [[accounts]]?)",
        ),
        (
            '[[channel]]\nplatform="console"\nid="x"',
            "[[channel]]: is not a known table (did you mean [[channels]]?)",
        ),
        ("polling = 5", "polling: is not a known setting"),
        (
            "poll_seconds = 5",
            "poll_seconds: is not set in this file; set CREDITBOT_POLL_SECONDS in the environment",
        ),
        (
            '[[accounts]]\nname="a"\nprovider="openai"\napi_key="k"\nmontly_budget="5"',
            "montly_budget: is not a known setting (did you mean monthly_budget?)",
        ),
        (
            '[[accounts]]\nname="a"\nprovider="OpenAI"\napi_key="k"',
            "provider: unknown provider 'OpenAI' (did you mean 'openai'?); use one of: openai, openai-legacy, "
            "anthropic, openrouter, deepseek, moonshot",
        ),
        (
            '[[channels]]\nplatform="console"\nid="x"\nalert="info"',
            "channels[0] 'x': alert: is not a known setting (did you mean alerts?)",
        ),
        ('[[channels]]\nplatform="slak"\nid="x"', "unknown platform 'slak' (did you mean 'slack'?)"),
    ],
)
def test_misspellings_are_configuration_errors_with_a_suggestion(tmp_path: Path, toml: str, expected: str) -> None:
    text = "\n".join(problems(tmp_path, toml))
    assert expected in text
    assert "demo" not in text


def test_a_misspelled_table_is_not_mistaken_for_no_accounts(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "check", toml='[[account]]\nname="a"\nprovider="deepseek"\napi_key="sk-k"\n')
    assert result.returncode == 78
    assert "No accounts are configured" not in result.stdout + result.stderr
    assert "did you mean [[accounts]]?" in result.stderr


# 3. $VAR without braces


def test_a_variable_without_braces_is_a_configuration_error(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, '[[accounts]]\nname="a"\nprovider="openai"\napi_key="$OPENAI_ADMIN_KEY"')
    assert line.endswith(
        "accounts[0] 'a': api_key: write ${OPENAI_ADMIN_KEY} to read the environment variable OPENAI_ADMIN_KEY"
    )


def test_a_dollar_inside_a_literal_key_is_left_alone(tmp_path: Path) -> None:
    config = load_config(settings_for(tmp_path, '[[accounts]]\nname="a"\nprovider="deepseek"\napi_key="sk-a$b1"'))
    assert config.accounts[0].api_key.get_secret_value() == "sk-a$b1"


# 4. Hints stay readable, keys do not


@pytest.mark.parametrize(
    "hint",
    [
        "an Admin API key (sk-ant-admin01-...)",
        "OPENAI_ADMIN_KEY=sk-admin-...",
        "sk-proj-…",
        "xoxb-...",
        "sess-...",
    ],
)
def test_key_hints_are_not_redacted(hint: str) -> None:
    assert redact(hint) == hint


@pytest.mark.parametrize(
    "text",
    [
        "sk-ant-admin01-Zx9Cv1Bn4Mk6PuAAbbbbccccdddd",
        "key sk-CANARYds9e8d7c6b5a4f3e2d1c0b... was cut",  # a long key stays hidden even when cut short
        "Bearer sk-proj-abcdefgh12",
    ],
)
def test_keys_are_still_redacted(text: str) -> None:
    assert "[redacted]" in redact(text)


async def test_the_anthropic_admin_key_hint_reaches_the_user_readable(
    tmp_path: Path, store: Store, fake: FakeProviderServer
) -> None:
    account = make_account("claude", "anthropic", fake.base_url("anthropic"), api_key="sk-ant-api03-wrongkind")
    async with httpx.AsyncClient() as http:
        (reading,) = await build_monitor(tmp_path, store, http, [account]).refresh()
    assert reading.error is not None
    assert "needs an Admin API key (sk-ant-admin01-...)" in reading.error


# 5. A refused key names where it was set


@pytest.mark.parametrize(
    ("api_key", "named", "not_named"),
    [
        ("sk-revoked", "the api_key of account 'ds' in creditbot.toml", "DEEPSEEK_API_KEY"),
        ("${DS_KEY}", "DS_KEY", "the api_key"),
    ],
)
async def test_a_refused_key_names_where_it_was_set(
    tmp_path: Path, store: Store, fake: FakeProviderServer, api_key: str, named: str, not_named: str
) -> None:
    toml = DEEPSEEK_TOML.format(key=api_key, url=fake.base_url("deepseek"))
    config = load_config(settings_for(tmp_path, toml), environ={"DS_KEY": "sk-revoked"})
    async with httpx.AsyncClient() as http:
        (reading,) = await build_monitor(tmp_path, store, http, list(config.accounts)).refresh()
    assert reading.error is not None
    assert f"Check {named} " in reading.error
    assert not_named not in reading.error


def test_a_discovered_key_is_named_by_its_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings(_env_file=None, DEEPSEEK_API_KEY="sk-123456789")  # type: ignore[call-arg]
    (account,) = load_config(settings, environ={}).accounts
    assert account.key_source() == "DEEPSEEK_API_KEY"


# 6. doctor fails when a check failed


def test_doctor_without_accounts_fails(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "doctor")
    assert result.returncode == 1, result.stdout
    assert "all good" not in result.stdout
    assert result.stdout.rstrip().endswith("1 problem to fix")


# 7. Polish


def test_doctor_and_topup_count_in_good_english(tmp_path: Path, fake: FakeProviderServer) -> None:
    toml = DEEPSEEK_TOML.format(key=TEST_KEYS["deepseek"], url=fake.base_url("deepseek"))
    toml += (
        '\n[[accounts]]\nname = "oai"\nprovider = "openai"\n'
        f'api_key = "{TEST_KEYS["openai"]}"\nbase_url = "{fake.base_url("openai")}"\n'
        '\n[[channels]]\nplatform = "console"\nid = "ops"\n'
    )
    doctor = run_cli(tmp_path, "doctor", toml=toml)
    assert "2 accounts from" in doctor.stdout
    assert "1 channel in the TOML file" in doctor.stdout
    topup = run_cli(tmp_path, "topup", "oai", "20")
    assert topup.returncode == 0, topup.stderr
    assert "in 1 entry." in topup.stdout


async def test_alerts_say_the_severity_not_the_level(tmp_path: Path, store: Store) -> None:
    since = datetime.now(UTC)
    await store.alerts.save(
        [
            AlertState("ds", Rule.BALANCE, level=2, fired_level=2, since=since, detail="below $5.00"),
            AlertState("ds", Rule.BUDGET, level=1, fired_level=1, since=since, detail="50% of the budget"),
        ],
        now=since,
    )
    await store.close()
    result = run_cli(
        tmp_path,
        "alerts",
        env={"CREDITBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'creditbot.db'}"},
        toml=DEEPSEEK_TOML.format(key=TEST_KEYS["deepseek"], url="http://127.0.0.1:9"),
    )
    assert result.returncode == 0, result.stderr
    assert "ds: balance critical since" in result.stdout
    assert "ds: budget info since" in result.stdout
    assert "level" not in result.stdout


def test_check_does_not_repeat_on_stderr_what_it_prints(tmp_path: Path, fake: FakeProviderServer) -> None:
    fake.state.script("deepseek", Scripted(401, {"error": {"message": "Authentication Fails"}}))
    toml = DEEPSEEK_TOML.format(key=TEST_KEYS["deepseek"], url=fake.base_url("deepseek"))
    result = run_cli(tmp_path, "check", toml=toml)
    assert result.returncode == 3
    assert "Authentication Fails" in result.stdout
    assert result.stderr == ""


def test_summary_send_does_not_repeat_on_stderr_what_it_prints(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "summary", "--send")  # the demo: its console channel
    assert result.returncode == 0, result.stderr
    assert result.stderr == "console:stdout: summary sent\n"


def test_a_platform_setting_is_given_only_when_not_blank(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMO_TOKEN", "x")  # a variable an added platform reads, no setting of creditbot's
    settings = Settings(_env_file=None, SLACK_BOT_TOKEN=" ")  # type: ignore[call-arg]
    assert (settings.given("MEMO_TOKEN"), settings.given("SLACK_BOT_TOKEN")) == (True, False)


def test_check_at_debug_still_logs_everything(tmp_path: Path, fake: FakeProviderServer) -> None:
    fake.state.script("deepseek", Scripted(401, {"error": {"message": "Authentication Fails"}}))
    toml = DEEPSEEK_TOML.format(key=TEST_KEYS["deepseek"], url=fake.base_url("deepseek"))
    result = run_cli(tmp_path, "check", env={"CREDITBOT_LOG_LEVEL": "DEBUG"}, toml=toml)
    assert "fetch failed for ds" in result.stderr


def test_chat_libraries_start_without_noise(tmp_path: Path) -> None:
    script = (
        "from bot.config import Settings\n"
        "from bot.logs import configure_logging\n"
        "configure_logging('INFO', 'text')\n"
        "from adapters.slack.adapter import SlackAdapter\n"
        "from adapters.discord.adapter import DiscordAdapter\n"
        "settings = Settings(_env_file=None, SLACK_BOT_TOKEN='xoxb-test', SLACK_SIGNING_SECRET='s' * 20,\n"
        "                    DISCORD_TOKEN='fake.discord-token-0123456789')\n"
        "SlackAdapter(settings)\n"
        "DiscordAdapter(settings)\n"
        "import logging\n"
        "logging.getLogger('discord.client').warning('something that matters')\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "PyNaCl" not in result.stderr
    assert "davey" not in result.stderr
    assert "will be unused" not in result.stderr
    assert "something that matters" in result.stderr


# 8. Optional polish


async def test_percent_thresholds_on_a_provider_without_granted_credit_are_called_out_at_start(
    tmp_path: Path, store: Store, fake: FakeProviderServer, caplog: pytest.LogCaptureFixture
) -> None:
    accounts = (
        make_account("ds", "deepseek", fake.base_url("deepseek"), warn_below_percent=Decimal(20)),
        make_account("or", "openrouter", fake.base_url("openrouter"), warn_below_percent=Decimal(20)),
    )
    config = AppConfig(make_settings(tmp_path, poll_seconds=3600, http_enabled=False), accounts, "test")
    async with httpx.AsyncClient() as http:
        runtime = make_runtime(config, store, http, [])
        with caplog.at_level(logging.WARNING, logger="bot.runtime"):
            await runtime.start()
        await runtime.stop()
    warnings = [r.getMessage() for r in caplog.records if "percent" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].startswith("ds: deepseek reports no granted credit")
