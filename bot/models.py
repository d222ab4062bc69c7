"""Value objects shared by every part of the core (no I/O: importing this module loads no driver or SDK)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from pydantic import SecretStr

from bot.money import Money
from bot.text import mask_secret


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
    spent_today: Money | None = None  # None: not reported (yet), never a zero the provider did not say
    spent_month: Money | None = None
    spent_month_through: date | None = None  # the last UTC day that `spent_month` counts
    # Oldest first, one entry per UTC day the provider covered (days without spend are zero); a day the
    # provider has not reported yet (today, while its data lags) is left out.
    daily_spend: tuple[DailySpend, ...] = ()
    granted_total: Money | None = None
    grants: tuple[Grant, ...] = ()
    notes: tuple[str, ...] = ()
    # When the credits are renewed (a subscription's quota): the runway ends there, so a run-out projected
    # after it is no run-out.
    resets_at: datetime | None = None
    # The provider says requests are refused now (e.g. Venice's canConsume false): critical whatever the balance.
    refused: str | None = None


def report_amounts(report: ProviderReport) -> list[Money]:
    """Every amount a report carries."""
    amounts = [m for m in (report.balance, report.spent_today, report.spent_month, report.granted_total) if m]
    amounts += report.balances
    amounts += [d.amount for d in report.daily_spend]
    amounts += [m for grant in report.grants for m in (grant.granted, grant.used)]
    return amounts


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


@dataclass(frozen=True)
class JsonSource:
    """Where an `http-json` account reads its balance: a URL, its headers (secrets) and JSON Pointers."""

    url: str
    headers: tuple[tuple[str, SecretStr], ...]
    balance: str  # RFC 6901 pointer to a number or numeric string
    scale: Decimal = Decimal(1)  # multiplier: 0.01 for cents
    error: str | None = None  # pointer: failure when the value there is present and truthy
    spent_month: str | None = None  # pointer, same scale


@dataclass(frozen=True)
class Account:
    """A configured account, ready to fetch."""

    name: str
    provider: str
    api_key: SecretStr
    base_url: str
    origin: str  # where it was configured, e.g. "creditbot.toml" or "env OPENAI_ADMIN_KEY"
    currency: str | None = None
    prepaid_credit: Money | None = None
    prepaid_since: date | None = None
    monthly_budget: Decimal | None = None
    warn_below: Decimal | None = None
    critical_below: Decimal | None = None
    warn_below_percent: Decimal | None = None
    critical_below_percent: Decimal | None = None
    # The provider has no balance endpoint: the balance is estimated from the ledger. Always given (from the
    # provider registry), never defaulted, so that no account is silently taken for one with a balance.
    spend_only: bool = field(kw_only=True)
    # The environment variable the key was read from (discovery, or `${VAR}` in the file), if any.
    key_variable: str | None = field(default=None, kw_only=True)
    team_id: str | None = field(default=None, kw_only=True)  # xAI: the team, when not found from the key
    json_source: JsonSource | None = field(default=None, kw_only=True)  # http-json only

    def key_source(self) -> str:
        """Where the key was set, in words a user can act on: its variable, or the file's api_key field."""
        if self.key_variable:
            return self.key_variable
        if self.json_source is not None:
            return f"the headers of account '{self.name}' in {self.origin.rsplit('/', 1)[-1]}"
        # The file's name only: chat users see account errors, and the server's paths are none of theirs.
        return f"the api_key of account '{self.name}' in {self.origin.rsplit('/', 1)[-1]}"

    def secret_values(self) -> tuple[str, ...]:
        """Every secret this account holds (its key, an http-json source's header values)."""
        headers = self.json_source.headers if self.json_source is not None else ()
        return tuple(
            v for v in (self.api_key.get_secret_value(), *(h.get_secret_value() for _, h in headers)) if v
        )

    def masked_key(self) -> str:
        """The key reduced to a recognisable but useless hint, for `creditbot accounts`."""
        if self.json_source is not None:
            return f"headers: {', '.join(name for name, _ in self.json_source.headers) or 'none'}"
        return mask_secret(self.api_key.get_secret_value())


# Draws the chart of some accounts' views (PNG bytes), or None when there is nothing to draw.
ChartMaker = Callable[[Sequence["AccountView"]], Awaitable[bytes | None]]


@dataclass(frozen=True)
class AccountView:
    """Everything the CLI and chat adapters show about one account, derived once by the monitor."""

    account: Account
    status: Status
    thresholds: Thresholds
    fetched_at: datetime | None = None  # of the reading whose values count
    stale: bool = False  # values come from an earlier good reading because the latest fetch failed
    error: str | None = None
    error_kind: ErrorKind | None = None
    currency: str | None = None
    balance: Money | None = None
    balance_source: BalanceSource | None = None
    balances: tuple[Money, ...] = ()
    spent_today: Money | None = None
    spent_month: Money | None = None
    spent_month_through: date | None = None  # the last UTC day that `spent_month` counts
    monthly_budget: Money | None = None
    burn_rate: Money | None = None
    days_left: Decimal | None = None
    run_out: date | None = None
    projected_month: Money | None = None
    report: ProviderReport | None = None
    spend_series: tuple[DailySpend, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        """The account name."""
        return self.account.name

    def age(self, now: datetime) -> timedelta | None:
        """How old the counted reading is."""
        return None if self.fetched_at is None else now - self.fetched_at


class Rule(StrEnum):
    """The alert rules."""

    BALANCE = "balance"
    RUNWAY = "runway"
    BUDGET = "budget"
    FORECAST = "forecast"
    SPIKE = "spike"
    EXPIRING = "expiring"
    SOURCE = "source"


class AlertKind(StrEnum):
    """What an alert announcement says: a rule fired, recovered, or reminds that it still holds."""

    FIRED = "fired"
    RECOVERED = "recovered"
    REMINDER = "reminder"


@dataclass(frozen=True)
class AlertSettings:
    """Tunables of the rules."""

    runway_warn_days: Decimal = Decimal(7)
    failures_before_alert: int = 3
    hysteresis: Decimal = Decimal("0.10")
    spike_factor: Decimal = Decimal(3)
    spike_min: Decimal = Decimal(1)
    reminder: timedelta | None = None  # repeat while critical; off by default
    expiring_warn: timedelta = timedelta(days=7)
    expiring_critical: timedelta = timedelta(days=1)


@dataclass(frozen=True)
class Condition:
    """The level of a rule that holds, in numbers: `amount` is the rule's reference figure (the threshold
    crossed, the monthly budget, the runway days, the spike factor, the failures in a row)."""

    rule: Rule
    level: int
    amount: Decimal | None = None
    currency: str | None = None


@dataclass(frozen=True)
class AlertState:
    """Where one rule of one account stands, persisted between polls and restarts."""

    account: str
    rule: Rule
    level: int = 0  # 0 is fine; 1.. are the rule's levels, rising
    fired_level: int = 0  # highest level announced in this episode
    episode: int = 0  # counts episodes, so each gets its own delivery keys
    period: str | None = None
    since: datetime | None = None
    notified_at: datetime | None = None
    reminders: int = 0  # announcements made in this episode, so each gets its own delivery key
    detail: str | None = None  # the condition that holds, in words (shown by `alerts` and in summaries)
    peak_level: int = 0  # loudest level announced in this episode: where its recovery goes
    suppressed: bool = False  # reached while snoozed and not announced yet


@dataclass(frozen=True)
class AlertEvent:
    """Something to tell people: a rule fired, recovered, or reminds (codes and numbers; the wording is
    `bot.messages.alert_message`'s)."""

    account: str
    rule: Rule
    kind: AlertKind
    severity: Severity
    level: int
    episode: int
    condition: Condition  # for a recovery: the condition that held
    routing_severity: Severity  # recoveries go where the alert they close went
    sequence: int = 1  # the how-many-th announcement of its episode

    @property
    def key(self) -> str:
        """Unique per account, rule, episode and announcement: the same alert is never delivered twice."""
        return f"{self.account}:{self.rule.value}:{self.episode}:{self.sequence}:{self.kind.value}:{self.level}"


@dataclass(frozen=True)
class SourceHealth:
    """How the account's billing source has been answering."""

    latest_ok: bool
    failure_streak: int
    latest_error: str | None = None
    latest_error_kind: ErrorKind | None = None
