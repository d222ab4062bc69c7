"""Discord adapter (discord.py): `/credits`, the `/creditbot` group, persistent buttons, and delivery."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import discord
import yarl
from discord import app_commands

from adapters.common import ChatAdapter, backoff
from adapters.discord.buttons import RefreshButton, SnoozeButton
from adapters.discord.delivery import pages, post
from adapters.discord.rest import (
    INVITE_PERMISSIONS,
    application_id_from_token,
    check_discord,
    invite_url,
    point_at,
)
from bot.adapter import AdapterUnavailable, DeliveryError
from bot.commands import MAX_BREAKDOWN_DAYS, MODELS_WORD, CommandError, Verb
from bot.handler import Requester
from bot.messages import Action, Message

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.handler import CommandHandler, Reply

__all__ = ["INVITE_PERMISSIONS", "DiscordAdapter", "application_id_from_token", "check_discord", "invite_url"]

log = logging.getLogger(__name__)

MANAGE_GUILD = discord.Permissions(manage_guild=True)
START_TIMEOUT = 30.0
RECONNECT_DELAYS = (2.0, 5.0, 10.0, 30.0, 60.0)  # between attempts to log in and connect, then every minute
SYNC_KEY = "discord.commands.sha256"  # hash of the commands last synced globally
REFUSED_VIEW = "Sorry, you are not allowed to see LLM balances here. Ask a server admin to give you a viewer role."


class _ReconnectOnOneLine(logging.Filter):
    """discord.py logs each failed reconnect with a traceback; the line alone says what happens."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("Attempting a reconnect"):
            record.exc_info, record.exc_text = None, None
        return True


logging.getLogger("discord.client").addFilter(_ReconnectOnOneLine())


ONE_WORD = "Each option takes one word, without spaces. Nothing was changed; try again."


class DiscordAdapter(ChatAdapter):
    """The `discord` platform: slash commands over the gateway, messages over REST."""

    platform = "discord"
    leader_only = True  # one gateway session per shard: only the leader replica connects

    def __init__(self, settings: Settings, *, guild_ready_timeout: float = 2.0) -> None:
        assert settings.discord_token is not None
        super().__init__()
        self.settings = settings
        # The bot never joins voice: discord.py's warnings about missing voice libraries would only alarm.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
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
        self._trouble = asyncio.Event()  # set when an attempt to log in or connect failed
        self._stopping = False
        self._hooked = False
        self.reconnect_delays: Sequence[float] = RECONNECT_DELAYS
        self._register()

    # Lifecycle

    async def start(self, handler: CommandHandler) -> None:
        """Log in and connect to the gateway; returns once ready, or once the first attempt failed (later
        attempts go on in the background with back-off); AdapterUnavailable when the token is refused."""
        self.handler = handler
        point_at(self.settings)
        if self.settings.discord_gateway_url:
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.settings.discord_gateway_url)
        self._task = asyncio.create_task(self._keep_connected())
        waits: set[asyncio.Future[Any]] = {self._task, asyncio.ensure_future(self.client.wait_until_ready())}
        waits.add(asyncio.ensure_future(self._trouble.wait()))
        done, pending = await asyncio.wait(waits, timeout=START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        for waiting in pending - {self._task}:
            waiting.cancel()
        if self._task in done:
            error = self._task.exception()
            reason = "the token was refused" if isinstance(error, discord.LoginFailure) else type(error).__name__
            raise AdapterUnavailable(f"Discord could not start: {reason}; other platforms keep running")
        if not self.connected():
            raise AdapterUnavailable("Discord is not connected yet; it keeps trying in the background")
        app_id = self.client.application_id
        log.info("Discord ready as %s; invite: %s", self.client.user, invite_url(app_id) if app_id else "?")

    async def _keep_connected(self) -> None:
        # discord.py reconnects a session that was up, but gives up when the first login or connection
        # fails (an unreachable API or gateway at start): then the whole start is tried again, with back-off.
        assert self.settings.discord_token is not None
        token = self.settings.discord_token.get_secret_value()
        for attempt in itertools.count():
            try:
                await self.client.start(token)
                return  # closed by `stop`
            except (discord.LoginFailure, discord.PrivilegedIntentsRequired) as exc:
                # Retrying cannot fix the token or the intents.
                if not self._trouble.is_set():
                    raise  # `start` is still waiting and reports it
                log.error("Discord refused to connect (%s); Discord stays off until a restart", type(exc).__name__)
                return
            except Exception as exc:
                if self._stopping:
                    return
                delay = backoff(attempt, self.reconnect_delays)
                log.warning("Discord is unreachable (%s); trying again in %.1f s", _cause(exc), delay)
                self._trouble.set()
                with contextlib.suppress(Exception):  # a half-open client: closing it may fail too
                    await self.client.close()
                self.client.clear()
                # Closing closed the connector too; the next login must build a new one, not reuse it.
                self.client.http.connector = discord.utils.MISSING
                await asyncio.sleep(delay)

    async def stop(self) -> None:
        """Close the gateway connection and stop reconnecting."""
        self._stopping = True
        await self.client.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):  # closing: the error no longer matters
                await asyncio.wait_for(self._task, 10)

    def connected(self) -> bool:
        """True while the gateway session is ready."""
        return self.client.is_ready() and not self.client.is_closed()

    async def _setup_hook(self) -> None:
        if self._hooked:  # a new login after a failed start: the buttons and commands are already in place
            return
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
        if self.handler is not None:
            if guilds:
                await self._drop_global_commands()
            else:
                await self._sync_globally_once()
        self._hooked = True

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

        @group.command(name="chart", description="Balances with a chart, or spend stacked by model")
        @app_commands.describe(models="Spend of the last 30 days stacked by the top 5 models")
        @app_commands.autocomplete(account=account_names)
        async def chart(
            interaction: discord.Interaction[Any], account: str | None = None, models: bool = False
        ) -> None:
            await self.run_command(
                interaction, Verb.CHART, account=account, options=(MODELS_WORD if models else None,)
            )

        @group.command(name="breakdown", description="Where the money went: spend by model")
        @app_commands.describe(
            account="Only this account", days=f"The last N days, 1 to {MAX_BREAKDOWN_DAYS} (default 7)"
        )
        @app_commands.autocomplete(account=account_names)
        async def breakdown(
            interaction: discord.Interaction[Any], account: str | None = None, days: int | None = None
        ) -> None:
            # `days` goes through the core's parser as a word, so its range check and usage line are the same
            # as for a typed command (Discord's own bounds would be checked by the client only).
            options = (None if days is None else str(days),)
            await self.run_command(interaction, Verb.BREAKDOWN, account=account, options=options)

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
        for content, kwargs in pages(reply.message, discord.AllowedMentions.none()):
            await interaction.followup.send(content or discord.utils.MISSING, ephemeral=ephemeral, **kwargs)

    # Delivery

    async def send(self, channel_id: str, message: Message, *, key: str | None = None) -> None:
        """Post to a channel over REST with explicit allowed mentions and the chart attached; errors become
        DeliveryError."""
        # REST needs the login, not the gateway: a session that is reconnecting still delivers.
        if self.client.user is None or self.client.is_closed():
            raise DeliveryError("Discord is not connected")
        await post(self.client.http, channel_id, message, key=key, progress=self.progress)


def _cause(exc: BaseException) -> str:
    # discord.py 2.7 hides a failed first connection behind an AttributeError (it prepares to resume a
    # session that never existed); the failure itself is that error's context.
    while isinstance(exc, AttributeError) and exc.__context__ is not None:
        exc = exc.__context__
    return type(exc).__name__
