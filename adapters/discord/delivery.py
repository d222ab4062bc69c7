"""Posting a core message to a Discord channel over the REST API: one path for the gateway adapter and for the
one-off commands, which never open the gateway. Explicit allowed mentions, the chart attached, buttons, and
every failure turned into a DeliveryError (a 429 carries its retry_after)."""

from __future__ import annotations

import io
from functools import partial
from typing import Any

import aiohttp
import discord
from discord.http import HTTPClient, handle_message_parameters

from adapters.common import SendProgress, Step
from adapters.discord.buttons import actions_view
from adapters.discord.render import allowed_mentions_for, render
from bot.adapter import DeliveryError
from bot.messages import Message

# Discord answers 400 to a payload it will never accept (e.g. a channel that takes no messages): retrying the
# same message cannot help.
PERMANENT_STATUSES = frozenset({400, 403, 404})


def allowed_mentions(message: Message) -> discord.AllowedMentions:
    """Exactly the message's configured mentions may ping, nothing that data in the message says."""
    wanted = allowed_mentions_for(message.mentions)
    return discord.AllowedMentions(
        everyone=wanted["everyone"],
        roles=[discord.Object(id=int(r)) for r in wanted["roles"]],
        users=[discord.Object(id=int(u)) for u in wanted["users"]],
        replied_user=False,
    )


def pages(message: Message, mentions: discord.AllowedMentions) -> list[tuple[str, dict[str, Any]]]:
    """The message as Discord messages (content and keyword arguments); the last carries chart and buttons."""
    rendered = render(message, chart_name=message.chart_name if message.chart else None)
    result = []
    for index, page in enumerate(rendered):
        kwargs: dict[str, Any] = {
            "embeds": [discord.Embed.from_dict(e) for e in page["embeds"]],
            "allowed_mentions": mentions,
        }
        if index == len(rendered) - 1:
            if message.chart:
                kwargs["file"] = discord.File(io.BytesIO(message.chart), filename=message.chart_name)
            view = actions_view(message)
            if view is not None:
                kwargs["view"] = view
        result.append((page["content"], kwargs))
    return result


async def post(
    http: HTTPClient, channel_id: str, message: Message, *, key: str | None, progress: SendProgress
) -> None:
    """Post every page of the message to the channel; a retry with the same key skips the pages already
    posted."""
    try:
        channel = int(channel_id)
    except ValueError:
        raise DeliveryError(f"{channel_id!r} is not a Discord channel id (a number)", permanent=True) from None
    steps: list[Step] = [
        (f"page{index}", partial(_post_page, http, channel, content, kwargs))
        for index, (content, kwargs) in enumerate(pages(message, allowed_mentions(message)))
    ]
    try:
        await progress.run(key, steps)
    except discord.RateLimited as exc:  # longer than discord.py waits by itself
        wait = exc.retry_after
        raise DeliveryError(f"Discord rate limited for {wait:.0f} s", retry_after=wait) from None
    except discord.HTTPException as exc:
        if exc.status in PERMANENT_STATUSES:
            raise DeliveryError(f"Discord refused: {exc.text or exc.status}", permanent=True) from None
        raise DeliveryError(f"Discord failed: HTTP {exc.status}") from None
    except (OSError, aiohttp.ClientError, TimeoutError) as exc:
        raise DeliveryError(f"Discord is unreachable: {type(exc).__name__}") from None


async def _post_page(http: HTTPClient, channel: int, content: str, kwargs: dict[str, Any]) -> None:
    with handle_message_parameters(content=content or discord.utils.MISSING, **kwargs) as params:
        await http.send_message(channel, params=params)
