"""Socket Mode: the app token is tried before connecting (a token Slack refuses is a configuration error, not a
retry loop), an unreachable Slack is retried with back-off, and the SDK's connection messages are one line."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.common import backoff
from bot.adapter import AdapterConfigError, AdapterUnavailable

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 30.0  # for one attempt to open the WebSocket, after the app token was accepted
RECONNECT_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)  # then every minute
# apps.connections.open answers these when the token itself is wrong; anything else may pass.
REFUSED = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "not_allowed_token_type",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "invalid_token",
    }
)


class SlackUnreachable(Exception):
    """Slack could not be asked (network, timeout, a 5xx or a rate limit): worth trying again later."""


class OneLine(logging.Filter):
    """The SDK logs every failed connection attempt with its traceback; the operator gets the line alone."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Drop the traceback, keep the message."""
        if record.exc_info is not None or record.exc_text:
            record.exc_info, record.exc_text = None, None
        return True


# The logger handed to the Socket Mode client (see `OneLine`).
SDK_LOG = logging.getLogger("adapters.slack.socket_mode")
SDK_LOG.addFilter(OneLine())


def app_token_refused(error: str) -> str:
    """The one line that says the app token was refused and how to get one that works."""
    return (
        f"Slack refused SLACK_APP_TOKEN (apps.connections.open: {error}): generate an app-level token with the "
        "connections:write scope under Basic Information > App-Level Tokens and put it (xapp-...) into "
        "SLACK_APP_TOKEN, or unset SLACK_APP_TOKEN to use HTTP mode"
    )


async def try_app_token(client: AsyncWebClient, app_token: str) -> str:
    """A Socket Mode URL asked for with the app token: AdapterConfigError when the token is refused,
    SlackUnreachable when Slack could not answer."""
    try:
        response = await client.apps_connections_open(app_token=app_token)
        return str(response["url"])
    except SlackApiError as exc:
        error = str(exc.response.get("error") or exc.response.status_code)
        if error in REFUSED:
            raise AdapterConfigError(app_token_refused(error)) from None
        raise SlackUnreachable(f"apps.connections.open: {error}") from None
    except Exception as exc:  # network trouble of any kind (aiohttp, OS, timeout)
        raise SlackUnreachable(type(exc).__name__) from None


async def open_socket(app: Any, app_token: str, url: str) -> Any:
    """A handler connected to the URL that `try_app_token` got, or SlackUnreachable when the WebSocket does
    not open in time."""
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    socket: Any = AsyncSocketModeHandler(app, app_token, logger=SDK_LOG)
    # apps.connections.open is a Tier 1 method: the URL just obtained is used rather than asked for again.
    socket.client.wss_uri = url
    try:
        # The SDK retries a failed connection forever; the attempt is bounded here and retried by `backoff`.
        await asyncio.wait_for(socket.connect_async(), CONNECT_TIMEOUT)
    except BaseException as exc:
        await socket.close_async()
        if isinstance(exc, TimeoutError):
            raise SlackUnreachable("the Socket Mode connection did not open") from None
        raise
    return socket


async def keep_trying(connect: Callable[[], Awaitable[None]], delays: Sequence[float]) -> None:
    """Call `connect` after growing waits until it works, or until Slack refuses a token (no retry can fix
    that); each failure is one log line."""
    for attempt in itertools.count():
        await asyncio.sleep(backoff(attempt, delays))
        try:
            await connect()
            return
        except SlackUnreachable as exc:
            log.warning("Slack is still unreachable (%s); trying again with back-off", exc)
        except (AdapterConfigError, AdapterUnavailable) as exc:
            log.error("%s; Slack stays disabled until creditbot is restarted", exc)
            return
