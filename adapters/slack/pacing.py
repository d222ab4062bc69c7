"""Client-side pacing of Slack Web API calls, so that a fan-out to many channels rarely meets a 429."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiolimiter import AsyncLimiter
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.retry_after import parse_retry_after

log = logging.getLogger(__name__)

# Slack counts calls over a moving window and the network adds jitter: staying a little under the
# configured rate costs 5 % of throughput and saves the one-second pause that each 429 costs.
RATE_MARGIN = 0.95
RETRY_AFTER_CAP = 3600.0  # an absurd Retry-After is read as an hour
LONGEST_INLINE_PAUSE = 30.0  # a longer pause fails the call at once (the outbox retries) instead of holding it
PAUSES_PER_CALL = 5


class SlackPaused(Exception):
    """Slack asked for a pause longer than a call should wait; `retry_after` says how long is left."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"Slack asked to wait {retry_after:.0f} s more")
        self.retry_after = retry_after


def retry_after_seconds(value: str | None) -> float:
    """Retry-After in seconds for pacing: a missing or unreadable value means one second, at most an hour."""
    seconds = parse_retry_after(value)
    return 1.0 if seconds is None else min(seconds, RETRY_AFTER_CAP)


class PacedWebClient(AsyncWebClient):
    """An AsyncWebClient whose calls are spaced evenly under a workspace-wide rate (no bursts); a 429 on any
    call pauses every call for its Retry-After."""

    def __init__(self, *, calls_per_second: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._limiter = AsyncLimiter(1, 1 / (calls_per_second * RATE_MARGIN))
        self._paused_until = 0.0  # monotonic time before which no call goes out

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        """Wait for a slot (and out any pause), then make the call; remember a 429's Retry-After."""
        for _ in range(PAUSES_PER_CALL):
            await self._limiter.acquire()
            # Checked after the slot: calls already queued in the limiter must not go out during a pause.
            pause = self._paused_until - time.monotonic()
            if pause <= 0:
                break
            if pause > LONGEST_INLINE_PAUSE:
                raise SlackPaused(pause)
            await asyncio.sleep(pause)  # then queue again, so the calls resume spaced, not all at once
        try:
            return await super().api_call(api_method, **kwargs)
        except SlackApiError as exc:
            if exc.response.status_code == 429:
                wait = retry_after_seconds(exc.response.headers.get("Retry-After"))
                log.info("Slack asked to slow down (%s); pausing calls for %gs", api_method, wait)
                self._paused_until = max(self._paused_until, time.monotonic() + wait)
            raise
