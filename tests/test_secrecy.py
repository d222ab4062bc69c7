"""Secrecy: canary credentials of every shape go through every scenario, and none of them comes out anywhere.

Every provider key, the Slack bot token, signing secret and app token, the Discord token and a database password
are canaries. Loopback fake providers hand each key back in every way APIs and their proxies have been seen to
(401 messages, HTML error pages, errors inside 200s, headers, redirect targets, plain-text bodies, `detail`,
Moonshot's `status: false`, 429s). The scenarios run in process (`Runtime.poll`, summaries, chat commands, direct
provider fetches) and as real processes (every CLI command, a short `creditbot run` in Slack HTTP mode with
Discord). Every surface where text leaves creditbot is collected: logs at DEBUG in text and JSON (the noisy
libraries included), every message and its Slack, Discord and console renderings, what reached the fake Slack and
Discord, exception texts, reprs and tracebacks, CLI stdout and stderr, `/metrics`, `/readyz`, `/healthz`, every
row of every database table, and the reprs of the configuration objects. No canary, nor any 10-character piece of
its secret part, may appear in any of them: creditbot never stores a key, so the database holds none at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import sqlite3
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

import tests.fake_slack as fake_slack
from adapters.console import ConsoleAdapter
from adapters.discord.adapter import DiscordAdapter
from adapters.discord.render import render as discord_render
from adapters.slack.adapter import SlackAdapter, check_slack
from adapters.slack.render import render as slack_render
from adapters.slack.render import render_home
from bot.adapter import DeliveryError
from bot.config import AccountConfig, AppConfig, ConfigError, load_config, load_settings, mask_secret
from bot.handler import Requester
from bot.logs import JsonFormatter, configure_logging
from bot.messages import Action, Message
from bot.plain import render_text
from bot.providers.base import FetchRequest, HostLimiter, ProviderError, ProviderHttp
from bot.store import Store
from tests.conftest import fetch, fetch_request, make_runtime, make_settings
from tests.fake_discord import FakeDiscord
from tests.fake_slack import FakeSlack, signed_headers, slash_body
from tests.fakes import ECHO_MODES, FakeProviders, FakeProviderServer, utc_today
from tests.test_cli import run_cli
from tests.test_run_e2e import BotProcess, bot_env, free_port

PIECE = 10  # no run of this many characters of a canary's secret part may appear anywhere


@dataclass(frozen=True)
class Canary:
    """A credential whose every piece is recognisable; `public` is the part its shape makes public anyway."""

    name: str
    value: str
    public: str = ""

    def pieces(self) -> list[str]:
        secret = self.value[len(self.public) :]
        return [secret[i : i + PIECE] for i in range(len(secret) - PIECE + 1)]


# Realistic shapes, so that shape-based redaction is exercised as well as redaction of known values.
KEYS = {
    "openai": Canary("openai admin key", "sk-admin-CANARYoai7Hq2Wm9Xz4Rt8Vb1Ny3Kc5Jd6", "sk-admin-"),
    "anthropic": Canary(
        "anthropic admin key", "sk-ant-admin01-CANARYant3Lp8Gs2Df5Qw7_Zx9-Cv1Bn4Mk6PuAA", "sk-ant-admin01-"
    ),
    "openrouter": Canary("openrouter key", "sk-or-v1-CANARYor0a1b2c3d4e5f60718293a4b5c6d7e8f9", "sk-or-v1-"),
    "deepseek": Canary("deepseek key", "sk-CANARYds9e8d7c6b5a4f3e2d1c0b9a8f7e6d5", "sk-"),
    "moonshot": Canary("moonshot key", "sk-CANARYmsT4yU7iO2pA5sD8fG1hJ3kL6zX9cV0bN", "sk-"),
    "openai-legacy": Canary("openai session key", "sess-CANARYsesR2tY5uI8oP1aS4dF7gH0jK3lZ6x", "sess-"),
}
SLACK_BOT = Canary("Slack bot token", "xoxb-CANARY5182736450-5182736451-CANARYbotQw3Er6Ty9Ui2", "xoxb-")
SLACK_SIGNING = Canary("Slack signing secret", "CANARYsig7f3e9a2b8c4d1e6f0a5b9c3d7e2f8a4b")
SLACK_APP = Canary("Slack app token", "xapp-1-CANARYapp-4827361950-CANARYappZx8Cv5Bn2Mq", "xapp-")
# The first segment of a Discord token is the base64 application id, which the invite URL publishes anyway.
DISCORD = Canary(
    "Discord token",
    "MTIzNDU2Nzg5MDEyMzQ1Njc4.GcNrY0.CANARYdisAq1Sw2De3Fr4Gt5Hy6Ju7Ki8",
    "MTIzNDU2Nzg5MDEyMzQ1Njc4.",
)
DB_PASSWORD = Canary("database password", "CANARYdbpwE4rT6yU8iO0pQ2wS")
# A key nobody configured, pasted into chat by mistake: creditbot must not keep or repeat it.
METRICS = Canary("metrics token", "CANARYmet5Hj8Kl2Zx4Cv6Bn8Mq0Wr3Ty")
PASTED = Canary("key pasted into chat", "sk-proj-CANARYchatB7nM4qW1eR5tY8uI2oP6aS9dF3", "sk-proj-")
CANARIES = [*KEYS.values(), SLACK_BOT, SLACK_SIGNING, SLACK_APP, DISCORD, DB_PASSWORD, METRICS, PASTED]

# Some keys reach the TOML through ${VAR} expansion, the others are literals in the file.
KEY_VARIABLES = {"openai": "OPENAI_ADMIN_KEY", "anthropic": "ANTHROPIC_ADMIN_KEY", "openai-legacy": "LEGACY_KEY"}
# The environment of every scenario: the discovery variables too, which Settings reads even when the TOML wins.
KEY_ENV = {
    "OPENAI_ADMIN_KEY": KEYS["openai"].value,
    "ANTHROPIC_ADMIN_KEY": KEYS["anthropic"].value,
    "OPENROUTER_API_KEY": KEYS["openrouter"].value,
    "DEEPSEEK_API_KEY": KEYS["deepseek"].value,
    "MOONSHOT_API_KEY": KEYS["moonshot"].value,
    "OPENAI_SESSION_KEY": KEYS["openai-legacy"].value,
    "LEGACY_KEY": KEYS["openai-legacy"].value,
}
# Alert-provoking thresholds for the accounts that answer normally, so that alerts and summaries have content.
OK_EXTRAS = {
    "openai": 'monthly_budget = "5"\nprepaid_credit = "50"\nprepaid_since = {since}\n',
    "anthropic": 'monthly_budget = "5"\nprepaid_credit = "20"\nprepaid_since = {since}\n',
    "openrouter": 'warn_below = "100"\n',
    "deepseek": 'warn_below = "200"\n',
    "moonshot": 'critical_below = "60"\n',
    "openai-legacy": 'warn_below = "20"\n',
}
CHAT_ACCOUNTS = ["openai-401", "moonshot-status-false", "openrouter-text-400"]
NOISY_LIBRARIES = ("httpx", "httpcore", "slack_sdk", "slack_bolt", "discord", "aiohttp", "asyncio", "apscheduler")


def leaks(text: str) -> list[str]:
    """Each canary found in `text`, with the piece found and where."""
    found = []
    for canary in CANARIES:
        piece = next((p for p in canary.pieces() if p in text), None)
        if piece is not None:
            at = text.index(piece)
            found.append(f"{canary.name}: ...{text[max(0, at - 60) : at + 40]!r}...")
    return found


def assert_no_canary(surfaces: dict[str, str]) -> None:
    """Fail with every surface that shows a canary."""
    assert surfaces, "nothing was collected"
    problems = [f"{where}: {leak}" for where, text in surfaces.items() for leak in leaks(text)]
    assert not problems, "canaries leaked:\n" + "\n".join(problems)


def dump_database(path: Path) -> dict[str, str]:
    """Every row of every table, each column as text (JSON included), one surface per table."""
    tables: dict[str, str] = {}
    with contextlib.closing(sqlite3.connect(path)) as connection:
        names = [r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for name in names:
            rows = connection.execute(f'SELECT * FROM "{name}"').fetchall()
            tables[f"table {name}"] = "\n".join(" | ".join(str(value) for value in row) for row in rows)
    assert "readings" in " ".join(tables), f"no creditbot tables in {path}"
    return tables


def accounts_toml(servers: dict[str, FakeProviderServer]) -> str:
    """One account per provider and fake server (one server answers normally, each other echoes keys one way)."""
    since = utc_today() - timedelta(days=9)
    tables = []
    for mode, server in servers.items():
        for provider, canary in KEYS.items():
            key = f"${{{KEY_VARIABLES[provider]}}}" if provider in KEY_VARIABLES else canary.value
            extra = OK_EXTRAS[provider].format(since=since) if mode == "ok" else ""
            tables.append(
                f'[[accounts]]\nname = "{provider}-{mode}"\nprovider = "{provider}"\napi_key = "{key}"\n'
                f'base_url = "{server.base_url(provider)}"\n{extra}'
            )
    return "\n".join(tables)


def channels_toml() -> str:
    """Channels that get every alert, and a summary that has just fallen due. The console shows every account;
    Slack and Discord, which pace posts to one a second per channel, a few echoing ones."""
    just_passed = (datetime.now(UTC) - timedelta(minutes=2)).strftime("%H:%M")
    few = json.dumps(CHAT_ACCOUNTS)
    return "".join(
        f'\n[[channels]]\nplatform = "{platform}"\nid = "{channel}"\ndaily_summary = "{just_passed}"\n'
        f'alerts = "info"\nmention = "@here"\naccounts = {accounts}\n'
        for platform, channel, accounts in (
            ("console", "ops", '["*"]'),
            ("slack", "C1", few),
            ("discord", "444", few),
        )
    )


@dataclass
class World:
    """The fake providers every scenario talks to, and the configuration that points at them."""

    servers: dict[str, FakeProviderServer]
    toml: str


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """One fake that answers normally and one per echo mode, each serving every provider."""
    with contextlib.ExitStack() as stack:
        # The fake Slack accepts only its own bot token: make that the canary for this module.
        patch = stack.enter_context(pytest.MonkeyPatch.context())
        patch.setattr(fake_slack, "BOT_TOKEN", SLACK_BOT.value)
        today = utc_today()
        normal = FakeProviders(
            openai_daily={today - timedelta(days=i): Decimal("1.25") for i in range(10)},
            anthropic_daily_cents={today - timedelta(days=i): Decimal("95") for i in range(10)},
            legacy_daily_cents={today - timedelta(days=i): 40.0 for i in range(10)},
        )
        servers = {"ok": stack.enter_context(FakeProviderServer(normal))}
        for mode in ECHO_MODES:
            state = FakeProviders(echo_key=dict.fromkeys(KEYS, mode))
            servers[mode] = stack.enter_context(FakeProviderServer(state))
        yield World(servers, accounts_toml(servers) + channels_toml())


async def _tiny_chart(_views: Any) -> bytes:
    # Charts are pictures of names and amounts; drawing them adds seconds and no text to check.
    return b"\x89PNG\r\n\x1a\nchart"


async def _instant(_seconds: float) -> None:
    await asyncio.sleep(0)


def _exception_text(exc: BaseException) -> str:
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


@contextlib.contextmanager
def captured_logs(secrets: list[str]) -> Iterator[dict[str, io.StringIO]]:
    """The real logging set-up at DEBUG in both formats, plus the chatty libraries at DEBUG too (stricter than
    production, which keeps them at WARNING), plus an unredacted copy that proves the keys did reach the logs."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    saved_levels = {name: logging.getLogger(name).level for name in NOISY_LIBRARIES}
    streams = {"text": io.StringIO(), "json": io.StringIO(), "raw": io.StringIO()}
    try:
        configure_logging("DEBUG", "json", secrets)
        (json_handler,) = root.handlers
        configure_logging("DEBUG", "text", secrets)
        (text_handler,) = root.handlers
        assert isinstance(json_handler, logging.StreamHandler)
        assert isinstance(text_handler, logging.StreamHandler)
        assert isinstance(json_handler.formatter, JsonFormatter)
        json_handler.setStream(streams["json"])
        text_handler.setStream(streams["text"])
        # The redacting filter rewrites the record, so the raw copy must see it first.
        raw_handler = logging.StreamHandler(streams["raw"])
        raw_handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        root.handlers[:] = [raw_handler, text_handler, json_handler]
        for name in NOISY_LIBRARIES:
            logging.getLogger(name).setLevel(logging.DEBUG)
        logging.captureWarnings(True)
        yield streams
    finally:
        logging.captureWarnings(False)
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)


# In-process scenario


@dataclass
class InProcess:
    """What the in-process scenario produced, by surface."""

    logs: dict[str, str]
    messages: dict[str, str]
    renderings: dict[str, str]
    delivered: dict[str, str]
    exceptions: dict[str, str]
    http: dict[str, str]
    database: dict[str, str]
    reprs: dict[str, str]
    readings_errors: list[str]
    provider_errors: dict[str, str]


@pytest.fixture(scope="module")
def inprocess(world: World, started_bot: StartedBot, tmp_path_factory: pytest.TempPathFactory) -> InProcess:
    del started_bot  # asked for only to start it first, so that it starts while this scenario runs
    tmp = tmp_path_factory.mktemp("inprocess")
    toml_path = tmp / "creditbot.toml"
    toml_path.write_text(world.toml)
    with FakeSlack() as slack, FakeDiscord(token=DISCORD.value) as discord_fake, discord_fake.patch():
        settings = make_settings(
            tmp,
            config_path=toml_path,
            SLACK_BOT_TOKEN=SLACK_BOT.value,
            SLACK_SIGNING_SECRET=SLACK_SIGNING.value,
            SLACK_API_URL=slack.api_url,
            DISCORD_TOKEN=DISCORD.value,
            DISCORD_API_URL=discord_fake.rest_url,
            DISCORD_GATEWAY_URL=discord_fake.gateway_url,
            DISCORD_GUILD_IDS=str(discord_fake.guild_id),
            CREDITBOT_METRICS_TOKEN=METRICS.value,
            CREDITBOT_FAILURES_BEFORE_ALERT=1,
            cache_seconds=3600,  # chat commands read the stored readings; the polls fetch
            CREDITBOT_CHART_DIR=str(tmp / "charts"),
            **KEY_ENV,
        )
        config = load_config(settings, environ=KEY_ENV)
        assert len(config.accounts) == len(KEYS) * len(world.servers)
        with captured_logs(config.secrets()) as streams:
            result = asyncio.run(_inprocess(world, tmp, config, slack, discord_fake))
            logging.getLogger("bot.secrecy").debug("settings %r, config %r", settings, config)
        result.logs = {f"{kind} log": stream.getvalue() for kind, stream in streams.items() if kind != "raw"}
        result.logs["raw"] = streams["raw"].getvalue()
    result.database = dump_database(tmp / "creditbot.db")
    return result


async def _inprocess(
    world: World, tmp: Path, config: AppConfig, slack: FakeSlack, discord_fake: FakeDiscord
) -> InProcess:
    settings = config.settings
    console_out = io.StringIO()
    exceptions: dict[str, str] = {}
    replies: dict[str, Message] = {}
    http_surfaces: dict[str, str] = {}
    provider_errors: dict[str, str] = {}
    store = await Store.open(settings.database_url)
    async with httpx.AsyncClient(timeout=10) as http:
        console = ConsoleAdapter(console_out, chart_dir=tmp / "charts", interactive=False)
        slack_adapter = SlackAdapter(settings)
        discord_adapter = DiscordAdapter(settings, guild_ready_timeout=0.1)
        runtime = make_runtime(config, store, http, [console, slack_adapter, discord_adapter], charts=_tiny_chart)
        runtime.monitor._sleep = _instant  # type: ignore[method-assign]  # retries need not really wait
        for adapter in (console, slack_adapter, discord_adapter):
            await adapter.start(runtime.handler)
        try:
            assert slack_adapter.connected()
            assert discord_adapter.connected()
            await runtime.poll()
            await runtime.poll()  # a second round: failure streaks, repeated errors, reminders
            channels = await runtime.channels()
            await runtime.send_summaries(channels, day="secrecy")
            for channel in channels:
                await runtime.notify_test(channel)
            admin = Requester("slack", "UADMIN", "C1", is_admin=True, name="admin")
            commands = [
                "",
                "share",
                "chart",
                "alerts",
                "help",
                "openai-401",
                "deepseek-header",
                "snooze moonshot-html-500 24h",
                "threshold deepseek-ok 300 100",
                "topup openai-ok 5",
                "subscribe 09:00 UTC",
                # A key pasted into chat, where an account name or amount belongs.
                PASTED.value,
                f"share {PASTED.value}",
                f"topup openai-ok {PASTED.value}",
                f"threshold deepseek-ok {PASTED.value}",
                f"snooze {PASTED.value} 24h",
                f"subscribe 09:00 {PASTED.value}",
                f"{KEYS['openai'].value}",
            ]
            for text in commands:
                replies[f"reply to {text!r}"] = (await runtime.handler.handle(text, admin)).message
            refresh = await runtime.handler.handle_action(Action("refresh", "Refresh", "openai-redirect"), admin)
            replies["refresh button"] = refresh.message
            ready, checks = await runtime.readiness()
            http_surfaces["readyz"] = json.dumps({"ready": ready, "checks": checks})
            http_surfaces["metrics"] = runtime.metrics.render().decode()
            http_surfaces["doctor slack"] = "\n".join(await check_slack(settings))
            # A failed Slack delivery, and the error it becomes.
            slack.state.failing = 1
            try:
                await slack_adapter.send("C1", replies["reply to 'help'"])
            except DeliveryError as exc:
                exceptions["DeliveryError"] = _exception_text(exc)
            readings = await store.readings.latest_readings(a.name for a in config.accounts)
            errors = [r.latest.error or "" for r in readings.values() if r.latest is not None]
            outbox = await store.outbox.items()
        finally:
            await discord_adapter.stop()
            await slack_adapter.stop()

        # Every provider and echo mode fetched directly, to see the ProviderError itself.
        async def direct(provider: str, mode: str, base_url: str) -> None:
            request = fetch_request(http, provider, base_url, key=KEYS[provider].value)
            try:
                await fetch(provider, request)
            except ProviderError as exc:
                exceptions[f"{provider} {mode}"] = _exception_text(exc)
                provider_errors[f"{provider} {mode}"] = exc.message

        await asyncio.gather(
            *(
                direct(provider, mode, server.base_url(provider))
                for mode, server in world.servers.items()
                if mode != "ok"
                for provider in KEYS
            )
        )
        # What the monitor hands to providers, printed the way a debugging session would.
        loop = asyncio.get_running_loop()
        account = config.accounts[0]
        provider_http = ProviderHttp(
            http, HostLimiter(1), account.provider, loop.time(), secrets=(account.api_key.get_secret_value(),)
        )
        request = FetchRequest(
            provider_http, account.base_url, account.api_key, None, utc_today(), datetime.now(UTC)
        )
        reprs = {"FetchRequest": repr(request), "ProviderHttp": repr(provider_http)}
    await store.close()

    messages: list[tuple[str, Message]] = [
        (f"outbox {item.key}", Message.from_json(item.message)) for item in outbox
    ]
    messages += list(replies.items())
    renderings: dict[str, str] = {}
    for name, message in messages:
        renderings[f"{name} (slack)"] = json.dumps(slack_render(message)) + json.dumps(render_home(message))
        renderings[f"{name} (discord)"] = json.dumps(discord_render(message, chart_name="credits.png"))
        renderings[f"{name} (console)"] = render_text(message)
    posted = list(slack.state.calls)
    delivered = {
        "console adapter output": console_out.getvalue(),
        # The token is what Slack and Discord must receive; everything else they got is checked.
        "fake Slack calls": json.dumps(
            [[c.path, {k: v for k, v in c.data.items() if k != "_auth"}] for c in posted]
        ),
        "fake Discord REST calls": json.dumps(
            [[r.method, r.path, r.query, r.json] for r in discord_fake.requests]
        ),
    }
    assert any(c.path == "/api/chat.postMessage" for c in posted), "nothing reached Slack"
    assert discord_fake.messages, "nothing reached Discord"
    reprs.update(_config_reprs(config, tmp))
    exceptions.update(_config_exceptions(tmp))
    return InProcess(
        logs={},
        messages={name: json.dumps(message.to_json()) for name, message in messages},
        renderings=renderings,
        delivered=delivered,
        exceptions=exceptions,
        http=http_surfaces,
        database={},
        reprs=reprs,
        readings_errors=errors,
        provider_errors=provider_errors,
    )


def _config_reprs(config: AppConfig, tmp: Path) -> dict[str, str]:
    """The configuration as printed by a debugger or a careless log line, with every secret set."""
    no_accounts = tmp / "empty.toml"  # so that the discovery variables make the accounts
    no_accounts.write_text("")
    settings = load_settings(
        _env_file=None,
        CREDITBOT_CONFIG=str(no_accounts),
        CREDITBOT_DATABASE_URL=f"postgresql+asyncpg://creditbot:{DB_PASSWORD.value}@127.0.0.1:9/creditbot",
        SLACK_BOT_TOKEN=SLACK_BOT.value,
        SLACK_SIGNING_SECRET=SLACK_SIGNING.value,
        SLACK_APP_TOKEN=SLACK_APP.value,
        DISCORD_TOKEN=DISCORD.value,
        CREDITBOT_METRICS_TOKEN=METRICS.value,
        **KEY_ENV,
    )
    return {
        "repr(settings)": repr(settings),
        "str(settings)": str(settings),
        "repr(scenario settings)": repr(config.settings),
        "repr(config)": repr(config),
        "accounts": "\n".join(f"{a!r} {a}" for a in config.accounts),
        "discovered accounts": repr(load_config(settings, environ={}).accounts),
    }


def _config_exceptions(tmp: Path) -> dict[str, str]:
    """Configuration errors raised next to canaries: a bad field beside a key, a key with a stray character,
    a bad setting among secret ones."""
    found: dict[str, str] = {}
    bad = tmp / "bad.toml"
    bad.write_text(
        f'[[accounts]]\nname = "openai-main"\nprovider = "openai"\napi_key = "{KEYS["openai"].value}"\n'
        'base_url = "ftp://example"\nwarn_below = "-1"\n'
        f'[[accounts]]\nname = "ds"\nprovider = "deepseek"\napi_key = "{KEYS["deepseek"].value} x"\n'
    )
    settings = make_settings(tmp, config_path=bad)
    with pytest.raises(ConfigError) as config_error:
        load_config(settings, environ={})
    found["ConfigError (TOML)"] = _exception_text(config_error.value)
    with pytest.raises(ConfigError) as settings_error:
        load_settings(
            _env_file=None,
            CREDITBOT_CONCURRENCY="many",
            SLACK_SIGNING_SECRET=SLACK_SIGNING.value,
            DISCORD_TOKEN=DISCORD.value,
            CREDITBOT_METRICS_TOKEN=METRICS.value,
            **KEY_ENV,
        )
    found["ConfigError (settings)"] = _exception_text(settings_error.value)
    with pytest.raises(ConfigError) as discovery_error:
        load_config(
            load_settings(
                _env_file=None,
                CREDITBOT_CONFIG=str(tmp / "empty.toml"),
                OPENAI_ADMIN_KEY=KEYS["openai"].value + " x",
            ),
            environ={},
        )
    found["ConfigError (discovery)"] = _exception_text(discovery_error.value)
    with pytest.raises(ValidationError) as validation_error:
        AccountConfig.model_validate(
            {"name": "x", "provider": "openai", "api_key": KEYS["openai"].value + " x", "base_url": "ftp://e"}
        )
    found["ValidationError (account)"] = _exception_text(validation_error.value)
    return found


# Command line scenario


CLI_COMMANDS: dict[str, list[str]] = {
    "check --json": ["check", "--json"],
    "check": ["check"],
    "check --refresh one account": ["check", "--refresh", "--account", "openai-401", "--account", "moonshot-ok"],
    "accounts": ["accounts"],
    "alerts": ["alerts"],
    # One channel with a few accounts: a chart of every account would only cost time.
    "summary": ["summary", "--channel", "C1"],
    "summary --send": ["summary", "--send", "--channel", "C1"],
    "notify-test": ["notify-test"],
    "doctor": ["doctor"],
    "topup": ["topup", "openai-ok", "5"],
}


@dataclass
class CliRuns:
    """stdout and stderr of every command, and the database they left."""

    outputs: dict[str, str]
    database: dict[str, str]
    slack_calls: str


@pytest.fixture(scope="module")
def cli(world: World, started_bot: StartedBot, tmp_path_factory: pytest.TempPathFactory) -> CliRuns:
    del started_bot  # asked for only to start it first, so that it starts while these commands run
    home = tmp_path_factory.mktemp("cli")
    (home / "creditbot.toml").write_text(world.toml)
    outputs: dict[str, str] = {}
    with FakeSlack() as slack:
        env = {
            **KEY_ENV,
            "SLACK_BOT_TOKEN": SLACK_BOT.value,
            "SLACK_SIGNING_SECRET": SLACK_SIGNING.value,
            "SLACK_APP_TOKEN": SLACK_APP.value,
            "SLACK_API_URL": slack.api_url,
            "DISCORD_TOKEN": DISCORD.value,
            "CREDITBOT_METRICS_TOKEN": METRICS.value,
            "CREDITBOT_LOG_LEVEL": "DEBUG",
            "CREDITBOT_CHART_DIR": str(home / "charts"),
        }

        def run(name: str, args: list[str], fmt: str, cwd: Path = home, **extra: str) -> None:
            result = run_cli(cwd, *args, env={**env, "CREDITBOT_LOG_FORMAT": fmt, **extra})
            assert "Traceback" not in result.stderr, result.stderr
            outputs[f"creditbot {name} (exit {result.returncode}, {fmt} logs)"] = (
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )

        # Both log formats reach the terminal at DEBUG, one command in two each.
        formats = {name: ("text", "json")[index % 2] for index, name in enumerate(CLI_COMMANDS)}
        run("check --json", CLI_COMMANDS["check --json"], "text")  # first, alone: it creates the database
        with ThreadPoolExecutor(max_workers=3) as pool:
            others = [name for name in CLI_COMMANDS if name != "check --json"]
            for future in [pool.submit(run, name, CLI_COMMANDS[name], formats[name]) for name in others]:
                future.result()
        failures = tmp_path_factory.mktemp("cli-failures")
        (failures / "creditbot.toml").write_text(
            f'[[accounts]]\nname = "openai-main"\nprovider = "openai"\napi_key = "{KEYS["openai"].value}"\n'
            'base_url = "ftp://example"\n'
            # A key pasted into the wrong field.
            f'[[accounts]]\nname = "ds"\nprovider = "{KEYS["deepseek"].value}"\n'
            f'api_key = "{KEYS["deepseek"].value}"\n'
        )
        run("check with a configuration error", ["check"], "text", cwd=failures)
        bare = tmp_path_factory.mktemp("cli-settings")
        run("check with a bad setting", ["check"], "json", cwd=bare, CREDITBOT_CONCURRENCY="many")
        pasted = KEYS["openai"].value + " x"
        run("accounts from discovery with a stray paste", ["accounts"], "text", cwd=bare, OPENAI_ADMIN_KEY=pasted)
        url = f"postgresql+asyncpg://creditbot:{DB_PASSWORD.value}@127.0.0.1:{free_port()}/creditbot"
        run("doctor with an unreachable database", ["doctor"], "json", cwd=bare, CREDITBOT_DATABASE_URL=url)
        slack_calls = json.dumps(
            [[c.path, {k: v for k, v in c.data.items() if k != "_auth"}] for c in slack.state.calls]
        )
    return CliRuns(outputs, dump_database(home / "data" / "creditbot.db"), slack_calls)


# `creditbot run` scenario


@dataclass
class BotRun:
    """The output of a short `creditbot run` and everything it served or sent."""

    surfaces: dict[str, str]
    database: dict[str, str]


def _get(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> str:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return f"{response.status} {response.read().decode()}"
    except urllib.error.HTTPError as exc:
        return f"{exc.code} {exc.read().decode()}"


@dataclass
class StartedBot:
    """A `creditbot run` process and the fake chat platforms it talks to."""

    process: BotProcess
    home: Path
    port: int
    slack: FakeSlack
    discord: FakeDiscord


@pytest.fixture(scope="module")
def started_bot(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartedBot]:
    """`creditbot run` in Slack HTTP mode with Discord, every secret a canary, logging JSON at DEBUG. The other
    scenarios ask for it first so that its start-up (about ten seconds) overlaps them."""
    home = tmp_path_factory.mktemp("run")
    (home / "creditbot.toml").write_text(world.toml)
    port = free_port()
    with FakeSlack() as slack, FakeDiscord(token=DISCORD.value) as discord_fake:
        env = {
            **bot_env(home, port),
            **KEY_ENV,
            "CREDITBOT_POLL_SECONDS": "30",
            "CREDITBOT_LOG_LEVEL": "DEBUG",
            "CREDITBOT_LOG_FORMAT": "json",
            "CREDITBOT_FAILURES_BEFORE_ALERT": "1",
            "SLACK_BOT_TOKEN": SLACK_BOT.value,
            "SLACK_SIGNING_SECRET": SLACK_SIGNING.value,
            "SLACK_API_URL": slack.api_url,
            "DISCORD_TOKEN": DISCORD.value,
            "DISCORD_API_URL": discord_fake.rest_url,
            "DISCORD_GATEWAY_URL": discord_fake.gateway_url,
            "DISCORD_GUILD_IDS": str(discord_fake.guild_id),
            "CREDITBOT_METRICS_TOKEN": METRICS.value,
        }
        bot = BotProcess(home, env)
        try:
            yield StartedBot(bot, home, port, slack, discord_fake)
        finally:
            if bot.proc.poll() is None:
                bot.terminate()


@pytest.fixture(scope="module")
def bot_run(started_bot: StartedBot) -> BotRun:
    bot, slack, discord_fake = started_bot.process, started_bot.slack, started_bot.discord
    surfaces: dict[str, str] = {}
    try:
        bot.wait_for("Daily LLM credits summary", timeout=40)
        base = f"http://127.0.0.1:{started_bot.port}"
        body = slash_body("share", user="U1", channel="C1", response_url=slack.response_url("cmd"))
        headers = signed_headers(body, secret=SLACK_SIGNING.value)
        surfaces["slash command answer"] = _get(f"{base}/slack/events", body.encode(), headers)
        forged = signed_headers(body, secret="not-the-signing-secret")
        surfaces["forged slash command answer"] = _get(f"{base}/slack/events", body.encode(), forged)
        assert surfaces["forged slash command answer"].startswith("401")
        slack.state.wait_for("/webhook/cmd", timeout=20)
        deadline = time.monotonic() + 20
        while not discord_fake.messages and time.monotonic() < deadline:
            time.sleep(0.1)
        for path in ("healthz", "readyz"):
            surfaces[f"/{path}"] = _get(f"{base}/{path}")
        surfaces["/metrics without the token"] = _get(f"{base}/metrics")
        assert surfaces["/metrics without the token"].startswith("401")
        surfaces["/metrics"] = _get(f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS.value}"})
    finally:
        code = bot.terminate()
    assert code == 0, "".join(bot.err)
    assert discord_fake.messages, "nothing reached Discord"
    assert "creditbot_balance" in surfaces["/metrics"]
    surfaces["run stdout"] = bot.stdout
    surfaces["run stderr"] = "".join(bot.err)
    surfaces["fake Slack calls"] = json.dumps(
        [[c.path, {k: v for k, v in c.data.items() if k != "_auth"}] for c in slack.state.calls]
    )
    surfaces["fake Discord REST calls"] = json.dumps(
        [[r.method, r.path, r.query, r.json] for r in discord_fake.requests]
    )
    return BotRun(surfaces, dump_database(started_bot.home / "data" / "creditbot.db"))


# The scenario really put the canaries in front of creditbot.


def test_every_key_went_out_and_came_back_from_every_echoing_fake(world: World, inprocess: InProcess) -> None:
    for mode, server in world.servers.items():
        if mode == "ok":
            continue
        sent = json.dumps([r.headers for r in server.state.requests])
        missing = [provider for provider, canary in KEYS.items() if canary.value not in sent]
        assert not missing, f"{mode}: no request carried the key of {missing}"
    # Echoes quoted in error messages were removed, not merely never seen.
    assert sum("[redacted]" in error for error in inprocess.readings_errors) >= 4 * len(KEYS)
    assert sum("[redacted]" in text for text in inprocess.provider_errors.values()) >= 4 * len(KEYS)
    assert len(inprocess.provider_errors) == len(KEYS) * len(ECHO_MODES), "an echoing fetch did not fail"


def test_unredacted_logs_did_carry_keys_so_the_log_checks_mean_something(inprocess: InProcess) -> None:
    assert leaks(inprocess.logs["raw"]), "no canary reached the logging system at all"


# In process


def test_no_canary_in_text_or_json_logs_at_debug(inprocess: InProcess) -> None:
    assert all(inprocess.logs[f"{kind} log"] for kind in ("text", "json"))
    assert_no_canary({k: v for k, v in inprocess.logs.items() if k != "raw"})


def test_no_canary_in_any_message(inprocess: InProcess) -> None:
    assert any(name.startswith("outbox alert:") for name in inprocess.messages)
    assert any(name.startswith("outbox summary:") for name in inprocess.messages)
    assert_no_canary(inprocess.messages)


def test_no_canary_in_slack_discord_or_console_renderings(inprocess: InProcess) -> None:
    assert_no_canary(inprocess.renderings)


def test_no_canary_in_what_reached_the_console_slack_and_discord(inprocess: InProcess) -> None:
    assert "Daily LLM credits summary" in inprocess.delivered["console adapter output"]
    assert_no_canary(inprocess.delivered)


def test_no_canary_in_exception_texts_reprs_or_tracebacks(inprocess: InProcess) -> None:
    assert {"DeliveryError", "ConfigError (TOML)", "ValidationError (account)"} <= set(inprocess.exceptions)
    assert_no_canary(inprocess.exceptions)


def test_no_canary_in_metrics_readiness_or_slack_check(inprocess: InProcess) -> None:
    assert "creditbot_fetch_failures_total" in inprocess.http["metrics"]
    assert_no_canary(inprocess.http)


def test_no_canary_in_any_database_row(inprocess: InProcess) -> None:
    assert "[redacted]" in inprocess.database["table readings"]
    assert_no_canary(inprocess.database)


def test_no_canary_in_settings_config_or_request_reprs(inprocess: InProcess) -> None:
    assert "**********" in inprocess.reprs["repr(settings)"]
    assert_no_canary(inprocess.reprs)


# Command line


def test_no_canary_in_any_cli_output(cli: CliRuns) -> None:
    assert len(cli.outputs) == len(CLI_COMMANDS) + 4
    assert_no_canary(cli.outputs)


def test_no_canary_in_what_cli_commands_sent_to_slack(cli: CliRuns) -> None:
    assert "chat.postMessage" in cli.slack_calls
    assert_no_canary({"fake Slack calls": cli.slack_calls})


def test_no_canary_in_the_database_the_cli_left(cli: CliRuns) -> None:
    assert_no_canary(cli.database)


def test_accounts_shows_no_more_of_a_key_than_its_type_and_length(cli: CliRuns) -> None:
    (output,) = [text for name, text in cli.outputs.items() if name.startswith("creditbot accounts (")]
    for canary in KEYS.values():
        hint = mask_secret(canary.value)
        assert hint in output
        shown = hint.split("…")[0]
        # The documented hint: at most the prefix that names the key's type (sk-admin-, sk-ant-admin...), and
        # the length; never a character of the secret part.
        assert canary.value.startswith(shown)
        assert len(shown) <= len(canary.public)
        assert hint == f"{shown}… ({len(canary.value)} chars)"


# creditbot run


def test_no_canary_in_run_output_http_answers_or_deliveries(bot_run: BotRun) -> None:
    assert "Daily LLM credits summary" in bot_run.surfaces["run stdout"]
    assert bot_run.surfaces["slash command answer"].startswith("200")
    assert "/webhook/cmd" in bot_run.surfaces["fake Slack calls"]
    assert_no_canary(bot_run.surfaces)


def test_no_canary_in_the_database_the_bot_left(bot_run: BotRun) -> None:
    assert_no_canary(bot_run.database)
