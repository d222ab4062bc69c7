"""Discord adapter (discord.py): `/credits`, the `/creditbot` group, persistent buttons, and delivery."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import logging
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import discord
import yarl
from discord import app_commands

from adapters.common import ChatAdapter, Step
from adapters.discord.buttons import RefreshButton, SnoozeButton, actions_view
from adapters.discord.render import allowed_mentions_for, render
from bot.adapter import AdapterUnavailable, DeliveryError
from bot.commands import CommandError, Verb
from bot.handler import Requester
from bot.messages import Action, Message

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.handler import CommandHandler, Reply

log = logging.getLogger(__name__)

# View Channel, Send Messages, Embed Links, Attach Files: all the bot needs to post summaries and alerts.
INVITE_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 14) | (1 << 15)
MANAGE_GUILD = discord.Permissions(manage_guild=True)
START_TIMEOUT = 30.0
SYNC_KEY = "discord.commands.sha256"  # hash of the commands last synced globally
REFUSED_VIEW = "Sorry, you are not allowed to see LLM balances here. Ask a server admin to give you a viewer role."


def invite_url(application_id: int | str) -> str:
    """The OAuth2 URL that adds the bot with exactly the scopes and permissions it needs."""
    return (
        f"https://discord.com/oauth2/authorize?client_id={application_id}"
        f"&scope=bot+applications.commands&permissions={INVITE_PERMISSIONS}"
    )


def application_id_from_token(token: str) -> str | None:
    """A bot token starts with the bot's user id in base64, which is its application id."""
    head = token.split(".", 1)[0]
    try:
        decoded = base64.b64decode(head + "=" * (-len(head) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return decoded if decoded.isdigit() else None


ONE_WORD = "Each option takes one word, without spaces. Nothing was changed; try again."


def check_discord(settings: Settings) -> list[str]:
    """What `creditbot doctor` says about Discord: where to invite the bot ("!" marks a problem)."""
    assert settings.discord_token is not None
    app_id = application_id_from_token(settings.discord_token.get_secret_value())
    if app_id is None:
        return ["! DISCORD_TOKEN does not look like a bot token (Developer Portal > Bot > Token)"]
    return [f"invite the bot with {invite_url(app_id)}"]


class DiscordAdapter(ChatAdapter):
    """The `discord` platform: slash commands over the gateway, messages over REST."""

    platform = "discord"
    leader_only = True  # one gateway session per shard: only the leader replica connects

    def __init__(self, settings: Settings, *, guild_ready_timeout: float = 2.0) -> None:
        assert settings.discord_token is not None
        super().__init__()
        self.settings = settings
        # Only GUILDS: the bot needs channels and roles, never message content or members.
        self.client = discord.Client(
            intents=discord.Intents(guilds=True),
            max_ratelimit_timeout=30.0,
            guild_ready_timeout=guild_ready_timeout,
        )
        self.client.creditbot_adapter = self  # type: ignore[attr-defined]
        self.tree = app_commands.CommandTree(self.client)
        self.client.setup_hook = self._setup_hook  # type: ignore[method-assign]
        self._task: asyncio.Task[None] | None = None
        self._register()

    # Lifecycle

    async def start(self, handler: CommandHandler) -> None:
        """Log in and connect to the gateway; returns once ready (or logs why not)."""
        self.handler = handler
        discord.http.Route.BASE = self.settings.discord_api_url.rstrip("/")
        if self.settings.discord_gateway_url:
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.settings.discord_gateway_url)
        assert self.settings.discord_token is not None
        self._task = asyncio.create_task(self.client.start(self.settings.discord_token.get_secret_value()))
        ready = asyncio.create_task(self.client.wait_until_ready())
        done, _ = await asyncio.wait(
            {self._task, ready}, timeout=START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        if self._task in done:
            ready.cancel()
            error = self._task.exception()
            reason = "the token was refused" if isinstance(error, discord.LoginFailure) else type(error).__name__
            raise AdapterUnavailable(f"Discord could not start: {reason}; other platforms keep running")
        if ready not in done:
            ready.cancel()
            raise AdapterUnavailable(
                f"Discord did not become ready within {START_TIMEOUT:.0f} s; it keeps trying in the background"
            )
        app_id = self.client.application_id
        log.info("Discord ready as %s; invite: %s", self.client.user, invite_url(app_id) if app_id else "?")

    async def stop(self) -> None:
        """Close the gateway connection."""
        await self.client.close()
        if self._task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):  # closing: the error no longer matters
                await asyncio.wait_for(self._task, 10)

    def connected(self) -> bool:
        """True while the gateway session is ready."""
        return self.client.is_ready() and not self.client.is_closed()

    async def _setup_hook(self) -> None:
        self.client.add_dynamic_items(RefreshButton, SnoozeButton)
        guilds = self.settings.discord_guild_ids
        for guild_id in guilds:
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            try:
                await self.tree.sync(guild=guild)
            except discord.HTTPException as exc:  # one unusable guild must not keep the bot out of the others
                log.error(
                    "could not sync commands to guild %s (%s); is the bot in that server?", guild_id, exc.status
                )
        if self.handler is None:
            return
        if guilds:
            await self._drop_global_commands()
        else:
            await self._sync_globally_once()

    async def _drop_global_commands(self) -> None:
        # Moving from global to guild commands: remove the global copies, or members see each command twice.
        assert self.handler is not None
        if not await self.handler.kv.get_value(SYNC_KEY):
            return
        self.tree.clear_commands(guild=None)
        try:
            await self.tree.sync()
        except discord.HTTPException as exc:
            log.error("could not remove the global commands (%s)", exc.status)
            return
        await self.handler.kv.set_value(SYNC_KEY, "")

    async def _sync_globally_once(self) -> None:
        # Global syncs are slow to propagate and rate limited: sync only when the commands changed.
        import hashlib
        import json

        assert self.handler is not None
        payload = json.dumps([c.to_dict(self.tree) for c in self.tree.get_commands()], sort_keys=True)
        digest = hashlib.sha256(payload.encode()).hexdigest()
        key = SYNC_KEY
        if await self.handler.kv.get_value(key) == digest:
            log.info("Discord commands unchanged; not syncing")
            return
        await self.tree.sync()
        await self.handler.kv.set_value(key, digest)
        log.info("Discord commands synced globally")

    # Commands

    def _register(self) -> None:
        tree = self.tree

        async def account_names(
            interaction: discord.Interaction[Any], current: str
        ) -> list[app_commands.Choice[str]]:
            handler = self.serving(self._allowed(interaction))
            if handler is None:
                return []
            names = handler.account_names()
            return [app_commands.Choice(name=n, value=n) for n in names if current.lower() in n.lower()][:25]

        @tree.command(name="credits", description="LLM credits, spend and runway")
        @app_commands.describe(account="Only this account", public="Post in the channel instead of privately")
        @app_commands.autocomplete(account=account_names)
        async def credits(
            interaction: discord.Interaction[Any], account: str | None = None, public: bool = False
        ) -> None:
            await self.run_command(
                interaction, Verb.SHARE if public else Verb.CREDITS, ephemeral=not public, account=account
            )

        group = app_commands.Group(
            name="creditbot",
            description="creditbot settings and tools",
            guild_only=True,
            default_permissions=MANAGE_GUILD,
        )

        @group.command(name="help", description="What creditbot can do")
        async def help_(interaction: discord.Interaction[Any]) -> None:
            await self.run_command(interaction, Verb.HELP)

        @group.command(name="alerts", description="Open alerts and snoozes")
        async def alerts(interaction: discord.Interaction[Any]) -> None:
            await self.run_command(interaction, Verb.ALERTS)

        @group.command(name="chart", description="Balances with a chart")
        @app_commands.autocomplete(account=account_names)
        async def chart(interaction: discord.Interaction[Any], account: str | None = None) -> None:
            await self.run_command(interaction, Verb.CHART, account=account)

        @group.command(name="snooze", description="Silence an account's alerts for a while (30m, 24h, 7d)")
        @app_commands.autocomplete(account=account_names)
        async def snooze(interaction: discord.Interaction[Any], account: str, duration: str = "24h") -> None:
            await self.run_command(interaction, Verb.SNOOZE, options=(account, duration))

        @group.command(name="subscribe", description="Daily summary and alerts in this channel")
        async def subscribe(
            interaction: discord.Interaction[Any], time: str | None = None, timezone: str | None = None
        ) -> None:
            await self.run_command(interaction, Verb.SUBSCRIBE, options=(time, timezone))

        @group.command(name="unsubscribe", description="Stop summaries and alerts in this channel")
        async def unsubscribe(interaction: discord.Interaction[Any]) -> None:
            await self.run_command(interaction, Verb.UNSUBSCRIBE)

        @group.command(name="threshold", description="Set an account's balance thresholds")
        @app_commands.autocomplete(account=account_names)
        async def threshold(
            interaction: discord.Interaction[Any], account: str, warn: str, critical: str | None = None
        ) -> None:
            await self.run_command(interaction, Verb.THRESHOLD, options=(account, warn, critical))

        @group.command(name="topup", description="Record credit bought for a spend-only account")
        @app_commands.autocomplete(account=account_names)
        async def topup(interaction: discord.Interaction[Any], account: str, amount: str) -> None:
            await self.run_command(interaction, Verb.TOPUP, options=(account, amount))

        tree.add_command(group)

    def _allowed(self, interaction: discord.Interaction[Any]) -> bool:
        guilds = self.settings.discord_guild_ids
        if guilds and (interaction.guild_id is None or interaction.guild_id not in guilds):
            return False
        roles = set(self.settings.discord_viewer_roles)
        if not roles:
            return True
        member_roles = {r.id for r in getattr(interaction.user, "roles", [])}
        return bool(roles & member_roles)

    def _requester(self, interaction: discord.Interaction[Any]) -> Requester:
        # Discord lets server admins change who sees a command, so settings are checked again here.
        permissions = interaction.permissions
        admin = bool(interaction.guild_id) and (permissions.manage_guild or permissions.administrator)
        channel = str(interaction.channel_id) if interaction.channel_id else None
        return Requester("discord", str(interaction.user.id), channel, is_admin=admin, name=interaction.user.name)

    async def run_command(
        self,
        interaction: discord.Interaction[Any],
        verb: Verb,
        *,
        ephemeral: bool = True,
        account: str | None = None,
        options: Sequence[str | None] = (),
    ) -> None:
        """Defer at once (Discord's 3 seconds), run the core command, answer with follow-ups.

        `options` are the command's arguments, one word each; a value with spaces is refused rather than split,
        so it can never become several arguments.
        """
        handler = self.serving(self._allowed(interaction))
        if handler is None:
            # Refused before deferring: a public defer would make the refusal public too.
            await interaction.response.send_message(REFUSED_VIEW, ephemeral=True)
            return
        if any(value is not None and len(value.split()) > 1 for value in options):
            await interaction.response.send_message(ONE_WORD, ephemeral=True)
            return
        await interaction.response.defer(ephemeral=ephemeral, thinking=True)
        words = [value.strip() for value in options if value is not None and value.strip()]
        try:
            command = handler.typed(verb, words, account=account)
        except CommandError as exc:
            reply = handler.usage(exc)
        else:
            reply = await handler.run(command, self._requester(interaction))
        await self._follow_up(interaction, reply, ephemeral=ephemeral and not reply.public)

    async def on_action(self, interaction: discord.Interaction[Any], action: Action) -> None:
        """A button press, answered privately."""
        handler = self.serving(self._allowed(interaction))
        if handler is None:
            await interaction.response.send_message(REFUSED_VIEW, ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        reply = await handler.handle_action(action, self._requester(interaction))
        await self._follow_up(interaction, reply, ephemeral=True)

    async def _follow_up(self, interaction: discord.Interaction[Any], reply: Reply, *, ephemeral: bool) -> None:
        pages = _pages(reply.message, discord.AllowedMentions.none())
        for content, kwargs in pages:
            await interaction.followup.send(content or discord.utils.MISSING, ephemeral=ephemeral, **kwargs)

    # Delivery

    async def send(self, channel_id: str, message: Message, *, key: str | None = None) -> None:
        """Post to a channel with explicit allowed mentions and the chart attached; errors become DeliveryError."""
        if not self.connected():
            raise DeliveryError("Discord is not connected")
        try:
            channel = self.client.get_channel(int(channel_id)) or await self.client.fetch_channel(int(channel_id))
            if not isinstance(channel, discord.abc.Messageable):
                raise DeliveryError(f"Discord channel {channel_id} cannot receive messages", permanent=True)
            wanted = allowed_mentions_for(message.mentions)
            mentions = discord.AllowedMentions(
                everyone=wanted["everyone"],
                roles=[discord.Object(id=int(r)) for r in wanted["roles"]],
                users=[discord.Object(id=int(u)) for u in wanted["users"]],
                replied_user=False,
            )
            steps: list[Step] = [
                (f"page{index}", partial(channel.send, content or None, **kwargs))
                for index, (content, kwargs) in enumerate(_pages(message, mentions))
            ]
            await self.progress.run(key, steps)
        except (discord.NotFound, discord.Forbidden) as exc:
            raise DeliveryError(f"Discord refused: {exc.text or exc.status}", permanent=True) from None
        except discord.RateLimited as exc:
            raise DeliveryError("Discord rate limited", retry_after=exc.retry_after) from None
        except (discord.HTTPException, discord.GatewayNotFound, OSError, ValueError) as exc:
            raise DeliveryError(f"Discord failed: {type(exc).__name__}") from None


def _pages(message: Message, mentions: discord.AllowedMentions) -> list[tuple[str, dict[str, Any]]]:
    """The message as Discord messages (content and keyword arguments); the last carries chart and buttons."""
    pages = render(message, chart_name=message.chart_name if message.chart else None)
    result = []
    for index, page in enumerate(pages):
        kwargs: dict[str, Any] = {
            "embeds": [discord.Embed.from_dict(e) for e in page["embeds"]],
            "allowed_mentions": mentions,
        }
        if index == len(pages) - 1:
            if message.chart:
                kwargs["file"] = discord.File(io.BytesIO(message.chart), filename=message.chart_name)
            view = actions_view(message)
            if view is not None:
                kwargs["view"] = view
        result.append((page["content"], kwargs))
    return result
