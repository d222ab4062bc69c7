"""Fault, abuse and secrecy campaign: hostile input is refused or made inert at every entry point, and chat
outages delay deliveries without losing or repeating them. Everything runs through the real entry points
(signed HTTP into bolt's `/slack/events`, the real discord.py client against the loopback FakeDiscord, the
console adapter, the CLI as a subprocess); only the wire is fake.

- Slack: forged, replayed, future-dated, oversized, foreign or malformed requests are refused before
  anything runs: no reply, no Web API call, no audit entry, no setting changed, no outbox row.
- Discord: every settings command (each admin verb of the parser) from a member without Manage Server is
  refused in code, audited as refused and changes nothing, although Discord would normally hide it.
- Injection: mentions, markup, links, 10k-character strings and control characters in command arguments
  (Slack, Discord, console) and in provider error text come out escaped, broken or removed, truncated in
  the echo, within the platforms' limits, and never crash a command.
- Configuration: non-HTTP or credential-carrying URLs, unsafe account names, unusable timezones and paths
  are refused with an error naming the field (exit 78 from the CLI); chart files never leave the chart dir.
- Chat faults: Slack and Discord answering 5xx or 429 for a while: each message arrives exactly once, and an
  alert and its recovery keep their order in one channel.

Operator-chosen paths (CREDITBOT_CONFIG, CREDITBOT_CHART_DIR) may contain '..': whoever sets them can name
any path anyway. What must never escape a directory is a name derived from data (chart names, accounts).
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from adapters.console import ConsoleAdapter
from adapters.discord.render import MAX_TOTAL
from bot.commands import ADMIN_VERBS, Verb
from bot.config import AppConfig, ConfigError, Settings, load_config, load_settings
from bot.messages import Message, Section, text_message
from bot.runtime import Runtime
from bot.store import NewMessage, Store, Subscription
from tests import test_discord, test_slack
from tests.conftest import make_account, make_runtime, make_settings
from tests.fake_discord import FakeDiscord, command_interaction, component_interaction
from tests.fake_slack import TEAM, FakeSlack, signed_headers, slash_body
from tests.fakes import FakeProviderServer, Scripted
from tests.test_cli import run_cli

# The bots of the Slack and Discord suites, reused as they are: bolt in HTTP mode behind the runtime's
# aiohttp listener with FakeSlack behind slack_sdk, and discord.py connected to FakeDiscord.
slack = test_slack.slack
slack_bot = test_slack.bot
discord_fake = test_discord.discord_fake
discord_bot = test_discord.bot

FORM = "application/x-www-form-urlencoded"
MANAGE_GUILD = test_discord.MANAGE_GUILD
ELSEWHERE = 4445  # a Discord channel that is not in the TOML file, so chat subscriptions are possible there

# Hostile values for every argument position. None may ping, link, format across the message, reorder or
# hide text, or crash a command; the echo of a 10k string is cut.
HOSTILE = {
    "slack channel broadcast": "<!channel>",
    "slack here broadcast": "<!here>",
    "slack user mention": "<@U123>",
    "slack channel link": "<#C1>",
    "slack link": "<http://evil.example|click>",
    "pre-escaped entity": "&lt;!channel&gt;",
    "plain @everyone": "@everyone",
    "plain @here": "@here",
    "plain @channel": "@channel",
    "discord role mention": "<@&555>",
    "discord user mention": "<@777>",
    "slack bold": "*bold*",
    "slack italic": "_x_",
    "code fence": "```code```",
    "discord markdown": "**x**__y__~~z~~",
    "discord spoiler": "||spoiler||",
    "masked link": "[click](http://evil.example)",
    "heading": "#big",
    "10k characters": "x" * 10_000,
    "rtl override": "ds\u202egnp.exe",
    "zero-width": "d\u200bs",
    "nul": "ds\x00x",
    "ansi escape": "\x1b[31mred\x1b[0m",
    "c1 csi": "\x9b31mred",
    "bom and word joiner": "\ufeffx\u2060y",
}
# Characters that must never reach a chat message or the terminal (the joiners we insert are checked apart).
FORBIDDEN_CHARS = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


# --- Slack: forged and foreign requests ------------------------------------------------------------------


def _snooze_body(slack: FakeSlack, **overrides: Any) -> str:
    # An admin's settings command: were it to run, it would snooze, audit and reply.
    return slash_body("snooze ds 24h", user="UADMIN", response_url=slack.response_url("abuse"), **overrides)


def _button_body(slack: FakeSlack, team: str = TEAM) -> str:
    payload = {
        "type": "block_actions",
        "team": {"id": team},
        "user": {"id": "UADMIN", "team_id": team},
        "channel": {"id": "C1"},
        "api_app_id": "A1",
        "trigger_id": "1.1.x",
        "response_url": slack.response_url("abuse"),
        "actions": [
            {
                "action_id": "credits_snooze_1",
                "block_id": "b",
                "type": "button",
                "value": "ds|24h",
                "action_ts": "1",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)})


def _home_event() -> str:
    event = {
        "token": "x",
        "team_id": TEAM,
        "api_app_id": "A1",
        "type": "event_callback",
        "event_id": "Ev1",
        "event_time": 1,
        "event": {"type": "app_home_opened", "user": "UADMIN", "channel": "D1", "tab": "home"},
    }
    return json.dumps(event)


def _restamped(body: str, claimed: str) -> dict[str, str]:
    # A genuine signature (made now) sent with another timestamp header.
    headers = signed_headers(body, timestamp=int(time.time()))
    headers["X-Slack-Request-Timestamp"] = claimed
    return headers


SlackRequest = Callable[[FakeSlack], tuple[str, dict[str, str]]]
FIVE_MINUTES_AND_A_BIT = 6 * 60

# (request, expected status). The first row is the genuine request: the harness must see it run.
SLACK_REQUESTS: dict[str, tuple[SlackRequest, int]] = {
    "genuine (control)": (lambda s: (_snooze_body(s), signed_headers(_snooze_body(s))), 200),
    "wrong signing secret": (lambda s: (_snooze_body(s), signed_headers(_snooze_body(s), secret="guessed")), 401),
    "no signature headers": (lambda s: (_snooze_body(s), {"Content-Type": FORM}), 401),
    "timestamp without signature": (
        lambda s: (_snooze_body(s), {"Content-Type": FORM, "X-Slack-Request-Timestamp": str(int(time.time()))}),
        401,
    ),
    "replayed: signed six minutes ago": (
        lambda s: (
            _snooze_body(s),
            signed_headers(_snooze_body(s), timestamp=int(time.time()) - FIVE_MINUTES_AND_A_BIT),
        ),
        401,
    ),
    "timestamp six minutes in the future": (
        lambda s: (
            _snooze_body(s),
            signed_headers(_snooze_body(s), timestamp=int(time.time()) + FIVE_MINUTES_AND_A_BIT),
        ),
        401,
    ),
    "valid signature of another body": (
        lambda s: (_snooze_body(s), signed_headers(_snooze_body(s).replace("24h", "1h"))),
        401,
    ),
    "signature moved to another timestamp": (
        lambda s: (_snooze_body(s), _restamped(_snooze_body(s), str(int(time.time()) - 60))),
        401,
    ),
    "v1 signature scheme": (
        lambda s: (
            _snooze_body(s),
            {
                **signed_headers(_snooze_body(s)),
                "X-Slack-Signature": signed_headers(_snooze_body(s))["X-Slack-Signature"].replace("v0=", "v1="),
            },
        ),
        401,
    ),
    "oversized body (over 256 KB)": (
        lambda s: (
            _snooze_body(s) + "&pad=" + "x" * 300_000,
            signed_headers(_snooze_body(s) + "&pad=" + "x" * 300_000),
        ),
        413,
    ),
    "signed, from another workspace": (
        lambda s: (_snooze_body(s, team="T999"), signed_headers(_snooze_body(s, team="T999"))),
        401,
    ),
    "button payload, bad signature": (
        lambda s: (_button_body(s), signed_headers(_button_body(s), secret="guessed")),
        401,
    ),
    "button payload, signed, from another workspace": (
        lambda s: (_button_body(s, team="T999"), signed_headers(_button_body(s, team="T999"))),
        401,
    ),
    "event JSON, bad signature": (
        lambda s: (
            _home_event(),
            {**signed_headers(_home_event(), secret="guessed"), "Content-Type": "application/json"},
        ),
        401,
    ),
    "non-numeric timestamp": (lambda s: (_snooze_body(s), _restamped(_snooze_body(s), "soon")), 401),
    "malformed form body, signed": (lambda s: ("%%%&&=\x00&=", signed_headers("%%%&&=\x00&=")), 404),
    # Slack's unsigned SSL check is answered by bolt (200) and must run nothing, even with command fields.
    "unsigned ssl_check carrying a command": (
        lambda s: (_snooze_body(s) + "&ssl_check=1", {"Content-Type": FORM}),
        200,
    ),
}


@pytest.mark.parametrize("case", list(SLACK_REQUESTS), ids=list(SLACK_REQUESTS))
async def test_forged_or_foreign_slack_requests_are_refused_before_anything_runs(
    slack_bot: dict[str, Any], case: str
) -> None:
    fake_slack: FakeSlack = slack_bot["slack"]
    store: Store = slack_bot["store"]
    fake_slack.state.admins.add("UADMIN")
    build, status = SLACK_REQUESTS[case]
    content, headers = build(fake_slack)
    response = await slack_bot["client"].post("/slack/events", content=content.encode(), headers=headers)
    now = slack_bot["runtime"].clock()
    if case == "genuine (control)":
        assert response.status_code == status
        await asyncio.to_thread(fake_slack.state.wait_for, "/webhook/abuse")
        assert "ds" in await store.settings.snoozed_until(now)
        assert [a.command for a in await store.settings.audit_entries()] == ["snooze"]
        return
    # Listeners run after the ack: give a wrongly accepted request time to act before looking.
    await asyncio.sleep(0.3)
    assert fake_slack.state.called("/webhook/abuse") == []
    for method in ("users.info", "views.publish", "chat.postMessage"):
        assert fake_slack.state.called(f"/api/{method}") == [], method
    assert await store.settings.audit_entries() == []
    assert await store.settings.snoozed_until(now) == {}
    assert await store.settings.subscriptions() == []
    assert await store.outbox.items() == []
    assert response.status_code == status, response.text


# --- Discord: settings commands without Manage Server --------------------------------------------------

Interaction = Callable[[FakeDiscord, str], dict[str, Any]]


def _command(name: str, options: dict[str, Any]) -> Interaction:
    def build(fake: FakeDiscord, permissions: str) -> dict[str, Any]:
        return command_interaction(fake, name, options, permissions=permissions, channel_id=ELSEWHERE)

    return build


# One row per admin verb of the parser, with arguments that an admin would see succeed.
SETTINGS_COMMANDS: dict[Verb, Interaction] = {
    Verb.SNOOZE: _command("creditbot snooze", {"account": "ds", "duration": "24h"}),
    Verb.SUBSCRIBE: _command("creditbot subscribe", {"time": "08:00", "timezone": "Europe/Paris"}),
    Verb.UNSUBSCRIBE: _command("creditbot unsubscribe", {}),
    Verb.THRESHOLD: _command("creditbot threshold", {"account": "ds", "warn": "500", "critical": "100"}),
    Verb.TOPUP: _command("creditbot topup", {"account": "ds", "amount": "10"}),
}
# Also reachable outside the /creditbot group: the Snooze button under any report.
OTHER_ROUTES: dict[str, tuple[Verb, Interaction]] = {
    "snooze button": (
        Verb.SNOOZE,
        lambda fake, permissions: component_interaction(
            fake, "creditbot:snooze:ds:24h", permissions=permissions, channel_id=ELSEWHERE
        ),
    ),
}


def test_the_table_covers_every_admin_verb_of_the_parser() -> None:
    assert set(SETTINGS_COMMANDS) == set(ADMIN_VERBS)


async def _settings_state(store: Store, now: datetime) -> tuple[Any, ...]:
    return (
        await store.settings.snoozed_until(now),
        await store.settings.subscriptions(),
        await store.settings.threshold_overrides(),
        await store.readings.ledger_entries(["ds"]),
    )


async def _subscribe_elsewhere(store: Store, now: datetime) -> None:
    # An existing chat subscription, so that a wrongly accepted unsubscribe would remove something.
    await store.settings.save_subscription(
        Subscription("discord", str(ELSEWHERE), "09:00", "UTC", "warning", "discord:admin"), now
    )


ROUTES = {verb.value: (verb, build) for verb, build in SETTINGS_COMMANDS.items()} | OTHER_ROUTES


@pytest.mark.parametrize("route", list(ROUTES))
async def test_settings_commands_without_manage_server_are_refused_audited_and_change_nothing(
    discord_bot: dict[str, Any], route: str
) -> None:
    fake: FakeDiscord = discord_bot["discord"]
    store: Store = discord_bot["store"]
    now = discord_bot["runtime"].clock()
    await _subscribe_elsewhere(store, now)
    before = await _settings_state(store, now)
    verb, build = ROUTES[route]
    fake.send_interaction(build(fake, "0"))  # a member whose permissions lack Manage Server
    (follow,) = await fake.wait_for_async("POST", "/webhooks/*")
    assert "only admins" in follow.json["embeds"][0]["description"]
    assert follow.json["flags"] & 64  # the refusal is private
    (entry,) = await store.settings.audit_entries()
    assert (entry.platform, entry.command, entry.detail) == (
        "discord",
        verb.value,
        "refused: not an admin",
    )
    assert await _settings_state(store, now) == before


async def test_the_same_settings_commands_run_for_a_member_with_manage_server(discord_bot: dict[str, Any]) -> None:
    # The control for the refusals above: the same interactions pass the admin check with the permission.
    fake: FakeDiscord = discord_bot["discord"]
    store: Store = discord_bot["store"]
    now = discord_bot["runtime"].clock()
    await _subscribe_elsewhere(store, now)
    for count, build in enumerate(SETTINGS_COMMANDS.values(), start=1):
        fake.send_interaction(build(fake, MANAGE_GUILD))
        await fake.wait_for_async("POST", "/webhooks/*", count=count)
    details = {e.command: e.detail for e in await store.settings.audit_entries()}
    assert set(details) == {v.value for v in ADMIN_VERBS}
    assert not any("not an admin" in d for d in details.values())
    snoozes, subscriptions, overrides, _ = await _settings_state(store, now)
    assert "ds" in snoozes
    assert "ds" in overrides
    assert subscriptions == []  # subscribed, then unsubscribed


# --- Injection in command arguments and provider text ---------------------------------------------------


def _slack_texts(payload: dict[str, Any]) -> list[str]:
    texts = [payload.get("text") or ""]
    for block in payload.get("blocks") or []:
        for part in [block.get("text"), *block.get("fields", []), *block.get("elements", [])]:
            if isinstance(part, dict):
                inner = part.get("text")
                texts.append(inner["text"] if isinstance(inner, dict) else inner or "")
    return texts


def _assert_block_kit_limits(payload: dict[str, Any]) -> None:
    blocks = payload.get("blocks") or []
    assert len(blocks) <= 50
    assert len(payload.get("text") or "") <= 3000
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "section":
            assert 1 <= len(block["text"]["text"]) <= 3000
            assert len(block.get("fields", [])) <= 10
            assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))
        if block["type"] == "context":
            assert len(block["elements"]) <= 10
            assert all(len(e["text"]) <= 3000 for e in block["elements"])


def assert_inert_for_slack(payload: dict[str, Any], case: str) -> None:
    """Nothing in a Slack payload can ping, link, carry a control character or break Block Kit limits."""
    _assert_block_kit_limits(payload)
    for text in _slack_texts(payload):
        assert not re.search(r"<[!@#]|<https?:", text), (case, text)
        assert not re.search(r"@(channel|here|everyone)", text, re.IGNORECASE), (case, text)  # joiner after @
        assert not FORBIDDEN_CHARS.search(text), (case, text)
        assert not re.search("(?<!@)\u2060", text), (case, text)  # the only word joiner is ours, after @
        assert "x" * 100 not in text, case  # long input is cut in the echo


_UNESCAPED_MARKUP = re.compile(r"(?<!\\)[*_`~|<>\[\]]")


def assert_inert_for_discord(payload: dict[str, Any], case: str, *, mentions: tuple[str, ...] = ()) -> None:
    """Nothing in a Discord payload pings beyond the configured mentions, formats, links, carries a
    control character or breaks embed limits."""
    assert (payload.get("allowed_mentions") or {}).get("parse", []) == []  # never @everyone/@here by parsing
    content = payload.get("content") or ""
    for mention in mentions:
        content = content.replace(mention, "")
    assert not re.search(r"<@|@everyone|@here", content), (case, content)
    embeds = payload.get("embeds") or []
    assert len(embeds) <= 10
    total = 0
    for embed in embeds:
        description = embed.get("description", "")
        fields = embed.get("fields", [])
        assert len(embed.get("title", "")) <= 256
        assert len(description) <= 4096
        assert len(fields) <= 25
        assert all(len(f["value"]) <= 1024 for f in fields)
        total += len(embed.get("title", "")) + len(description) + len(embed.get("footer", {}).get("text", ""))
        total += sum(len(f["name"]) + len(f["value"]) for f in fields)
        for text in [description, *(f["value"] for f in fields)]:
            assert not _UNESCAPED_MARKUP.search(text), (case, text)
            assert not re.search(r"@(?!\u200b)(everyone|here)", text), (case, text)
            assert not re.search(r"(?<!@)\u200b", text), (case, text)  # the only zero-width is ours, after @
            assert not FORBIDDEN_CHARS.search(text.replace("\u200b", "")), (case, text)
            assert "x" * 100 not in text, case
    assert total <= MAX_TOTAL


# Each hostile value in every argument position of the command language.
LINES: dict[str, Callable[[str], str]] = {
    "as the command": lambda x: x,
    "as an account": lambda x: f"share {x}",
    "as a duration": lambda x: f"snooze ds {x}",
    "as a threshold": lambda x: f"threshold ds {x}",
    "as a timezone": lambda x: f"subscribe Europe/{x}",
    "as a top-up account": lambda x: f"topup {x} 5",
}


async def test_hostile_slack_arguments_come_back_escaped_and_cut(slack_bot: dict[str, Any]) -> None:
    fake_slack: FakeSlack = slack_bot["slack"]
    names: dict[str, str] = {}
    limit = asyncio.Semaphore(8)

    async def post(index: int, case: str, line: str) -> None:
        name = f"inj{index}"
        names[name] = case
        body = slash_body(line, user="U1", channel="C1", response_url=fake_slack.response_url(name))
        async with limit:
            response = await slack_bot["client"].post("/slack/events", content=body, headers=signed_headers(body))
        assert response.status_code == 200, case

    cases = [(f"{what} {where}", make(value)) for what, value in HOSTILE.items() for where, make in LINES.items()]
    await asyncio.gather(*(post(i, case, line) for i, (case, line) in enumerate(cases)))
    for name, case in names.items():
        (call,) = await asyncio.to_thread(fake_slack.state.wait_for, f"/webhook/{name}")
        assert_inert_for_slack(call.data, case)
    # Made visible, not silently dropped: the echo of a broadcast shows its escaped text.
    echoes = [c.data for c in fake_slack.state.calls if c.path.startswith("/webhook/")]
    assert any("&lt;!channel&gt;" in json.dumps(e) for e in echoes)
    assert any("[31mred" in json.dumps(e) for e in echoes)


# Each hostile value in every option of the Discord commands.
OPTIONS: dict[str, Callable[[str], tuple[str, dict[str, Any]]]] = {
    "as the account of /credits": lambda x: ("credits", {"account": x}),
    "as a duration": lambda x: ("creditbot snooze", {"account": "ds", "duration": x}),
    "as a threshold": lambda x: ("creditbot threshold", {"account": "ds", "warn": x}),
    "as a timezone": lambda x: ("creditbot subscribe", {"timezone": f"Europe/{x}"}),
    "as a top-up account": lambda x: ("creditbot topup", {"account": x, "amount": "5"}),
}


async def test_hostile_discord_options_come_back_escaped_and_cut(discord_bot: dict[str, Any]) -> None:
    fake: FakeDiscord = discord_bot["discord"]
    tokens: dict[str, str] = {}
    for what, value in HOSTILE.items():
        for where, make in OPTIONS.items():
            name, options = make(value)
            data = command_interaction(fake, name, options, permissions=MANAGE_GUILD, channel_id=ELSEWHERE)
            tokens[data["token"]] = f"{what} {where}"
            fake.send_interaction(data)
    follows = await fake.wait_for_async("POST", "/webhooks/*", count=len(tokens), timeout=30)
    assert {f.path.rsplit("/", 1)[-1] for f in follows} == set(tokens)  # every command was answered
    for follow in follows:
        assert_inert_for_discord(follow.json, tokens[follow.path.rsplit("/", 1)[-1]])
    assert await discord_bot["store"].settings.audit_entries() == []  # none of them ran as a settings change


async def test_spaces_in_a_discord_option_cannot_smuggle_in_another_command(discord_bot: dict[str, Any]) -> None:
    # Options are joined into one command line: a value with spaces is refused, never split or glued.
    fake: FakeDiscord = discord_bot["discord"]
    store: Store = discord_bot["store"]
    smuggled = [
        ("credits", {"account": "snooze ds 90d"}),
        ("creditbot snooze", {"account": "ds", "duration": "1h extra words"}),
        ("creditbot threshold", {"account": "ds 1", "warn": "0"}),
        ("creditbot topup", {"account": "ds", "amount": "1 5"}),  # must not become 15 (or 1_5)
        ("creditbot threshold", {"account": "ds", "warn": "5 0.50"}),
    ]
    for count, (name, options) in enumerate(smuggled, start=1):
        fake.send_interaction(command_interaction(fake, name, options, permissions=MANAGE_GUILD))
        await fake.wait_for_async("POST", "/interactions/*", count=count)
    await fake.wait_for_async("POST", "/webhooks/*")  # /credits' account option: deferred, then answered
    now = discord_bot["runtime"].clock()
    assert await store.settings.snoozed_until(now) == {}
    assert await store.settings.threshold_overrides() == {}
    assert await store.readings.ledger_entries(["ds"]) == {"ds": []}
    assert await store.settings.audit_entries() == []
    # The settings commands are refused at once, privately, saying why; nothing was split into arguments.
    answers = [r.json for r in fake.recorded("POST", "/interactions/*")][1:]
    assert all("one word" in json.dumps(a) and a["data"]["flags"] == 64 for a in answers), answers


async def test_a_discord_account_option_is_only_ever_an_account_name(discord_bot: dict[str, Any]) -> None:
    # /credits account:<x> is joined after the verb position: a command word there must not run.
    fake: FakeDiscord = discord_bot["discord"]
    store: Store = discord_bot["store"]
    for count, word in enumerate(("unsubscribe", "help", "subscribe"), start=1):
        fake.send_interaction(command_interaction(fake, "credits", {"account": word}, permissions=MANAGE_GUILD))
        (*_, answer) = await fake.wait_for_async("POST", "/webhooks/*", count=count)
        assert f"unknown account '{word}'" in json.dumps(answer.json), answer.json
    assert await store.settings.audit_entries() == []
    assert await store.settings.subscriptions() == []


@pytest.fixture
async def console_bot(tmp_path: Path, fake: FakeProviderServer) -> Any:
    """A runtime with the console adapter, as `creditbot run` wires it, answering typed commands."""
    settings = make_settings(tmp_path)
    config = AppConfig(settings, (make_account("ds", "deepseek", fake.base_url("deepseek")),), "test")
    store = await Store.open(settings.database_url)
    out = io.StringIO()
    async with httpx.AsyncClient() as http:
        console = ConsoleAdapter(out, chart_dir=tmp_path / "charts", interactive=False)
        runtime = make_runtime(config, store, http, [console])
        await console.start(runtime.handler)
        yield console, out
    await store.close()


async def test_hostile_console_input_never_reaches_the_terminal_as_control_characters(console_bot: Any) -> None:
    console, out = console_bot
    for what, value in HOSTILE.items():
        for where, make in LINES.items():
            printed = await console.answer(f"/credits {make(value)}")
            case = f"{what} {where}"
            assert printed, case
            assert not FORBIDDEN_CHARS.search(printed), (case, printed)
            assert "x" * 100 not in printed, case
    printed = await console.answer("/credits \x1b[2J\x1b[31mred")
    assert "[2J[31mred" in printed  # the escape sequence is made visible, not executed
    # Printed deliveries too: data stored before any cleaning (an old outbox row) still reaches no terminal.
    note = "\x1b[31mred\x1b[0m \u202eevil \x9b2J \x00"
    await console.send("stdout", Message("t", "s", sections=(Section("ds", "deepseek", "error", "-", note=note),)))
    assert "[31mred[0m evil 2J" in out.getvalue()
    assert not FORBIDDEN_CHARS.search(out.getvalue())


HOSTILE_PROVIDER_TEXT = (
    "<!channel> <@U1> @everyone @here <@&555> <http://evil.example|click> [click](http://evil.example) "
    "**bold** ||spoiler|| \x1b[31mred\u202e"
)


def _provider_refuses_the_key(fake: FakeProviderServer) -> None:
    fake.state.fail("deepseek", Scripted(401, {"error": {"message": HOSTILE_PROVIDER_TEXT}}))


async def test_provider_error_text_is_inert_in_slack_replies_and_alerts(
    slack_bot: dict[str, Any], fake: FakeProviderServer
) -> None:
    fake_slack: FakeSlack = slack_bot["slack"]
    runtime: Runtime = slack_bot["runtime"]
    _provider_refuses_the_key(fake)
    # An alert channel subscribed from chat (the TOML channel of this bot takes no alerts).
    await slack_bot["store"].settings.save_subscription(
        Subscription("slack", "C9", "09:00", "UTC", "warning", "slack:UADMIN"), runtime.clock()
    )
    events = await runtime.poll()
    assert [e.rule.value for e in events] == ["source"]
    posts = [c.data for c in fake_slack.state.called("/api/chat.postMessage")]  # the alert, maybe summaries
    for post in posts:
        assert_inert_for_slack(post, "posted")
    (alert,) = [p for p in posts if p["channel"] == "C9" and "source failing" in p["text"]]
    assert "&lt;!channel&gt;" in json.dumps(alert["blocks"])  # shown, escaped
    body = slash_body("ds", response_url=fake_slack.response_url("provider"))
    await slack_bot["client"].post("/slack/events", content=body, headers=signed_headers(body))
    (reply,) = await asyncio.to_thread(fake_slack.state.wait_for, "/webhook/provider")
    assert_inert_for_slack(reply.data, "/credits ds")


async def test_provider_error_text_is_inert_in_discord_alerts(
    discord_bot: dict[str, Any], fake: FakeProviderServer
) -> None:
    discord: FakeDiscord = discord_bot["discord"]
    _provider_refuses_the_key(fake)
    await discord_bot["runtime"].poll()
    posts = discord.recorded("POST", f"/channels/{discord.channel_id}/messages")  # the alert, maybe a summary
    for other in posts:
        assert_inert_for_discord(other.json, "posted", mentions=("<@&555>",))
    (post,) = [p for p in posts if p.json["content"]]
    assert post.json["content"].startswith("<@&555>")  # the configured mention, and only it, may ping
    assert [str(r) for r in post.json["allowed_mentions"].get("roles", [])] == ["555"]
    assert "everyone" not in post.json["allowed_mentions"].get("parse", [])
    assert_inert_for_discord(post.json, "alert", mentions=("<@&555>",))
    assert any("\\<@\u200b&555\\>" in e.get("description", "") for e in post.json["embeds"])  # escaped


# --- Configuration: unsafe values are refused with the field named ------------------------------------

ACCOUNT = '[[accounts]]\nname = "a"\nprovider = "openai"\napi_key = "k"\n'


@pytest.mark.parametrize(
    ("base_url", "reason"),
    [
        ("file:///etc/passwd", "must start with http:// or https://"),
        ("ftp://example.com", "must start with http:// or https://"),
        ("gopher://example.com:70/", "must start with http:// or https://"),
        ("javascript:alert(1)", "must start with http:// or https://"),
        ("//example.com", "must start with http:// or https://"),
        ("http://", "has no host"),
        ("https:///v1", "has no host"),
        ("http://user:pass@example.com", "must not carry a user name or password"),
        ("https://example.com:99999", "is not a valid URL"),
        ("https://example.com/?to=evil", "must not have a query string"),
        ("https://example.com/#x", "must not have a query string or fragment"),
        ("https://example.com/a/../../admin", "must not contain '..'"),
        ("https://api.openai.com\\n.evil.example", "must not contain spaces or control characters"),
        ("https://api.open\\tai.com", "must not contain spaces or control characters"),
    ],
)
def test_unsafe_base_urls_are_refused_naming_the_field(tmp_path: Path, base_url: str, reason: str) -> None:
    (tmp_path / "creditbot.toml").write_text(ACCOUNT + f'base_url = "{base_url}"\n')
    settings = Settings(_env_file=None, CREDITBOT_CONFIG=str(tmp_path / "creditbot.toml"))  # type: ignore[call-arg]
    with pytest.raises(ConfigError) as caught:
        load_config(settings, environ={})
    (problem,) = caught.value.problems
    assert f"accounts[0] 'a': base_url: {reason}" in problem


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("SLACK_API_URL", "file:///etc/passwd", "must start with http:// or https://"),
        ("SLACK_API_URL", "https://u:p@slack.example/api/", "must not carry a user name or password"),
        ("DISCORD_API_URL", "javascript:alert(1)", "must start with http:// or https://"),
        ("DISCORD_GATEWAY_URL", "http://gateway.example", "must be a ws:// or wss:// URL"),
        ("DISCORD_GATEWAY_URL", "wss://u:p@gateway.example", "must not carry a user name or password"),
        ("CREDITBOT_TIMEZONE", "America/Argentina", "is not an IANA timezone"),  # a directory of zones
        ("CREDITBOT_TIMEZONE", "Europe/" + "x" * 300, "is not an IANA timezone"),  # too long for a file name
        ("CREDITBOT_TIMEZONE", "../../etc/passwd", "is not an IANA timezone"),
        ("CREDITBOT_CHART_DIR", "charts\x00/../x", "must not contain control characters"),
        ("CREDITBOT_CONFIG", "creditbot.toml\x1b[2J", "must not contain control characters"),
    ],
)
def test_unsafe_settings_are_refused_naming_the_variable(variable: str, value: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None, **{variable: value})
    (problem,) = caught.value.problems
    assert problem.startswith(f"environment: {variable}: ")
    assert reason in problem


def test_a_non_http_moonshot_base_url_is_refused_naming_the_variable() -> None:
    settings = Settings(_env_file=None, MOONSHOT_API_KEY="sk-ms-123456", MOONSHOT_BASE_URL="gopher://x")  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="environment: MOONSHOT_BASE_URL: must start with http"):
        load_config(settings, environ={})


@pytest.mark.parametrize(
    "name", ["../../etc/x", "a/b", "..", ".", "a\\\\b", "<!channel>", "ds\\u202e", "x" * 65, ""]
)
def test_account_names_that_could_name_a_path_or_ping_are_refused(tmp_path: Path, name: str) -> None:
    (tmp_path / "creditbot.toml").write_text(
        f'[[accounts]]\nname = "{name}"\nprovider = "deepseek"\napi_key = "k"\n'
    )
    settings = Settings(_env_file=None, CREDITBOT_CONFIG=str(tmp_path / "creditbot.toml"))  # type: ignore[call-arg]
    with pytest.raises(ConfigError) as caught:
        load_config(settings, environ={})
    assert "name: use 1 to 64 letters, digits, '-' or '_'" in caught.value.problems[0]


def test_a_channel_timezone_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    toml = ACCOUNT + '[[channels]]\nplatform = "console"\nid = "stdout"\ntimezone = "America/Argentina"\n'
    (tmp_path / "creditbot.toml").write_text(toml)
    settings = Settings(_env_file=None, CREDITBOT_CONFIG=str(tmp_path / "creditbot.toml"))  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match=r"channels\[0\] 'stdout': timezone: 'America/Argentina' is not an IANA"):
        load_config(settings, environ={})


def test_a_config_path_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    # A directory cannot be read; a device such as /dev/zero would be read forever.
    settings = Settings(_env_file=None, CREDITBOT_CONFIG=str(tmp_path))  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="is not a regular file"):
        load_config(settings, environ={})


@pytest.mark.parametrize(
    ("env", "toml", "named"),
    [
        ({}, ACCOUNT + 'base_url = "gopher://127.0.0.1:70/"\n', "accounts[0] 'a': base_url: must start with http"),
        (
            {"DEEPSEEK_API_KEY": "sk-abcdef123456", "CREDITBOT_TIMEZONE": "America/Argentina"},
            None,
            "CREDITBOT_TIMEZONE",
        ),
    ],
    ids=["non-http base_url", "timezone naming a directory"],
)
def test_the_cli_exits_78_with_the_field_named(
    tmp_path: Path, env: dict[str, str], toml: str | None, named: str
) -> None:
    result = run_cli(tmp_path, "check", env=env, toml=toml)
    assert result.returncode == 78, result.stderr
    assert named in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("chart_name", ["../../escaped.png", "{tmp}/escaped.png", ".."])
async def test_a_chart_never_lands_outside_the_chart_dir(tmp_path: Path, chart_name: str) -> None:
    # The name travels through the outbox as JSON, so a stored row could carry anything.
    charts = tmp_path / "a" / "charts"
    console = ConsoleAdapter(io.StringIO(), chart_dir=charts, interactive=False)
    stored = Message("Daily", "s", chart=b"\x89PNG chart").to_json()
    stored["chart_name"] = chart_name.replace("{tmp}", str(tmp_path))
    await console.send("stdout", Message.from_json(stored))
    (written,) = _files(tmp_path)
    assert written.parent == charts
    assert written.read_bytes() == b"\x89PNG chart"


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


# --- Chat faults: retried, delivered once, in order ------------------------------------------------------


async def _queue_alert_and_recovery(runtime: Runtime, platform: str, channel: str, now: datetime) -> None:
    for suffix, title in (("1", "ds: below ¥200.00"), ("1:recovered", "ds: recovered")):
        await runtime.store.outbox.enqueue(
            NewMessage(
                f"alert:{platform}:{channel}:ds:balance:{suffix}",
                platform,
                channel,
                "alert",
                "warning",
                text_message(title, title).to_json(),
                now,
            ),
            now=now,
        )


async def _dispatch_until_sent(runtime: Runtime, clock: dict[str, datetime], step: timedelta, rounds: int) -> None:
    for _ in range(rounds):
        await runtime.dispatch()
        if all(i.status == "sent" for i in await runtime.store.outbox.items()):
            return
        clock["now"] += step  # past the back-off, so the next dispatch retries
    raise AssertionError([(i.key, i.status, i.last_error) for i in await runtime.store.outbox.items()])


def _fake_clock(runtime: Runtime) -> dict[str, datetime]:
    clock = {"now": datetime.now(UTC)}
    runtime.clock = lambda: clock["now"]
    return clock


async def test_slack_503s_for_a_while_delay_an_alert_and_its_recovery_which_arrive_once_in_order(
    slack_bot: dict[str, Any],
) -> None:
    fake_slack: FakeSlack = slack_bot["slack"]
    runtime: Runtime = slack_bot["runtime"]
    clock = _fake_clock(runtime)
    fake_slack.state.failing, fake_slack.state.failing_status = 3, 503
    await _queue_alert_and_recovery(runtime, "slack", "C1", clock["now"])
    await runtime.dispatch()
    # The failed alert holds the recovery back: only the alert was tried.
    alert, recovery = "ds: below ¥200.00", "ds: recovered"  # the title once: the summary only repeats it
    assert [c.data["text"] for c in fake_slack.state.called("/api/chat.postMessage")] == [alert]
    await _dispatch_until_sent(runtime, clock, timedelta(minutes=5), rounds=6)
    texts = [c.data["text"] for c in fake_slack.state.called("/api/chat.postMessage")]
    assert texts == [alert] * 4 + [recovery]  # three 503s, then each once, in order
    assert fake_slack.state.posted == {"C1": 2}


async def test_a_slack_429_storm_beyond_the_in_call_retries_is_delivered_once_after_retry_after(
    slack_bot: dict[str, Any],
) -> None:
    fake_slack: FakeSlack = slack_bot["slack"]
    runtime: Runtime = slack_bot["runtime"]
    clock = _fake_clock(runtime)
    fake_slack.state.rate_limited = 4  # the send waits out two (Retry-After: 1), the outbox the rest
    await runtime.store.outbox.enqueue(
        NewMessage(
            "alert:storm",
            "slack",
            "C1",
            "alert",
            "warning",
            text_message("storm", "storm").to_json(),
            clock["now"],
        ),
        now=clock["now"],
    )
    await runtime.dispatch()
    (item,) = await runtime.store.outbox.items()
    assert item.status == "pending"
    assert item.not_before - clock["now"] <= timedelta(seconds=2)  # Slack's Retry-After, not the 30 s back-off
    await _dispatch_until_sent(runtime, clock, timedelta(seconds=2), rounds=3)
    assert len(fake_slack.state.called("/api/chat.postMessage")) == 5  # four 429s, one delivery
    assert fake_slack.state.posted == {"C1": 1}


async def test_discord_503s_for_a_while_delay_an_alert_and_its_recovery_which_arrive_once_in_order(
    discord_bot: dict[str, Any],
) -> None:
    fake: FakeDiscord = discord_bot["discord"]
    runtime: Runtime = discord_bot["runtime"]
    clock = _fake_clock(runtime)
    path = f"/channels/{fake.channel_id}/messages"
    fake.fail_next("POST", path, status=503, count=3)  # discord.py does not retry 503 itself
    await _queue_alert_and_recovery(runtime, "discord", str(fake.channel_id), clock["now"])
    await runtime.dispatch()
    assert [c.status for c in fake.recorded("POST", path)] == [503]  # the recovery waits behind the alert
    await _dispatch_until_sent(runtime, clock, timedelta(minutes=5), rounds=6)
    calls = fake.recorded("POST", path)
    assert [c.status for c in calls] == [503, 503, 503, 200, 200]
    assert [c.json["content"] for c in calls[3:]] == ["**ds: below ¥200.00**", "**ds: recovered**"]


async def test_a_discord_429_storm_beyond_discord_py_retries_is_delivered_once(
    discord_bot: dict[str, Any],
) -> None:
    fake: FakeDiscord = discord_bot["discord"]
    runtime: Runtime = discord_bot["runtime"]
    clock = _fake_clock(runtime)
    path = f"/channels/{fake.channel_id}/messages"
    fake.rate_limit_next("POST", path, retry_after=0.05, count=5)  # discord.py tries five times, then gives up
    await runtime.store.outbox.enqueue(
        NewMessage(
            "alert:storm",
            "discord",
            str(fake.channel_id),
            "alert",
            "warning",
            text_message("storm", "storm").to_json(),
            clock["now"],
        ),
        now=clock["now"],
    )
    await runtime.dispatch()
    assert [c.status for c in fake.recorded("POST", path)] == [429] * 5
    await _dispatch_until_sent(runtime, clock, timedelta(minutes=1), rounds=3)
    assert [c.status for c in fake.recorded("POST", path)] == [429] * 5 + [200]


async def test_a_long_discord_retry_after_is_honoured_by_the_outbox(discord_bot: dict[str, Any]) -> None:
    # Over max_ratelimit_timeout (30 s) discord.py raises instead of sleeping; the outbox waits it out.
    fake: FakeDiscord = discord_bot["discord"]
    runtime: Runtime = discord_bot["runtime"]
    clock = _fake_clock(runtime)
    path = f"/channels/{fake.channel_id}/messages"
    fake.rate_limit_next("POST", path, retry_after=60, count=1)
    await runtime.store.outbox.enqueue(
        NewMessage(
            "alert:later",
            "discord",
            str(fake.channel_id),
            "alert",
            "warning",
            text_message("later", "later").to_json(),
            clock["now"],
        ),
        now=clock["now"],
    )
    await runtime.dispatch()
    clock["now"] += timedelta(seconds=30)
    await runtime.dispatch()
    assert [c.status for c in fake.recorded("POST", path)] == [429]  # not before Retry-After
    clock["now"] += timedelta(seconds=31)
    await runtime.dispatch()
    assert [c.status for c in fake.recorded("POST", path)] == [429, 200]
    (item,) = await runtime.store.outbox.items()
    assert item.status == "sent"
