"""Value objects shared by providers, the store, the forecast and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from bot.money import Money


class BalanceSource(StrEnum):
    """Where a balance figure comes from."""

    REPORTED = "reported"  # the provider says so
    ESTIMATED = "estimated"  # recorded top-ups minus spend since the first one
    KEY_LIMIT = "key_limit"  # what one key may still spend (OpenRouter), not the account balance


class ErrorKind(StrEnum):
    """Why a fetch failed, coarse enough for alert rules to act on."""

    AUTH = "auth"  # bad, revoked or under-privileged key: will not fix itself
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"  # network trouble, timeouts, 5xx
    BAD_RESPONSE = "bad_response"  # an answer we cannot read, or an error inside a 200


class Status(StrEnum):
    """Overall state of one account, worst first in `STATUS_ORDER`."""

    CRITICAL = "critical"
    WARNING = "warning"
    ERROR = "error"
    OK = "ok"


@dataclass(frozen=True, slots=True)
class DailySpend:
    """Money spent on one UTC day."""

    day: date
    amount: Money


@dataclass(frozen=True, slots=True)
class Grant:
    """A credit grant with its expiry (OpenAI legacy dashboard)."""

    granted: Money
    used: Money
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class ProviderReport:
    """What one provider told us about one account in one fetch."""

    currency: str
    balance: Money | None = None
    balance_source: BalanceSource | None = None
    balances: tuple[Money, ...] = ()
    spent_today: Money | None = None
    spent_month: Money | None = None
    # Oldest first, one entry per UTC day the provider covered (days without spend are zero).
    daily_spend: tuple[DailySpend, ...] = ()
    granted_total: Money | None = None
    grants: tuple[Grant, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Reading:
    """One fetch attempt for one account: a report, or the error that stopped it."""

    account: str
    provider: str
    fetched_at: datetime
    report: ProviderReport | None = None
    error: str | None = None
    error_kind: ErrorKind | None = None

    @property
    def ok(self) -> bool:
        """True when the fetch produced a report."""
        return self.report is not None


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """Credit bought for a spend-only account (a top-up), effective from a UTC day."""

    account: str
    amount: Money
    on_day: date
    source: str  # "config" for the TOML prepaid pair, "cli" or "chat" for recorded ones
    recorded_at: datetime | None = None
    entry_id: int | None = None


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Balance thresholds and budget in force for one account (in its currency), with where each came from."""

    warn_below: Decimal | None = None
    critical_below: Decimal | None = None
    monthly_budget: Decimal | None = None
    warn_below_percent: Decimal | None = None  # of the granted credit, where the provider reports it
    critical_below_percent: Decimal | None = None
    origin: dict[str, str] = field(default_factory=dict)


class Severity(StrEnum):
    """How loud a message is; channels deliver alerts at or above their chosen minimum."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for info, 1 for warning, 2 for critical."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}
