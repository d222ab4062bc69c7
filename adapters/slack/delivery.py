"""Web API calls of a delivery: a short 429 is waited out a few times, every failure becomes a DeliveryError
(permanent for errors that retrying cannot fix) for the outbox to retry or give up."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.errors import SlackApiError

from adapters.slack.pacing import LONGEST_INLINE_PAUSE, SlackPaused, retry_after_seconds
from bot.adapter import DeliveryError

RATE_LIMIT_RETRIES = 2  # 429s waited out within one send before the outbox takes over
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "missing_scope",
        "msg_too_long",
        "invalid_blocks",
    }
)


class SlackDeliveryError(DeliveryError):
    """A delivery the Web API refused; `error` is Slack's code (e.g. `not_in_channel`)."""

    def __init__(self, error: str, *, retry_after: float | None, permanent: bool) -> None:
        super().__init__(f"Slack answered {error}", retry_after=retry_after, permanent=permanent)
        self.error = error


async def delivery_call(method: Callable[..., Awaitable[Any]], **kwargs: Any) -> Any:
    """A Web API call of a delivery: a 429 is waited out (the client pauses every call) a few times
    before the outbox takes over."""
    for attempt in range(RATE_LIMIT_RETRIES + 1):
        try:
            return await _call(method, **kwargs)
        except DeliveryError as exc:
            short = exc.retry_after is not None and exc.retry_after <= LONGEST_INLINE_PAUSE
            if not short or attempt == RATE_LIMIT_RETRIES:
                raise
    raise AssertionError("unreachable")  # the loop returns or raises


async def _call(method: Callable[..., Awaitable[Any]], **kwargs: Any) -> Any:
    try:
        return await method(**kwargs)
    except SlackApiError as exc:
        error = str(exc.response.get("error") or exc.response.status_code)
        retry_after = exc.response.headers.get("Retry-After")
        raise SlackDeliveryError(
            error,
            retry_after=retry_after_seconds(retry_after) if exc.response.status_code == 429 else None,
            permanent=error in PERMANENT_ERRORS,
        ) from None
    except SlackPaused as exc:
        raise DeliveryError(str(exc), retry_after=exc.retry_after) from None
    except (TimeoutError, OSError) as exc:
        raise DeliveryError(f"Slack is unreachable: {type(exc).__name__}") from None
    except Exception as exc:
        # aiohttp client errors and friends: the outbox retries later.
        if type(exc).__module__.startswith("aiohttp"):
            raise DeliveryError(f"Slack is unreachable: {type(exc).__name__}") from None
        raise
