"""The platform-neutral message model and its builders; adapters only render these."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.formatting import UNKNOWN, balance_suffix, money_text, runway_text, signed_money_text, time_text
from bot.models import AccountView, AlertEvent, AlertKind, Condition, Rule, Severity, Status
from bot.money import Money
from bot.report import view_as_dict
from bot.text import cut, safe_file_name

STATUS_SEVERITY = {
    Status.CRITICAL: Severity.CRITICAL,
    Status.WARNING: Severity.WARNING,
    Status.ERROR: Severity.WARNING,
    Status.OK: Severity.INFO,
}


@dataclass(frozen=True)
class Field:
    """A label and its value, e.g. ("Days left", "35.0")."""

    label: str
    value: str


@dataclass(frozen=True)
class Section:
    """One account in a message."""

    account: str
    provider: str
    status: str  # a Status value: adapters pick colour or emoji from it
    headline: str  # e.g. "$38.50 left (estimated)"
    fields: tuple[Field, ...] = ()
    note: str | None = None  # stale or error explanation
    values: dict[str, Any] | None = None  # the numbers behind the fields (`creditbot check --json` shape)


@dataclass(frozen=True)
class Action:
    """A button: refresh the report, or snooze one account's alerts."""

    kind: str  # "refresh" or "snooze"
    label: str
    account: str | None = None
    duration: str | None = None  # for snooze, e.g. "24h"


@dataclass(frozen=True)
class Message:
    """Everything a chat message says, before any platform formatting."""

    title: str
    summary: str  # one line: notification text and fallback
    severity: Severity = Severity.INFO
    sections: tuple[Section, ...] = ()
    text: str = ""  # free text body (help, confirmations, errors)
    footer: str = ""
    chart: bytes | None = None
    chart_name: str = "credits.png"
    # As configured: friendly ("@here", a Slack user or group id) or the platform's syntax ("<@&123>");
    # each adapter writes them its own way.
    mentions: tuple[str, ...] = ()
    actions: tuple[Action, ...] = ()
    kind: str = ""  # "summary", "alert", "recovery" or "test" for what the outbox sends; "" for a reply
    as_of: str | None = None  # ISO time of the oldest reading shown

    def __post_init__(self) -> None:
        # Adapters use the chart name as a file name (console) or attachment name: never a path.
        object.__setattr__(self, "chart_name", safe_file_name(self.chart_name))

    def with_mentions(self, mentions: Sequence[str]) -> Message:
        """The same message addressed to people."""
        return Message(**{**self.__dict__, "mentions": tuple(mentions)})

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe form for the outbox."""
        return {
            "title": self.title,
            "summary": self.summary,
            "severity": self.severity.value,
            "sections": [
                {
                    "account": s.account,
                    "provider": s.provider,
                    "status": s.status,
                    "headline": s.headline,
                    "fields": [[f.label, f.value] for f in s.fields],
                    "note": s.note,
                    "values": s.values,
                }
                for s in self.sections
            ],
            "text": self.text,
            "footer": self.footer,
            "chart": base64.b64encode(self.chart).decode() if self.chart else None,
            "chart_name": self.chart_name,
            "mentions": list(self.mentions),
            "actions": [a.__dict__ for a in self.actions],
            "kind": self.kind,
            "as_of": self.as_of,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Message:
        """The message stored by `to_json`."""
        return cls(
            title=data["title"],
            summary=data["summary"],
            severity=Severity(data["severity"]),
            sections=tuple(
                Section(
                    account=s["account"],
                    provider=s["provider"],
                    status=s["status"],
                    headline=s["headline"],
                    fields=tuple(Field(label, value) for label, value in s["fields"]),
                    note=s["note"],
                    values=s.get("values"),
                )
                for s in data["sections"]
            ),
            text=data["text"],
            footer=data["footer"],
            chart=base64.b64decode(data["chart"]) if data.get("chart") else None,
            chart_name=data.get("chart_name", "credits.png"),
            mentions=tuple(data["mentions"]),
            actions=tuple(Action(**a) for a in data["actions"]),
            kind=data.get("kind", ""),
            as_of=data.get("as_of"),
        )


def headline(view: AccountView) -> str:
    """One phrase saying where an account stands."""
    if view.balance is not None:
        return f"{view.balance.format()} left{balance_suffix(view.balance_source)}"
    if view.spent_month is not None:
        return f"{view.spent_month.format()} spent this month"
    return "no data" if view.error else "no balance reported"


# Fields counted in the provider's UTC days.
UTC_DAY_FIELDS = frozenset({"Today", "Month to date", "Yesterday", "Top yesterday"})


def section(view: AccountView) -> Section:
    """The section for one account, with the fields every platform shows."""
    fields = [Field("Balance" if view.balance is not None else "Spend", headline(view))]
    for label, value in (
        ("Other currencies", ", ".join(m.format() for m in view.balances if view.balance and m != view.balance)),
        ("Today", _today_text(view)),
        ("Month to date", _month_text(view)),
        ("Budget", money_text(view.monthly_budget) if view.monthly_budget is not None else ""),
        ("Burn/day", money_text(view.burn_rate) if view.burn_rate is not None else ""),
        ("Days left", "" if (runway := runway_text(view)) == UNKNOWN else runway),
    ):
        if value:
            fields.append(Field(label, value))
    fields.append(Field("Status", view.status.value + (" (stale)" if view.stale else "")))
    note = None
    if view.error:
        note = f"stale: {view.error}" if view.stale else view.error
    status, shown = view.status.value, headline(view)
    return Section(view.name, view.account.provider, status, shown, tuple(fields), note, view_as_dict(view))


def _today_text(view: AccountView) -> str:
    if view.spent_today is not None:
        return money_text(view.spent_today)
    # A provider with a daily series that has not reported today yet: say so rather than leave it out.
    return "not reported yet" if view.spend_series else ""


def _month_text(view: AccountView) -> str:
    if view.spent_month is None:
        return ""
    through = view.spent_month_through
    counted_today = through is None or view.fetched_at is None or through >= view.fetched_at.date()
    return money_text(view.spent_month) + ("" if counted_today else f" (through {through:%b %d})")


def footer(views: Sequence[AccountView], now: datetime) -> str:
    """ "as of" the oldest reading shown, saying so when some are stale."""
    times = [v.fetched_at for v in views if v.fetched_at is not None]
    text = f"as of {time_text(min(times))}" if times else f"no readings yet ({time_text(now)})"
    stale = [v.name for v in views if v.stale]
    if stale:
        text += f" · stale: {', '.join(stale)}"
    return text


def _oldest(views: Sequence[AccountView]) -> str | None:
    times = [v.fetched_at for v in views if v.fetched_at is not None]
    return min(times).isoformat() if times else None


def worst_severity(views: Sequence[AccountView]) -> Severity:
    """The severity of the worst account."""
    return max((STATUS_SEVERITY[v.status] for v in views), key=lambda s: s.rank, default=Severity.INFO)


def credits_message(views: Sequence[AccountView], now: datetime, *, chart: bytes | None = None) -> Message:
    """The answer to `/credits`: one section per account, with Refresh and Snooze buttons."""
    if not views:
        return Message("LLM credits", "No accounts to show.", text="No accounts are configured or visible here.")
    summary = "; ".join(f"{v.name}: {headline(v)}" for v in views)
    # Refresh keeps the report as narrow as it was.
    actions = [Action("refresh", "Refresh", views[0].name if len(views) == 1 else None)]
    actions += [
        Action("snooze", f"Snooze {v.name} 24h", v.name, "24h") for v in views if v.status is not Status.OK
    ][:4]
    return Message(
        title="LLM credits",
        summary=cut(summary, 300, "..."),
        severity=worst_severity(views),
        sections=tuple(section(v) for v in views),
        footer=footer(views, now),
        chart=chart,
        actions=tuple(actions),
    )


def balance_change(change: Money) -> Field:
    """How much a reported balance moved in the last 24 hours."""
    return Field("Change", f"{signed_money_text(change)} in 24 h")


def spend_change(yesterday: Money, before: Money | None) -> Field:
    """Yesterday's spend (UTC), against the day before when that is known."""
    against = ""
    if before is not None and before.currency == yesterday.currency:
        against = f" ({signed_money_text(yesterday - before)} on the day before)"
    return Field("Yesterday", money_text(yesterday) + against)


def summary_message(
    views: Sequence[AccountView],
    now: datetime,
    changes: Mapping[str, Field],
    open_alerts: Mapping[str, Sequence[str]],
    chart: bytes | None,
    *,
    zone: str = "UTC",
    drivers: Mapping[str, Field] | None = None,
) -> Message:
    """The daily summary: every account, its change over a day, yesterday's top models (`drivers`, where the
    provider breaks spend down), open alerts, a chart.

    Providers count spend in UTC days: for a channel in another zone the spend fields say "(UTC)", and a month
    to date that is not the channel's month yet (or any more) names its month."""
    local_month = now.astimezone(ZoneInfo(zone)).strftime("%Y-%m")
    sections = []
    for view in views:
        base = section(view)
        fields = list(base.fields)
        change = changes.get(view.name)
        if change is not None:
            fields.insert(len(fields) - 1, change)
        top = (drivers or {}).get(view.name)
        if top is not None:
            fields.insert(len(fields) - 1, top)
        alerts = open_alerts.get(view.name)
        if alerts:
            fields.append(Field("Open alerts", ", ".join(alerts)))
        if zone != "UTC":
            fields = [_in_utc(f, view, local_month) for f in fields]
        sections.append(replace(base, fields=tuple(fields)))
    worst = worst_severity(views)
    counts = {status: sum(1 for v in views if v.status is status) for status in Status}
    parts = [f"{n} {s.value}" for s, n in counts.items() if n]
    return Message(
        title="Daily LLM credits summary",
        summary=f"{len(views)} accounts: " + ", ".join(parts) if views else "No accounts.",
        severity=worst,
        sections=tuple(sections),
        footer=footer(views, now),
        chart=chart,
        chart_name=f"credits-{now:%Y-%m-%d}.png",
        actions=(Action("refresh", "Refresh"),),
        kind="summary",
        as_of=_oldest(views),
    )


def _in_utc(item: Field, view: AccountView, local_month: str) -> Field:
    if item.label not in UTC_DAY_FIELDS:
        return item
    value = item.value
    if item.label == "Month to date" and view.fetched_at is not None:
        utc_month = view.fetched_at.astimezone(UTC)
        if utc_month.strftime("%Y-%m") != local_month:
            value += f" ({utc_month:%B}, UTC)"
    return Field(f"{item.label} (UTC)", value)


def text_message(title: str, text: str, severity: Severity = Severity.INFO) -> Message:
    """A plain reply such as a confirmation, help or a refusal."""
    first = text.splitlines()[0] if text else title
    return Message(title=title, summary=first[:300], severity=severity, text=text)


def condition_text(condition: Condition) -> str:
    """What holding one level of a rule means, e.g. "below $5.00" or "80% of the $100.00 monthly budget"."""
    amount, level = condition.amount, condition.level

    def money(value: Any) -> str:
        return Money(value, condition.currency or "USD").format()

    match condition.rule:
        case Rule.BALANCE:
            return "" if amount is None else f"below {money(amount)}"
        case Rule.RUNWAY:
            return f"runs out within {amount} days"
        case Rule.BUDGET:
            share = {1: "50% of the", 2: "80% of the"}.get(level, "the whole")
            return f"{share} {money(amount)} monthly budget"
        case Rule.FORECAST:
            return f"projected to exceed the {money(amount)} monthly budget"
        case Rule.SPIKE:
            return f"more than {amount}x the usual daily spend"
        case Rule.EXPIRING:
            return "a credit grant expires within 7 days" if level == 1 else "a credit grant expires within a day"
        case Rule.SOURCE:
            return f"{amount} fetches in a row failed" if level == 1 else "the key was refused"
    raise ValueError(f"no wording for rule {condition.rule}")


def alert_message(event: AlertEvent, view: AccountView, *, driver: str | None = None) -> Message:
    """The chat message of one alert event: what holds, where the account stands, and a Snooze button;
    `driver` names what drove a spend spike (e.g. "gpt-4o output: $41.20 today, 7-day median $6.10")."""
    title, text = _alert_words(event, view)
    if driver:
        text = f"{text} {driver}" if text else driver
    actions = (
        ()
        if event.kind is AlertKind.RECOVERED
        else (Action("snooze", f"Snooze {event.account} 24h", event.account, "24h"),)
    )
    return Message(
        title=title,
        summary=title,
        severity=event.severity,
        sections=(section(view),),
        text=text,
        footer=f"rule: {event.rule.value}" + (f" · as of {time_text(view.fetched_at)}" if view.fetched_at else ""),
        actions=actions,
        kind="recovery" if event.kind is AlertKind.RECOVERED else "alert",
        as_of=_oldest([view]),
    )


def alert_title(event: AlertEvent, view: AccountView) -> str:
    """The one-line title of an alert event (also its notification text)."""
    return _alert_words(event, view)[0]


def _alert_words(event: AlertEvent, view: AccountView) -> tuple[str, str]:
    # The title says what holds and the account's section says where it stands (balance, spend, status),
    # so the text adds only what neither says: how it came to that, or what failed.
    recovered = event.kind is AlertKind.RECOVERED
    if event.rule is Rule.SOURCE:
        if recovered:
            return f"{view.name}: billing source works again", f"{view.name} answered normally again."
        description = condition_text(event.condition)
        return (
            f"{view.name}: billing source failing",
            f"{description}: {view.error or 'no answer'}. Balances shown may be out of date.",
        )
    if recovered:
        return f"{view.name}: {event.rule.value} alert recovered", f"{view.name} is back to normal."
    prefix = "Reminder: " if event.kind is AlertKind.REMINDER else ""
    text = ""
    if event.rule is Rule.RUNWAY and view.run_out:
        text = f"At {view.burn_rate.format() if view.burn_rate else '?'}/day it runs out around {view.run_out}."
    if event.rule is Rule.FORECAST and view.projected_month is not None:
        text = f"Projected month end: {view.projected_month.format()}."
    if event.rule is Rule.BUDGET and view.spent_month is not None and view.monthly_budget is not None:
        text = f"Spent {view.spent_month.format()} of {view.monthly_budget.format()} this month (UTC)."
    return f"{prefix}{view.name}: {condition_text(event.condition)}", text
