"""Delivery as people see it: one-off commands reach Discord over REST (no gateway), summaries have one title
and one footer, configured mentions are written the platform's way and shown, a chart Slack cannot post does
not fail the summary, and no message says the same thing twice."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import time as clock_time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.discord.adapter import DiscordAdapter
from adapters.discord.render import allowed_mentions_for
from adapters.discord.render import mention as discord_mention
from adapters.slack.adapter import SlackAdapter
from adapters.slack.render import mention as slack_mention
from bot.channels import Channel
from bot.config import AppConfig
from bot.models import Severity
from bot.store import Store
from tests.conftest import make_account, make_runtime, make_settings
from tests.fake_discord import FakeDiscord
from tests.fake_slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack
from tests.fakes import FakeProviderServer
from tests.test_cli import run_cli
from tests.test_run_e2e import one_account_toml

DISCORD_TOKEN = "MjIy.fake.discord-token-0123456789"


@pytest.fixture
def discord_fake() -> Iterator[FakeDiscord]:
    with FakeDiscord(token=DISCORD_TOKEN) as server:
        yield server


def discord_toml(fake: FakeProviderServer, channel: int, mention: str | None = None) -> str:
    return one_account_toml(fake, "discord", str(channel), "09:00", mention)


def discord_env(discord_fake: FakeDiscord) -> dict[str, str]:
    return {"DISCORD_TOKEN": DISCORD_TOKEN, "DISCORD_API_URL": discord_fake.rest_url}


def test_summary_send_delivers_to_discord_over_rest_with_the_chart(
    tmp_path: Path, fake: FakeProviderServer, discord_fake: FakeDiscord
) -> None:
    toml = discord_toml(fake, discord_fake.channel_id)
    result = run_cli(tmp_path, "summary", "--send", env=discord_env(discord_fake), toml=toml)
    assert result.returncode == 0, result.stderr
    assert f"discord:{discord_fake.channel_id}: summary sent" in result.stderr
    (post,) = discord_fake.recorded("POST", f"/channels/{discord_fake.channel_id}/messages")
    assert post.status == 200
    assert "Daily LLM credits summary" in post.json["content"]
    assert post.json["allowed_mentions"]["parse"] == []  # nothing in a summary may ping
    assert post.json["embeds"][-1]["image"]["url"].startswith("attachment://credits-")
    (chart,) = post.files
    assert chart.data.startswith(b"\x89PNG")
    buttons = [c["custom_id"] for row in post.json["components"] for c in row["components"]]
    assert buttons == ["creditbot:refresh"]
    assert not discord_fake.identify_payloads  # the gateway was never opened
    assert not discord_fake.recorded("GET", "/gateway*")
    assert DISCORD_TOKEN not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_notify_test_reaches_discord_and_survives_a_429(
    tmp_path: Path, fake: FakeProviderServer, discord_fake: FakeDiscord
) -> None:
    path = f"/channels/{discord_fake.channel_id}/messages"
    discord_fake.rate_limit_next("POST", path, retry_after=0.5)
    toml = discord_toml(fake, discord_fake.channel_id)
    result = run_cli(tmp_path, "notify-test", env=discord_env(discord_fake), toml=toml)
    assert result.returncode == 0, result.stderr
    assert [p.status for p in discord_fake.recorded("POST", path)] == [429, 200]  # waited out, posted once
    assert "creditbot test message" in discord_fake.recorded("POST", path)[-1].json["content"]


def test_a_long_429_is_a_retry_later_not_a_wait(
    tmp_path: Path, fake: FakeProviderServer, discord_fake: FakeDiscord
) -> None:
    path = f"/channels/{discord_fake.channel_id}/messages"
    discord_fake.rate_limit_next("POST", path, retry_after=120)
    toml = discord_toml(fake, discord_fake.channel_id)
    result = run_cli(tmp_path, "notify-test", env=discord_env(discord_fake), toml=toml)
    assert result.returncode == 1
    assert (
        "not delivered yet (Discord rate limited for 120 s); it stays queued and `creditbot run` tries again"
        in result.stderr
    )
    assert [p.status for p in discord_fake.recorded("POST", path)] == [429]
    assert "Traceback" not in result.stderr


def test_a_refused_discord_token_is_one_line(
    tmp_path: Path, fake: FakeProviderServer, discord_fake: FakeDiscord
) -> None:
    toml = discord_toml(fake, discord_fake.channel_id)
    env = {**discord_env(discord_fake), "DISCORD_TOKEN": "MjIy.wrong.discord-token-9999999999"}
    result = run_cli(tmp_path, "notify-test", env=env, toml=toml)
    assert result.returncode == 1
    (line,) = [line for line in result.stderr.splitlines() if "not delivered" in line]
    assert line.startswith(
        f"discord:{discord_fake.channel_id}: not delivered (Discord refused DISCORD_TOKEN (401)"
    )
    assert "Developer Portal" in line  # and where to get a good one
    assert not discord_fake.recorded("POST", "/channels/*")
    assert "Traceback" not in result.stderr


# --- In the channel: titles, footers, mentions, charts -------------------------------------------------------


async def _tiny_chart(_views: Any) -> bytes:
    return b"\x89PNG\r\n\x1a\nchart"


@pytest.fixture
async def slack_bot(tmp_path: Path, fake: FakeProviderServer) -> AsyncIterator[dict[str, Any]]:
    with FakeSlack() as slack:
        settings = make_settings(
            tmp_path, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET, SLACK_API_URL=slack.api_url
        )
        accounts = (make_account("ds", "deepseek", fake.base_url("deepseek"), warn_below=Decimal(200)),)
        channel = Channel("slack", "C1", daily_summary=clock_time(9, 0), alerts=Severity.WARNING, mention="@here")
        config = AppConfig(settings, accounts, "test", channels=(channel,))
        store = await Store.open(settings.database_url)
        async with httpx.AsyncClient() as http:
            adapter = SlackAdapter(settings)
            runtime = make_runtime(config, store, http, [adapter], charts=_tiny_chart)
            await adapter.start(runtime.handler)
            yield {"runtime": runtime, "slack": slack, "store": store, "channel": channel}
            await adapter.stop()
        await store.close()


@pytest.fixture
async def discord_bot(tmp_path: Path, fake: FakeProviderServer) -> AsyncIterator[dict[str, Any]]:
    with FakeDiscord(token=DISCORD_TOKEN) as server, server.patch():
        settings = make_settings(
            tmp_path,
            DISCORD_TOKEN=DISCORD_TOKEN,
            DISCORD_API_URL=server.rest_url,
            DISCORD_GATEWAY_URL=server.gateway_url,
            DISCORD_GUILD_IDS=str(server.guild_id),
        )
        accounts = (make_account("ds", "deepseek", fake.base_url("deepseek"), warn_below=Decimal(200)),)
        channel = Channel("discord", str(server.channel_id), alerts=Severity.WARNING, mention="@here")
        config = AppConfig(settings, accounts, "test", channels=(channel,))
        store = await Store.open(settings.database_url)
        async with httpx.AsyncClient() as http:
            adapter = DiscordAdapter(settings, guild_ready_timeout=0.1)
            runtime = make_runtime(config, store, http, [adapter], charts=_tiny_chart)
            await adapter.start(runtime.handler)
            try:
                yield {"runtime": runtime, "discord": server, "channel": channel, "adapter": adapter}
            finally:
                await adapter.stop()
        await store.close()


def _blocks(call: Any) -> list[dict[str, Any]]:
    blocks = call.data["blocks"]
    return blocks if isinstance(blocks, list) else list(json.loads(blocks))


async def test_discord_summary_has_one_title_and_one_footer(discord_bot: dict[str, Any]) -> None:
    fake: FakeDiscord = discord_bot["discord"]
    channel = discord_bot["channel"]
    assert await discord_bot["runtime"].send_summary(channel)
    (post,) = fake.recorded("POST", f"/channels/{fake.channel_id}/messages")
    assert post.json["content"] == "**Daily LLM credits summary**"  # summaries call nobody
    embeds = post.json["embeds"]
    said = json.dumps([post.json["content"], embeds], ensure_ascii=False)
    assert said.count("Daily LLM credits summary") == 1
    footers = [e["footer"]["text"] for e in embeds if "footer" in e]
    assert len(footers) == 1
    assert footers[0].startswith("as of ")
    assert "footer" in embeds[-1]  # at the end, under everything it dates


async def test_discord_alert_mentions_here_visibly_and_says_the_balance_once(discord_bot: dict[str, Any]) -> None:
    fake: FakeDiscord = discord_bot["discord"]
    await discord_bot["runtime"].poll()
    posts = fake.recorded("POST", f"/channels/{fake.channel_id}/messages")
    (alert,) = [p for p in posts if "below" in (p.json.get("content") or "")]
    assert alert.json["content"] == "@here **ds: below ¥200.00**"
    assert alert.json["allowed_mentions"]["parse"] == ["everyone"]
    assert not alert.json["allowed_mentions"].get("roles")
    assert not alert.json["allowed_mentions"].get("users")
    assert json.dumps(alert.json["embeds"], ensure_ascii=False).count("¥110.00 left") == 1


async def test_slack_alert_mentions_here_in_the_blocks_and_says_each_thing_once(slack_bot: dict[str, Any]) -> None:
    slack: FakeSlack = slack_bot["slack"]
    await slack_bot["runtime"].poll()
    (alert,) = [c for c in slack.state.called("/api/chat.postMessage") if "below" in c.data["text"]]
    assert alert.data["text"] == "<!here> :warning: ds: below ¥200.00"  # the title once, not "x: x"
    blocks = _blocks(alert)
    assert blocks[0]["text"]["text"] == "ds: below ¥200.00"
    assert blocks[1]["text"]["text"] == "<!here>"  # seen in the message, not only in the notification
    assert json.dumps(blocks, ensure_ascii=False).count("¥110.00 left") == 1


@pytest.mark.parametrize(
    ("configured", "slack", "discord"),
    [
        ("@here", "<!here>", "@here"),
        ("@channel", "<!channel>", "@channel"),  # no such thing on Discord: plain text
        ("@everyone", "<!everyone>", "@everyone"),
        ("U0123ABCD", "<@U0123ABCD>", "U0123ABCD"),
        ("S0456EFGH", "<!subteam^S0456EFGH>", "S0456EFGH"),
        ("<!here>", "<!here>", "\\<!here\\>"),
        ("<@&555>", "&lt;@&amp;555&gt;", "<@&555>"),
        ("<@!777>", "&lt;@!777&gt;", "<@777>"),
        ("@oncall <!channel>", "@oncall &lt;!channel&gt;", "@oncall \\<!channel\\>"),
    ],
)
def test_mentions_are_written_the_platforms_way_and_nothing_else_pings(
    configured: str, slack: str, discord: str
) -> None:
    assert slack_mention(configured) == slack
    assert discord_mention(configured) == discord


def test_discord_allows_exactly_the_configured_mention() -> None:
    assert allowed_mentions_for(("@here",)) == {"everyone": True, "roles": [], "users": []}
    assert allowed_mentions_for(("<@&555>",)) == {"everyone": False, "roles": ["555"], "users": []}
    assert allowed_mentions_for(("<@!777>",)) == {"everyone": False, "roles": [], "users": ["777"]}
    assert allowed_mentions_for(("@channel",)) == {"everyone": False, "roles": [], "users": []}


async def test_a_chart_slack_refuses_outside_the_channel_leaves_the_summary_sent_with_a_hint(
    slack_bot: dict[str, Any],
) -> None:
    slack: FakeSlack = slack_bot["slack"]
    runtime = slack_bot["runtime"]
    slack.state.not_member.add("C1")
    assert await runtime.send_summary(slack_bot["channel"])
    (item,) = await runtime.store.outbox.items("summary")
    assert item.status == "sent"
    posts = slack.state.called("/api/chat.postMessage")
    assert [_blocks(p)[0]["type"] for p in posts] == ["header", "context"]  # the summary once, then the hint
    assert "/invite @creditbot" in posts[1].data["text"]
    await runtime.dispatch()
    assert len(slack.state.called("/api/chat.postMessage")) == 2  # nothing posted again
