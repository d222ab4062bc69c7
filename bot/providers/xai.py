"""xAI (experimental): the prepaid balance of a team from the management API, with a management key."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import quote

from bot.models import BalanceSource, ProviderReport
from bot.money import Money
from bot.providers.base import AuthError, BadResponseError, FetchRequest, Provider, amount, require

CENTS = Decimal(100)
KEY_HELP = (
    "xAI billing needs a management key (console.x.ai > Settings > Management Keys), not an inference API key"
)
TEAM_HELP = "set team_id on this account in creditbot.toml (the team id shown in console.x.ai)"


class XAIProvider(
    Provider,
    name="xai",
    base_url="https://management-api.x.ai",
    experimental=True,
    key="management key (console.x.ai > Settings > Management Keys; not an API key)",
    env="XAI_MANAGEMENT_KEY",
):
    """Prepaid credit left on an xAI team: the configured team, or the one the management key belongs to."""

    async def fetch(self, request: FetchRequest) -> ProviderReport:
        """Find the team (unless configured), then read its prepaid balance."""
        team = request.team_id or await self._team(request)
        body = await _get(request, f"/v1/billing/teams/{quote(team, safe='')}/prepaid/balance")
        return parse_balance(body)

    async def _team(self, request: FetchRequest) -> str:
        try:
            body = await _get(request, "/auth/management-keys/validation")
        except BadResponseError as exc:
            raise BadResponseError(
                f"{exc.message}; the team could not be found from the management key: {TEAM_HELP}",
                status=exc.status,
            ) from None
        return team_from_validation(body)


async def _get(request: FetchRequest, path: str) -> Any:
    try:
        return await request.http.get_json(request.url(path), headers=request.bearer())
    except AuthError as exc:
        raise AuthError(f"{exc.message}. Check {request.key_source}: {KEY_HELP}", status=exc.status) from None


def team_from_validation(body: Any) -> str:
    """The team of a management key: `teamId`, or `scopeId` when the key is scoped to a team."""
    if not isinstance(body, dict):
        raise BadResponseError(f"xai key validation is not an object; {TEAM_HELP}")
    team = body.get("teamId")
    if isinstance(team, str) and team.strip():
        return team.strip()
    scope_id = body.get("scopeId")
    if body.get("scope") == "SCOPE_TEAM" and isinstance(scope_id, str) and scope_id.strip():
        return scope_id.strip()
    scope = body.get("scope")
    raise BadResponseError(
        f"xai key validation names no team (no teamId, and scope is {str(scope)[:40]!r}, not SCOPE_TEAM with a "
        f"scopeId); {TEAM_HELP}"
    )


def parse_balance(body: Any) -> ProviderReport:
    """Report from a prepaid balance body: `total.val` is US cents as a string, negative for credit left."""
    total = require(body, "total", "xai")
    cents = amount(require(total, "val", "xai", "'total'"), "total.val", "xai")
    balance = Money(Decimal(0) - cents / CENTS, "USD")  # 0 - x: no "-0" for an empty ledger
    notes = [
        "experimental: read from xAI's management API; the posted ledger can lag the current billing cycle",
    ]
    if cents > 0:
        notes.append(f"xAI shows {Money(cents / CENTS, 'USD').format()} owed (no prepaid credit left)")
    return ProviderReport(
        currency="USD",
        balance=balance,
        balance_source=BalanceSource.REPORTED,
        balances=(balance,),
        notes=tuple(notes),
    )
