"""Slack adapter (slack-bolt): `/credits`, buttons, App Home, and delivery of summaries and alerts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from aiolimiter import AsyncLimiter
from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters.common import ChatAdapter, Step
from adapters.slack.checks import check_slack, signing_secret_problem
from adapters.slack.delivery import SlackDeliveryError, delivery_call
from adapters.slack.pacing import PacedWebClient, SlackPaused
from adapters.slack.render import escape, note_payload, parse_action_value, render, render_home
from adapters.slack.socket import RECONNECT_DELAYS, SlackUnreachable, keep_trying, open_socket, try_app_token
from bot.adapter import AdapterConfigError, AdapterUnavailable, Route
from bot.commands import CommandError, Verb
from bot.handler import Requester
from bot.messages import Action, Message

if TYPE_CHECKING:
    from aiohttp import ClientSession, web

    from bot.config import Settings
    from bot.handler import CommandHandler

__all__ = ["SlackAdapter", "check_slack", "signing_secret_problem"]

log = logging.getLogger(__name__)
# bolt warns that `token` is unused when a client is given too; the token is passed all the same so that bolt
# never reads SLACK_BOT_TOKEN from the environment, and the warning would only alarm the operator.
logging.getLogger("slack_bolt.AsyncApp").addFilter(
    lambda record: "token` will be unused" not in record.getMessage()
)

COMMAND = "/credits"
PER_CHANNEL_INTERVAL = 1.0  # chat.postMessage allows about one message per second per channel
ADMIN_CACHE_SECONDS = 300
# Commands that put balances in the channel itself: only in channels that viewers may use.
CHANNEL_VERBS = frozenset({Verb.SHARE, Verb.CHART, Verb.SUBSCRIBE})
CHART_HINT = "The chart could not be posted: invite creditbot to this channel (/invite @creditbot) to get charts."
REFUSED_VIEW = (
    "Sorry, you are not allowed to see LLM balances here. Ask a creditbot admin to add you or this channel."
)


class SlackAdapter(ChatAdapter):
    """The `slack` platform: Socket Mode when an app token is set, otherwise HTTP mode on `/slack/events`."""

    platform = "slack"

    def __init__(self, settings: Settings) -> None:
        assert settings.slack_bot_token is not None
        super().__init__()
        self.settings = settings
        self.socket_mode = settings.slack_app_token is not None
        token = settings.slack_bot_token.get_secret_value()
        self.client = PacedWebClient(
            calls_per_second=settings.slack_calls_per_second,
            token=token,
            base_url=settings.slack_api_url,
            # 429s are handled by the client (a pause for every call) and by `delivery_call` (retries).
            retry_handlers=[AsyncConnectionErrorRetryHandler()],
        )
        problem = signing_secret_problem(settings)
        if problem:
            raise AdapterConfigError(problem)
        # Socket Mode skips signature checks; the secret is then a random value nobody knows, never a default.
        secret = (
            settings.slack_signing_secret.get_secret_value()
            if settings.slack_signing_secret is not None
            else secrets.token_hex(32)
        )
        # Every value is passed explicitly, so bolt never falls back to reading the environment.
        self.app = AsyncApp(
            client=self.client,
            token=token,
            signing_secret=secret,
            request_verification_enabled=not self.socket_mode,
            ignoring_self_events_enabled=True,
            url_verification_enabled=True,
            ssl_check_enabled=True,
        )
        self.team_id: str | None = None
        self.bot_user_id: str | None = None
        self._socket: Any = None
        self._reconnecting: asyncio.Task[None] | None = None
        self.reconnect_delays: Sequence[float] = RECONNECT_DELAYS
        self._channel_limiters: dict[str, AsyncLimiter] = {}
        self._webhook_session: ClientSession | None = None  # for response_url answers, opened on first use
        self._channel_locks: dict[str, asyncio.Lock] = {}
        self._admin_cache: dict[str, tuple[bool, float]] = {}
        self._connected = False
        self._register()

    # Lifecycle

    async def start(self, handler: CommandHandler) -> None:
        """Learn which workspace the token belongs to, then connect (Socket Mode) or wait for HTTP requests.

        Socket Mode: an app token Slack refuses raises AdapterConfigError; an unreachable Slack is retried in
        the background with back-off, so start-up does not wait for it.
        """
        self.handler = handler
        if not self.socket_mode:
            try:
                await self._learn_workspace()
            except SlackUnreachable as exc:  # keep the rest of the bot running; requests learn it later
                raise AdapterUnavailable(f"Slack is unreachable ({exc}); delivery will be retried") from None
            self._connected = True
            log.info("Slack connected to team %s in HTTP mode", self.team_id)
            return
        try:
            await self._connect_socket()
        except SlackUnreachable as exc:
            log.warning("Slack is unreachable (%s); Socket Mode keeps trying with back-off", exc)
            self._reconnecting = asyncio.create_task(keep_trying(self._connect_socket, self.reconnect_delays))

    async def _learn_workspace(self) -> None:
        try:
            auth = await self.client.auth_test()
        except SlackApiError as exc:
            error = exc.response.get("error")
            raise AdapterUnavailable(
                f"Slack refused the bot token (auth.test: {error}); Slack is disabled"
            ) from None
        except Exception as exc:  # network trouble of any kind
            raise SlackUnreachable(type(exc).__name__) from None
        self.team_id = auth.get("team_id")
        self.bot_user_id = auth.get("user_id")

    async def _connect_socket(self) -> None:
        assert self.settings.slack_app_token is not None
        if self.team_id is None:
            await self._learn_workspace()
        app_token = self.settings.slack_app_token.get_secret_value()
        url = await try_app_token(self.client, app_token)
        self._socket = await open_socket(self.app, app_token, url)
        self._connected = True
        log.info("Slack connected to team %s in Socket Mode", self.team_id)

    async def _learn_team(self) -> bool:
        try:
            auth = await self.client.auth_test()
        except Exception as exc:  # still unreachable: refuse rather than accept any workspace
            log.warning("auth.test failed (%s); refusing Slack requests until it works", type(exc).__name__)
            return False
        self.team_id, self.bot_user_id = auth.get("team_id"), auth.get("user_id")
        self._connected = True
        return self.team_id is not None

    async def stop(self) -> None:
        """Stop reconnecting and close the Socket Mode connection, if any."""
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnecting
        if self._socket is not None:
            await self._socket.close_async()
        if self._webhook_session is not None:
            await self._webhook_session.close()
        self._connected = False

    def connected(self) -> bool:
        """True once Slack answered (HTTP mode) or the Socket Mode connection opened."""
        return self._connected

    def http_routes(self) -> list[Route]:
        """`POST /slack/events` for HTTP mode (commands, interactions and events)."""
        if self.socket_mode:
            return []
        from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request

        async def events(request: web.Request) -> web.StreamResponse:
            from aiohttp import web

            if self.handler is None:
                return web.Response(status=503, text="starting")
            # slack_sdk's verifier raises on a timestamp that is not a number (bolt then answers 500 and logs
            # a traceback); such a request is simply not signed by Slack.
            if not re.fullmatch(r"[0-9]{1,12}", request.headers.get("X-Slack-Request-Timestamp", "0")):
                return web.Response(status=401, text="invalid request")
            response = await self.app.async_dispatch(await to_bolt_request(request))
            return await to_aiohttp_response(response)

        return [("POST", "/slack/events", events)]

    # Permissions

    def _may_view(self, user: str | None, channel: str | None) -> bool:
        viewers = set(self.settings.slack_viewers)
        return not viewers or (user in viewers) or (channel in viewers)

    def _channel_allowed(self, channel: str | None) -> bool:
        viewers = set(self.settings.slack_viewers)
        return not viewers or channel in viewers

    async def _is_admin(self, user: str) -> bool:
        if self.settings.slack_admins:
            return user in self.settings.slack_admins
        cached = self._admin_cache.get(user)
        if cached and time.monotonic() - cached[1] < ADMIN_CACHE_SECONDS:
            return cached[0]
        try:
            info = await self.client.users_info(user=user)
            profile = info.get("user") or {}
            admin = bool(profile.get("is_admin") or profile.get("is_owner") or profile.get("is_primary_owner"))
        except SlackApiError as exc:
            log.warning("users.info failed for %s: %s; treating as not an admin", user, exc.response.get("error"))
            admin = False
        except SlackPaused as exc:
            log.warning("users.info for %s not tried: %s; treating as not an admin", user, exc)
            return False  # not cached: asked again once Slack accepts calls
        self._admin_cache[user] = (admin, time.monotonic())
        return admin

    async def _requester(self, user: str, channel: str | None) -> Requester:
        return Requester("slack", user, channel, is_admin=await self._is_admin(user))

    # Listeners

    def _register(self) -> None:
        app = self.app

        @app.middleware
        async def same_workspace(
            body: dict[str, Any], next: Callable[[], Awaitable[BoltResponse]]
        ) -> BoltResponse:
            team = (
                body.get("team_id")
                or (body.get("team") or {}).get("id")
                or (body.get("user") or {}).get("team_id")
            )
            if self.team_id is None and not await self._learn_team():
                return BoltResponse(status=503, body="creditbot cannot reach Slack to check the workspace yet")
            if team and team != self.team_id:
                log.warning("refused a request from workspace %s (this bot belongs to %s)", team, self.team_id)
                return BoltResponse(status=401, body="this app is installed in another workspace")
            return await next()

        app.command(COMMAND)(self._on_command)
        app.action({"action_id": "credits_refresh"})(self._on_action)
        app.action({"action_id": re.compile(r"^credits_snooze")})(self._on_action)
        app.event("app_home_opened")(self._on_home)

    async def _on_command(self, ack: Any, body: dict[str, Any], respond: Any) -> None:
        # Ack first: Slack gives three seconds, and providers can be slower than that.
        await ack()
        user, channel, text = body.get("user_id", ""), body.get("channel_id"), body.get("text", "")
        handler = self.serving(self._may_view(user, channel))
        if handler is None:
            await respond(text=REFUSED_VIEW, response_type="ephemeral")
            return
        try:
            command = handler.parse(text)
        except CommandError as exc:
            command = None
            reply = handler.usage(exc)
        # Checked on the verb the core will run, before running it.
        if command is not None and command.verb in CHANNEL_VERBS and not self._channel_allowed(channel):
            await respond(
                text="Balances cannot be posted in this channel; try it in an allowed channel.",
                response_type="ephemeral",
            )
            return
        requester = await self._requester(user, channel)
        if command is not None:
            reply = await handler.run(command, requester)
        public = reply.public
        await self._respond(respond, reply.message, public)
        if reply.message.chart and channel and not await self._upload_chart(channel, reply.message):
            await respond(text=CHART_HINT, response_type="ephemeral")

    async def _on_action(self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any) -> None:
        await ack()
        user = (body.get("user") or {}).get("id", "")
        channel = (body.get("channel") or {}).get("id")
        handler = self.serving(self._may_view(user, channel))
        if handler is None:
            await respond(text=REFUSED_VIEW, response_type="ephemeral", replace_original=False)
            return
        account, duration = parse_action_value(action.get("value", ""))
        kind = "snooze" if action.get("action_id", "").startswith("credits_snooze") else "refresh"
        reply = await handler.handle_action(
            Action(kind, kind, account, duration), await self._requester(user, channel)
        )
        await self._respond(respond, reply.message, False, replace_original=kind == "refresh")

    async def _on_home(self, event: dict[str, Any]) -> None:
        user = event.get("user", "")
        if event.get("tab", "home") != "home" or self.handler is None:
            return
        if not self._may_view(user, None):
            view = {
                "type": "home",
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": REFUSED_VIEW}}],
            }
        else:
            reply = await self.handler.handle("", await self._requester(user, None))
            view = render_home(reply.message)
        await self.client.views_publish(user_id=user, view=view)

    async def _respond(self, respond: Any, message: Message, public: bool, replace_original: bool = False) -> None:
        # bolt's `respond` opens a new HTTP session (and connection) per answer; one kept session saves that.
        if self._webhook_session is None or self._webhook_session.closed:
            from aiohttp import ClientSession

            self._webhook_session = ClientSession()
        client = AsyncWebhookClient(url=respond.response_url, session=self._webhook_session)
        for index, payload in enumerate(render(message)):
            await client.send(
                text=payload["text"],
                blocks=payload["blocks"],
                response_type="in_channel" if public else "ephemeral",
                replace_original=replace_original and index == 0,
            )

    # Delivery

    async def send(self, channel_id: str, message: Message, *, key: str | None = None) -> None:
        """Post a message (split if large) and upload its chart; failures become DeliveryError, and a retry
        with the same key skips the parts already posted."""

        async def post(payload: dict[str, Any]) -> None:
            await self._pace(channel_id)
            await delivery_call(
                self.client.chat_postMessage,
                channel=channel_id,
                text=payload["text"],
                blocks=payload["blocks"],
                unfurl_links=False,
                unfurl_media=False,
            )

        async def upload() -> None:
            await self._pace(channel_id)
            if not await self._upload_chart(channel_id, message):
                # The text is in the channel already: the summary is delivered, only the chart is missing.
                log.warning("the chart was not posted to %s: %s", channel_id, CHART_HINT)
                await post(note_payload(CHART_HINT))

        steps: list[Step] = [
            (f"page{index}", partial(post, payload)) for index, payload in enumerate(render(message))
        ]
        if message.chart:
            steps.append(("chart", upload))
        async with self._channel_locks.setdefault(channel_id, asyncio.Lock()):
            await self.progress.run(key, steps)

    async def _upload_chart(self, channel_id: str, message: Message) -> bool:
        """Share the chart in the channel; False when the bot is not a member of it (a public channel can
        take the bot's messages without inviting it, but not its files)."""
        assert message.chart is not None
        try:
            await delivery_call(
                self.client.files_upload_v2,
                channel=channel_id,
                content=message.chart,
                filename=message.chart_name,
                title=escape(message.title),
            )
        except SlackDeliveryError as exc:
            if exc.error == "not_in_channel":
                return False
            raise
        return True

    async def _pace(self, channel_id: str) -> None:
        limiter = self._channel_limiters.get(channel_id)
        if limiter is None:
            limiter = self._channel_limiters[channel_id] = AsyncLimiter(1, PER_CHANNEL_INTERVAL)
        await limiter.acquire()
