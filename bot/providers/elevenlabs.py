"""ElevenLabs: characters left in the subscription's period from `/v1/user/subscription` (a quota, not money)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.models import BalanceSource, ProviderReport
from bot.money import Money
from bot.providers.base import AuthError, BadResponseError, FetchRequest, Provider, amount, require

UNIT = "characters"


class ElevenLabsProvider(
    Provider,
    name="elevenlabs",
    base_url="https://api.elevenlabs.io",
    granted=True,
    reports="quota",
    key="API key (elevenlabs.io > Developers > API Keys; needs user read access)",
    env="ELEVENLABS_API_KEY",
):
    """Characters left until the quota renews, and when it renews."""

    async def fetch(self, request: FetchRequest) -> ProviderReport:
        """Read the subscription with the `xi-api-key` header (ElevenLabs takes no Bearer token)."""
        headers = {"xi-api-key": request.api_key.get_secret_value(), "Accept": "application/json"}
        try:
            body = await request.http.get_json(request.url("/v1/user/subscription"), headers=headers)
        except AuthError as exc:
            raise AuthError(
                f"{exc.message}. Check {request.key_source} (elevenlabs.io > Developers > API Keys; a restricted "
                "key needs read access to User)",
                status=exc.status,
            ) from None
        return parse_subscription(body)


def parse_subscription(body: Any) -> ProviderReport:
    """Report from a subscription body: characters left = `character_limit` - `character_count`. The body's own
    `currency` is what the subscription is billed in, not the unit of the quota, and is never used here."""
    if not isinstance(body, dict):
        raise BadResponseError("elevenlabs response is not an object")
    limit = amount(require(body, "character_limit", "elevenlabs"), "character_limit", "elevenlabs")
    used = amount(require(body, "character_count", "elevenlabs"), "character_count", "elevenlabs")
    left = Money(limit - used, UNIT)
    notes: list[str] = []
    resets_at = _reset(body.get("next_character_count_reset_unix"))
    if resets_at is not None:
        notes.append(f"resets on {resets_at.date().isoformat()}")
    if left.amount < 0:
        notes.append(f"{Money(-left.amount, UNIT).format()} over the quota")
    return ProviderReport(
        currency=UNIT,
        balance=left,
        balance_source=BalanceSource.REPORTED,
        balances=(left,),
        granted_total=Money(limit, UNIT),
        notes=tuple(notes),
        resets_at=resets_at,
    )


def _reset(value: Any) -> datetime | None:
    """The renewal time from Unix seconds; null (no renewal, e.g. a plan without one) is None, junk an error."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadResponseError(f"elevenlabs next_character_count_reset_unix is not a number: {str(value)[:40]!r}")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise BadResponseError("elevenlabs next_character_count_reset_unix is out of range") from None
