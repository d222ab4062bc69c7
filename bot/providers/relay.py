"""OpenAI-compatible relays (one-api, new-api and their forks): the quota left on a relay key, from the old
OpenAI billing dashboard endpoints the relays imitate (`/v1/dashboard/billing/subscription` and `/usage`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from bot.models import BalanceSource, ProviderReport
from bot.money import Money
from bot.providers.base import (
    AuthError,
    BadResponseError,
    FetchRequest,
    Provider,
    ProviderError,
    amount,
    join_url,
    require,
    settle,
)

NAME = "relay"
SUBSCRIPTION_PATH = "/v1/dashboard/billing/subscription"
USAGE_PATH = "/v1/dashboard/billing/usage"
USAGE_WINDOW_DAYS = 100  # original OpenAI answered at most about 100 days; relays ignore the dates
UNLIMITED = Decimal(100000000)  # new-api's `hard_limit_usd` for a token with unlimited quota
HUNDREDTHS = Decimal(100)  # `total_usage` counts hundredths of the site's unit
KEY_HELP = "the relay's API key (sk-..., from the relay's token page)"


class RelayProvider(
    Provider,
    name=NAME,
    base_url="",
    key=KEY_HELP,
    env="RELAY_API_KEY",
):
    """Quota left on a one-api / new-api relay key: the key's total quota minus what it has used."""

    async def fetch(self, request: FetchRequest) -> ProviderReport:
        """Ask subscription (the total) and usage (the part used) at once; both are needed for a balance."""
        root = relay_root(request.base_url)
        end = request.now.astimezone(UTC).date() + timedelta(days=1)
        window = {
            "start_date": (end - timedelta(days=USAGE_WINDOW_DAYS)).isoformat(),
            "end_date": end.isoformat(),
        }
        subscription, usage = await settle(
            _get(request, join_url(root, SUBSCRIPTION_PATH), None),
            _get(request, join_url(root, USAGE_PATH), window),
        )
        # A refused key says the most, whichever request it came back on.
        for result in (subscription, usage):
            if isinstance(result, AuthError):
                raise result
        if isinstance(subscription, ProviderError):
            raise subscription
        return parse_relay(subscription, usage, request.currency or "USD")


def relay_root(base_url: str) -> str:
    """The relay's address without one trailing `/v1` (either form may be configured)."""
    root = base_url.strip().rstrip("/")
    if not root:
        raise BadResponseError(
            "relay needs the relay's address: set base_url (e.g. https://relay.example.com/v1) on the account"
        )
    return root.removesuffix("/v1").rstrip("/")


async def _get(request: FetchRequest, url: str, params: dict[str, str] | None) -> Any:
    try:
        return await request.http.get_json(url, headers=request.bearer(), params=params)
    except AuthError as exc:
        raise AuthError(
            f"{exc.message}. Check {request.key_source}: it needs {KEY_HELP}, and base_url must be that relay",
            status=exc.status,
        ) from None


def parse_relay(subscription: Any, usage: Any | ProviderError, currency: str) -> ProviderReport:
    """Report from a subscription body and a usage body (or the error that stopped it). The unit is the site's
    display unit, which the bodies do not name: dollars unless the account says otherwise."""
    total = amount(require(subscription, "hard_limit_usd", NAME, "subscription"), "hard_limit_usd", NAME)
    notes: list[str] = []
    expiry = _expiry(subscription)
    if expiry is not None:
        notes.append(f"key expires {expiry.date().isoformat()}")
    if total == UNLIMITED:
        # No quota to run out of: no balance, so no balance alert can ever fire.
        notes.insert(0, "unlimited: the relay sets no quota on this key")
        if not isinstance(usage, ProviderError):
            notes.append(f"used {_used(usage, currency).format()}")
        return ProviderReport(currency=currency, notes=tuple(notes))
    if isinstance(usage, ProviderError):
        raise usage
    balance = Money(total, currency) - _used(usage, currency)
    return ProviderReport(
        currency=currency,
        balance=balance,
        balance_source=BalanceSource.REPORTED,
        balances=(balance,),
        notes=tuple(notes),
    )


def _used(usage: Any, currency: str) -> Money:
    return Money(amount(require(usage, "total_usage", NAME, "usage"), "total_usage", NAME) / HUNDREDTHS, currency)


def _expiry(subscription: dict[str, Any]) -> datetime | None:
    """`access_until`: the key's expiry in Unix seconds, 0 (or absent) for none."""
    value = subscription.get("access_until")
    if value is None:
        return None
    seconds = amount(value, "access_until", NAME)
    if seconds == 0:
        return None
    try:
        if seconds < 0:
            raise ValueError
        return datetime.fromtimestamp(int(seconds), UTC)
    except (OverflowError, OSError, ValueError):
        raise BadResponseError(f"relay access_until is not a Unix time: {value!r}"[:120]) from None
