"""The loopback fake Discord works with the real discord.py client (login, gateway, commands, REST)."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import discord
import pytest
from discord import app_commands

from tests.fake_discord import (
    FakeDiscord,
    autocomplete_interaction,
    command_interaction,
    component_interaction,
)


@pytest.fixture
def fake() -> Iterator[FakeDiscord]:
    before = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    with FakeDiscord(token="fake-token") as server, server.patch():
        yield server
    assert before == (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)


@dataclass
class Bot:
    client: discord.Client
    tree: app_commands.CommandTree[discord.Client]
    task: asyncio.Task[None]
    seen: list[str]


@pytest.fixture
async def bot(fake: FakeDiscord) -> AsyncIterator[Bot]:
    client = discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.1)
    tree = app_commands.CommandTree(client)
    seen: list[str] = []

    @tree.command(name="ping", description="Answers pong")
    async def ping(interaction: discord.Interaction) -> None:
        seen.append(f"perms={interaction.permissions.value} guild={interaction.guild_id}")
        await interaction.response.defer(ephemeral=True, thinking=True)
        await interaction.followup.send("pong", ephemeral=True)

    @tree.command(name="pick", description="Autocompletes")
    async def pick(interaction: discord.Interaction, account: str) -> None:
        await interaction.response.send_message(f"picked {account}")

    @pick.autocomplete("account")
    async def pick_account(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=n, value=n) for n in ("openai", "anthropic") if n.startswith(current)]

    class Refresh(discord.ui.View):
        def __init__(self) -> None:
            super().__init__(timeout=None)

        @discord.ui.button(label="Refresh", custom_id="test:refresh")
        async def refresh(self, interaction: discord.Interaction, button: discord.ui.Button[Refresh]) -> None:
            await interaction.response.edit_message(content="refreshed")

    client.add_view(Refresh())
    task = asyncio.create_task(client.start("fake-token"))
    try:
        await asyncio.wait_for(client.wait_until_ready(), 10)
        yield Bot(client, tree, task, seen)
    finally:
        await client.close()
        await asyncio.wait_for(task, 10)


async def test_login_identify_and_guild_cache(fake: FakeDiscord, bot: Bot) -> None:
    assert fake.identified.is_set()
    assert fake.ready_sent.is_set()
    assert fake.identify_payloads[0]["token"] == "fake-token"
    assert fake.identify_payloads[0]["intents"] == discord.Intents.default().value
    assert [r.path for r in fake.recorded("GET")][:2] == ["/users/@me", "/oauth2/applications/@me"]
    assert fake.recorded("GET", "/users/@me")[0].headers["Authorization"] == "Bot fake-token"
    client = bot.client
    assert client.user is not None
    assert client.user.id == fake.bot_user_id
    assert client.application_id == fake.application_id
    guild = client.get_guild(fake.guild_id)
    assert guild is not None
    assert not guild.unavailable
    assert guild.get_role(fake.viewer_role_id).name == "viewers"  # type: ignore[union-attr]
    assert guild.default_role.id == fake.guild_id
    channel = client.get_channel(fake.channel_id)
    assert isinstance(channel, discord.TextChannel)
    assert channel.guild == guild
    fetched = await client.fetch_channel(fake.channel_id)
    assert isinstance(fetched, discord.TextChannel)
    with pytest.raises(discord.NotFound):
        await client.fetch_channel(12345)


async def test_sync_and_slash_command_defer_followup(fake: FakeDiscord, bot: Bot) -> None:
    synced = await bot.tree.sync()
    assert {c.name for c in synced} == {"ping", "pick"}
    assert {c["name"] for c in fake.commands} == {"ping", "pick"}
    assert all(c["id"] and c["application_id"] == str(fake.application_id) for c in fake.commands)

    payload = fake.send_interaction(command_interaction(fake, "ping", permissions="2048"))
    iid, token = payload["id"], payload["token"]
    callback = (await fake.wait_for_async("POST", f"/interactions/{iid}/*/callback"))[0]
    assert callback.json == {"type": 5, "data": {"flags": 64}}
    assert callback.query.get("with_response") == "1"
    followup = (await fake.wait_for_async("POST", f"/webhooks/{fake.application_id}/{token}"))[0]
    assert followup.json["content"] == "pong"
    assert followup.json["flags"] == 64
    assert followup.status == 200
    assert bot.seen == [f"perms=2048 guild={fake.guild_id}"]
    assert fake.acknowledged[int(iid)] == 5
    assert len(fake.recorded("POST", f"/interactions/{iid}/*")) == 1
    # The first followup after a thinking defer became the deferred message itself.
    message = next(m for m in fake.messages.values() if m["content"] == "pong")
    assert message["flags"] == 64
    assert message["type"] == 20


async def test_autocomplete_and_component(fake: FakeDiscord, bot: Bot) -> None:
    fake.send_interaction(autocomplete_interaction(fake, "pick", {"account": "open"}, focused="account"))
    answer = (await fake.wait_for_async("POST", "/interactions/*/callback"))[0]
    assert answer.json == {"type": 8, "data": {"choices": [{"name": "openai", "value": "openai"}]}}

    press = fake.send_interaction(component_interaction(fake, "test:refresh"))
    update = (await fake.wait_for_async("POST", f"/interactions/{press['id']}/*/callback"))[0]
    assert update.json["type"] == 7
    assert fake.messages[int(press["message"]["id"])]["content"] == "refreshed"


async def test_channel_send_with_file_and_embed(fake: FakeDiscord, bot: Bot) -> None:
    channel = bot.client.get_channel(fake.channel_id)
    assert isinstance(channel, discord.TextChannel)
    embed = discord.Embed(title="Balances", description="all good")
    sent = await channel.send(file=discord.File(io.BytesIO(b"png-bytes"), "c.png"), embed=embed)
    request = fake.recorded("POST", f"/channels/{fake.channel_id}/messages")[0]
    assert request.json["embeds"][0]["title"] == "Balances"
    assert request.json["attachments"] == [{"id": 0, "filename": "c.png"}]
    assert [(f.field, f.filename, f.size, f.data) for f in request.files] == [
        ("files[0]", "c.png", 9, b"png-bytes")
    ]
    assert sent.embeds[0].title == "Balances"
    assert sent.attachments[0].filename == "c.png"
    assert sent.attachments[0].size == 9
    assert await sent.attachments[0].read() == b"png-bytes"


async def test_rate_limited_send_is_retried(fake: FakeDiscord, bot: Bot) -> None:
    channel = bot.client.get_channel(fake.channel_id)
    assert isinstance(channel, discord.TextChannel)
    fake.rate_limit_next("POST", "/channels/*/messages", retry_after=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = await channel.send("hello")
    assert loop.time() - started >= 0.3
    assert sent.content == "hello"
    attempts = fake.recorded("POST", f"/channels/{fake.channel_id}/messages")
    assert [r.status for r in attempts] == [429, 200]


async def test_scripted_failure_raises(fake: FakeDiscord, bot: Bot) -> None:
    channel = bot.client.get_channel(fake.channel_id)
    assert isinstance(channel, discord.TextChannel)
    fake.fail_next("POST", "/channels/*/messages", status=403, body={"message": "Missing Access", "code": 50001})
    with pytest.raises(discord.Forbidden) as caught:
        await channel.send("nope")
    assert caught.value.code == 50001
    assert (await channel.send("yes")).content == "yes"


async def test_resume_after_reconnect_request(fake: FakeDiscord, bot: Bot) -> None:
    resumed = asyncio.Event()
    bot.client.event(_setter("on_resumed", resumed))
    fake.request_reconnect()
    await asyncio.wait_for(resumed.wait(), 5)
    assert fake.resumes == 1
    assert fake.identify_payloads
    assert len(fake.identify_payloads) == 1
    resume = next(f for f in fake.gateway_received if f.get("op") == 6)
    assert resume["d"]["session_id"] == "fake-session-1"
    # Dispatch still works on the resumed connection.
    fake.send_interaction(command_interaction(fake, "ping"))
    await fake.wait_for_async("POST", "/webhooks/*", count=1)


def _setter(name: str, event: asyncio.Event) -> Callable[[], Coroutine[Any, Any, None]]:
    async def handler() -> None:
        event.set()

    handler.__name__ = name
    return handler


def test_rest_without_discord_py() -> None:
    """Plain HTTP checks: exact content type, 404 shape, 429 headers, wait_for refuses to block a loop."""
    import urllib.error
    import urllib.request

    with FakeDiscord() as fake:
        with urllib.request.urlopen(f"{fake.rest_url}/users/@me") as response:
            assert response.headers["Content-Type"] == "application/json"
            assert json.load(response)["bot"] is True
        fake.rate_limit_next("GET", "/gateway", retry_after=0.25)
        with pytest.raises(urllib.error.HTTPError) as limited:
            urllib.request.urlopen(f"{fake.rest_url}/gateway")
        assert limited.value.code == 429
        assert limited.value.headers["Via"]
        assert json.load(limited.value) == {
            "message": "You are being rate limited.",
            "retry_after": 0.25,
            "global": False,
        }
        limited.value.close()
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{fake.rest_url}/nothing/here")
        assert json.load(missing.value) == {"message": "Unknown", "code": 0}
        missing.value.close()
        assert [r.status for r in fake.wait_for("GET", "*", count=3)] == [200, 429, 404]

        def callback() -> urllib.request.Request:
            return urllib.request.Request(
                f"{fake.rest_url}/interactions/1/tok/callback",
                data=b'{"type": 6}',
                headers={"Content-Type": "application/json"},
                method="POST",
            )

        with urllib.request.urlopen(callback()) as response:
            assert response.status == 204  # no ?with_response: no body
        with pytest.raises(urllib.error.HTTPError) as twice:
            urllib.request.urlopen(callback())
        assert json.load(twice.value)["code"] == 40060  # already acknowledged
        twice.value.close()

        async def misuse() -> None:
            fake.wait_for("GET", "*")

        with pytest.raises(RuntimeError, match="wait_for_async"):
            asyncio.run(misuse())
