"""Discord without the gateway: the one-off commands (`summary --send`, `notify-test`) deliver over the REST
API, and `creditbot doctor` asks Discord who the token belongs to. Neither opens a gateway session, which a
running bot may be holding."""

from __future__ import annotations

import asyncio
import base64
from typing import TYPE_CHECKING

import aiohttp
import discord
from discord.http import HTTPClient, Route

from adapters.common import SendProgress
from adapters.discord.delivery import post
from bot.adapter import BaseAdapter, DeliveryError
from bot.messages import Message

if TYPE_CHECKING:
    from bot.config import Settings

# View Channel, Send Messages, Embed Links, Attach Files: all the bot needs to post summaries and alerts.
INVITE_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 14) | (1 << 15)
LOGIN_TIMEOUT = 15.0  # aiohttp's own default is five minutes
MAX_RATELIMIT_WAIT = 30.0  # a longer 429 goes back to the outbox (discord.py's smallest allowed value)
LOGIN_REFUSED = (
    "Discord refused DISCORD_TOKEN (401): copy the token from the Developer Portal (your application > Bot > "
    "Reset Token) into DISCORD_TOKEN"
)


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


def point_at(settings: Settings) -> None:
    """Send discord.py's REST calls to DISCORD_API_URL (the real API unless a test or proxy says otherwise)."""
    Route.BASE = settings.discord_api_url.rstrip("/")


async def login(settings: Settings) -> tuple[HTTPClient, dict[str, object]]:
    """A logged-in REST client and the bot user ("who am I"); discord.LoginFailure when the token is refused.
    The caller closes the client."""
    assert settings.discord_token is not None
    point_at(settings)
    http = HTTPClient(asyncio.get_running_loop(), max_ratelimit_timeout=MAX_RATELIMIT_WAIT)
    try:
        me = await asyncio.wait_for(http.static_login(settings.discord_token.get_secret_value()), LOGIN_TIMEOUT)
    except BaseException:
        await http.close()
        raise
    return http, dict(me)


async def check_discord(settings: Settings) -> list[str]:
    """What `creditbot doctor` says about Discord: whether the token works, and where to invite the bot ("!"
    marks a problem)."""
    assert settings.discord_token is not None
    app_id = application_id_from_token(settings.discord_token.get_secret_value())
    if app_id is None:
        return ["! DISCORD_TOKEN does not look like a bot token (Developer Portal > Bot > Token)"]
    try:
        http, me = await login(settings)
    except discord.LoginFailure:
        return [f"! {LOGIN_REFUSED}"]
    except discord.HTTPException as exc:
        return [f"! Discord answered HTTP {exc.status} to GET /users/@me"]
    except (OSError, aiohttp.ClientError, TimeoutError) as exc:
        return [f"! Discord is unreachable ({type(exc).__name__}) at DISCORD_API_URL"]
    await http.close()
    return [f"ok, logged in as {me.get('username')} ({me.get('id')})", f"invite the bot with {invite_url(app_id)}"]


class DiscordRestAdapter(BaseAdapter):
    """The `discord` platform for one-off commands: messages over REST, logged in on the first send."""

    platform = "discord"

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings
        self.progress = SendProgress()
        self._http: HTTPClient | None = None
        self._login_lock = asyncio.Lock()

    async def _client(self) -> HTTPClient:
        async with self._login_lock:  # channels are delivered in parallel: one login for all of them
            if self._http is None:
                try:
                    self._http, _me = await login(self.settings)
                except discord.LoginFailure:
                    raise DeliveryError(LOGIN_REFUSED, permanent=True) from None
                except discord.HTTPException as exc:
                    raise DeliveryError(f"Discord failed: HTTP {exc.status}") from None
                except (OSError, aiohttp.ClientError, TimeoutError) as exc:
                    raise DeliveryError(f"Discord is unreachable: {type(exc).__name__}") from None
            return self._http

    async def send(self, channel_id: str, message: Message, *, key: str | None = None) -> None:
        """Post the message (pages, chart, buttons) to the channel; failures become DeliveryError."""
        await post(await self._client(), channel_id, message, key=key, progress=self.progress)

    async def stop(self) -> None:
        """Close the REST session."""
        if self._http is not None:
            await self._http.close()
            self._http = None
