"""The Discord adapter driving the real discord.py client against a loopback fake Discord (REST + gateway):
login, READY, command sync, /credits deferred then answered with embeds, buttons, a permission refusal,
a scheduled post with its chart, and a 429."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.discord.adapter import DiscordAdapter, application_id_from_token, invite_url
from adapters.discord.render import MAX_EMBEDS, MAX_TOTAL, allowed_mentions_for, render
from bot.channels import Channel
from bot.config import AppConfig
from bot.messages import Field, Message, Section
from bot.models import Severity
from bot.store import Store
from tests.conftest import make_account, make_runtime, make_settings
from tests.fake_discord import FakeDiscord, command_interaction, component_interaction
from tests.fakes import FakeProviderServer

TOKEN = "MjIy.fake.discord-token-0123456789"
MANAGE_GUILD = str(1 << 5)


@pytest.fixture
def discord_fake() -> Iterator[FakeDiscord]:
    with FakeDiscord(token=TOKEN) as server, server.patch():
        yield server


@pytest.fixture
async def bot(
    tmp_path: Path, fake: FakeProviderServer, discord_fake: FakeDiscord
) -> AsyncIterator[dict[str, Any]]:
    settings = make_settings(
        tmp_path,
        DISCORD_TOKEN=TOKEN,
        DISCORD_API_URL=discord_fake.rest_url,
        DISCORD_GATEWAY_URL=discord_fake.gateway_url,
        DISCORD_GUILD_IDS=str(discord_fake.guild_id),
        cache_seconds=60,
    )
    accounts = (make_account("ds", "deepseek", fake.base_url("deepseek"), warn_below=Decimal(200)),)
    channel = Channel(
        "discord",
        str(discord_fake.channel_id),
        daily_summary=time(9, 0),
        alerts=Severity.WARNING,
        mention="<@&555>",
    )
    config = AppConfig(settings, accounts, "test", channels=(channel,))
    store = await Store.open(settings.database_url)
    async with httpx.AsyncClient() as http:
        adapter = DiscordAdapter(settings, guild_ready_timeout=0.1)
        runtime = make_runtime(config, store, http, [adapter], charts=_tiny_chart)
        await adapter.start(runtime.handler)
        try:
            yield {
                "adapter": adapter,
                "runtime": runtime,
                "discord": discord_fake,
                "channel": channel,
                "store": store,
            }
        finally:
            await adapter.stop()
    await store.close()


async def _tiny_chart(_views: Any) -> bytes:
    return b"\x89PNG\r\n\x1a\nchart"


async def test_login_ready_and_guild_command_sync(bot: dict[str, Any]) -> None:
    fake: FakeDiscord = bot["discord"]
    assert bot["adapter"].connected()
    assert fake.identify_payloads[0]["token"] == TOKEN
    commands = {c["name"]: c for c in fake.guild_commands[fake.guild_id]}
    assert set(commands) == {"credits", "creditbot"}
    assert [o["name"] for o in commands["credits"]["options"]] == ["account", "public"]
    assert commands["credits"]["options"][0]["autocomplete"] is True
    group = commands["creditbot"]
    assert str(group["default_member_permissions"]) == MANAGE_GUILD
    assert {o["name"] for o in group["options"]} == {
        "help",
        "alerts",
        "chart",
        "breakdown",
        "snooze",
        "subscribe",
        "unsubscribe",
        "threshold",
        "topup",
    }
    assert fake.global_commands == []  # guild IDs set: no global sync


async def test_credits_is_deferred_then_answered_with_an_embed_per_account(bot: dict[str, Any]) -> None:
    fake: FakeDiscord = bot["discord"]
    fake.send_interaction(command_interaction(fake, "credits", {"account": "ds"}))
    (callback,) = await fake.wait_for_async("POST", "/interactions/*/callback")
    assert callback.json["type"] == 5  # deferred, within the 3 seconds
    assert callback.json["data"]["flags"] & 64  # ephemeral
    (follow,) = await fake.wait_for_async("POST", "/webhooks/*")
    (embed,) = follow.json["embeds"]
    assert embed["title"] == "ds (deepseek)"
    assert embed["description"] == "¥110.00 left"
    assert embed["color"] == 0xE69F00  # warning: below the 200 threshold
    assert {"name": "Status", "value": "warning", "inline": True} in embed["fields"]
    assert embed["footer"]["text"].startswith("as of ")
    buttons = [c["custom_id"] for row in follow.json["components"] for c in row["components"]]
    assert buttons == ["creditbot:refresh:ds", "creditbot:snooze:ds:24h"]  # Refresh stays narrowed to ds
    assert follow.json["allowed_mentions"]["parse"] == []


async def test_public_credits_is_not_ephemeral(bot: dict[str, Any]) -> None:
    fake: FakeDiscord = bot["discord"]
    fake.send_interaction(command_interaction(fake, "credits", {"public": True}))
    (callback,) = await fake.wait_for_async("POST", "/interactions/*/callback")
    assert not callback.json.get("data", {}).get("flags", 0) & 64


async def test_buttons_work_from_their_custom_ids(bot: dict[str, Any]) -> None:
    fake: FakeDiscord = bot["discord"]
    fake.send_interaction(component_interaction(fake, "creditbot:refresh"))
    (follow,) = await fake.wait_for_async("POST", "/webhooks/*")
    assert follow.json["embeds"][0]["title"] == "ds (deepseek)"
    fake.send_interaction(component_interaction(fake, "creditbot:snooze:ds:24h", permissions=MANAGE_GUILD))
    follows = await fake.wait_for_async("POST", "/webhooks/*", count=2)
    assert "snoozed until" in follows[1].json["embeds"][0]["description"]
    assert await bot["store"].settings.snoozed_until(bot["runtime"].clock())


async def test_settings_commands_are_checked_again_in_code(bot: dict[str, Any]) -> None:
    fake: FakeDiscord = bot["discord"]
    fake.send_interaction(
        command_interaction(fake, "creditbot snooze", {"account": "ds", "duration": "24h"}, permissions="0")
    )
    (follow,) = await fake.wait_for_async("POST", "/webhooks/*")
    assert "only admins" in follow.json["embeds"][0]["description"]
    assert await bot["store"].settings.snoozed_until(bot["runtime"].clock()) == {}
    audit = await bot["store"].settings.audit_entries()
    assert audit[0].detail.startswith("refused")


async def test_viewer_roles_refuse_others(bot: dict[str, Any]) -> None:
    bot["adapter"].settings.discord_viewer_roles.append(555)
    fake: FakeDiscord = bot["discord"]
    fake.send_interaction(command_interaction(fake, "credits", {"public": True}, roles=()))
    (refusal,) = await fake.wait_for_async("POST", "/interactions/*/callback")
    assert refusal.json["type"] == 4  # answered at once, not deferred
    assert refusal.json["data"]["flags"] & 64  # privately, even though public was asked
    assert "not allowed to see LLM balances" in refusal.json["data"]["content"]
    fake.send_interaction(command_interaction(fake, "credits", roles=("555",)))
    (follow,) = await fake.wait_for_async("POST", "/webhooks/*")
    assert follow.json["embeds"][0]["title"] == "ds (deepseek)"


async def test_scheduled_summary_posts_embeds_with_the_chart_attached(bot: dict[str, Any]) -> None:
    fake: FakeDiscord = bot["discord"]
    assert await bot["runtime"].send_summary(bot["channel"])
    (post,) = fake.recorded("POST", f"/channels/{fake.channel_id}/messages")
    payload = post.json
    assert payload["embeds"][0]["title"] == "ds (deepseek)"
    assert payload["embeds"][-1]["image"]["url"].startswith("attachment://credits-")
    (attachment,) = post.files
    assert attachment.filename.endswith(".png")
    assert attachment.data.startswith(b"\x89PNG")


async def test_alert_mentions_are_explicit(bot: dict[str, Any]) -> None:
    fake: FakeDiscord = bot["discord"]
    await bot["runtime"].poll()
    posts = fake.recorded("POST", f"/channels/{fake.channel_id}/messages")
    (alert,) = [p for p in posts if "below" in (p.json.get("content") or "")]
    assert alert.json["content"].startswith("<@&555>")
    allowed = alert.json["allowed_mentions"]
    assert [str(r) for r in allowed.get("roles", [])] == ["555"]
    assert "everyone" not in allowed.get("parse", [])
    assert allowed.get("users", []) == []


async def test_429_is_retried_and_the_message_arrives_once(bot: dict[str, Any]) -> None:
    fake: FakeDiscord = bot["discord"]
    fake.rate_limit_next("POST", f"/channels/{fake.channel_id}/messages", retry_after=0.3)
    await bot["adapter"].send(str(fake.channel_id), Message("hello", "hi", text="one message"))
    calls = fake.recorded("POST", f"/channels/{fake.channel_id}/messages")
    assert [c.status for c in calls] == [429, 200]


def test_embed_limits_split_large_messages() -> None:
    sections = tuple(
        Section(
            f"acct-{i}",
            "openai",
            "warning",
            "$1.00 left",
            tuple(Field(f"F{j}", "x" * 1500) for j in range(30)),
            note="n" * 5000,
        )
        for i in range(30)
    )
    pages = render(Message("LLM credits", "s", sections=sections, text="t" * 9000, footer="as of now"))
    for page in pages:
        assert len(page["embeds"]) <= MAX_EMBEDS
        total = 0
        for embed in page["embeds"]:
            assert len(embed.get("title", "")) <= 256
            assert len(embed.get("description", "")) <= 4096
            assert len(embed.get("fields", [])) <= 25
            assert all(len(f["value"]) <= 1024 for f in embed.get("fields", []))
            total += len(json.dumps(embed))  # a generous upper bound of the counted characters
        assert (
            sum(
                len(e.get("title", ""))
                + len(e.get("description", ""))
                + len(e.get("footer", {}).get("text", ""))
                + sum(len(f["name"]) + len(f["value"]) for f in e.get("fields", []))
                for e in page["embeds"]
            )
            <= MAX_TOTAL
        )
    titles = [e["title"] for p in pages for e in p["embeds"] if e.get("title", "").startswith("acct-")]
    assert len(titles) == 30


def test_mentions_in_data_never_ping() -> None:
    message = Message(
        "t", "s", sections=(Section("ds", "deepseek", "error", "no data", note="@everyone <@&1> **x**"),)
    )
    embed = render(message)[0]["embeds"][0]
    assert "@everyone" not in embed["description"]
    assert "<@&1>" not in embed["description"]
    assert allowed_mentions_for(("@here", "<@&5>", "<@7>")) == {"everyone": True, "roles": ["5"], "users": ["7"]}


def test_invite_url_has_exactly_the_needed_scopes_and_permissions() -> None:
    assert application_id_from_token("MjIy.abc.def") == "222"
    assert invite_url(222) == (
        "https://discord.com/oauth2/authorize?client_id=222&scope=bot+applications.commands&permissions=52224"
    )


async def test_autocomplete_only_for_viewers(bot: dict[str, Any]) -> None:
    from tests.fake_discord import autocomplete_interaction

    bot["adapter"].settings.discord_viewer_roles.append(555)
    fake: FakeDiscord = bot["discord"]
    fake.send_interaction(autocomplete_interaction(fake, "credits", {"account": "d"}, focused="account", roles=()))
    (answer,) = await fake.wait_for_async("POST", "/interactions/*/callback")
    assert answer.json["data"]["choices"] == []
    fake.send_interaction(
        autocomplete_interaction(fake, "credits", {"account": "d"}, focused="account", roles=("555",))
    )
    answers = await fake.wait_for_async("POST", "/interactions/*/callback", count=2)
    assert answers[1].json["data"]["choices"] == [{"name": "ds", "value": "ds"}]


async def test_global_commands_are_synced_once_and_again_only_when_changed(
    tmp_path: Path, fake: FakeProviderServer, discord_fake: FakeDiscord
) -> None:
    settings = make_settings(
        tmp_path,
        DISCORD_TOKEN=TOKEN,
        DISCORD_API_URL=discord_fake.rest_url,
        DISCORD_GATEWAY_URL=discord_fake.gateway_url,
    )
    config = AppConfig(settings, (make_account("ds", "deepseek", fake.base_url("deepseek")),), "test")
    store = await Store.open(settings.database_url)
    async with httpx.AsyncClient() as http:
        for _ in range(2):  # two starts of the bot on the same database
            adapter = DiscordAdapter(settings, guild_ready_timeout=0.1)
            runtime = make_runtime(config, store, http, [adapter])
            await adapter.start(runtime.handler)
            await adapter.stop()
    await store.close()
    syncs = discord_fake.recorded("PUT", f"/applications/{discord_fake.application_id}/commands")
    assert len(syncs) == 1
    assert {c["name"] for c in discord_fake.global_commands} == {"credits", "creditbot"}
