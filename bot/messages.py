"""The platform-neutral message model and its builders; adapters only render these."""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.models import BalanceSource, Severity, Status
from bot.money import Money
from bot.monitor import AccountView

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_LINE_SEPARATORS = {"\u2028": "\n", "\u2029": "\n", "\t": " ", "\r": ""}


def printable(text: str) -> str:
    """Text without control, format (bidi overrides, zero-width) or surrogate characters; tabs become spaces
    and Unicode line separators newlines. Data can then neither colour a terminal (ANSI escapes), reorder
    what follows it (U+202E) nor hide characters, and always encodes as UTF-8."""
    if text.isprintable():
        return text
    kept = []
    for char in text:
        if char == "\n":
            kept.append(char)
        elif char in _LINE_SEPARATORS:
            kept.append(_LINE_SEPARATORS[char])
        elif unicodedata.category(char) not in ("Cc", "Cf", "Cs"):
            kept.append(char)
    return "".join(kept)


def safe_file_name(name: str, default: str = "credits.png") -> str:
    """A bare file name of letters, digits, '.', '-' and '_' that cannot leave a directory (no '/', no
    leading dot, so no '..'), at most 100 characters; `default` when nothing usable is left."""
    base = _UNSAFE_NAME.sub("-", name.replace("\\", "/").rsplit("/", 1)[-1])[-100:].lstrip(".-")
    return base or default


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
    mentions: tuple[str, ...] = ()  # platform syntax, e.g. "@here", "<@U123>"
    actions: tuple[Action, ...] = ()

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
                }
                for s in self.sections
            ],
            "text": self.text,
            "footer": self.footer,
            "chart": base64.b64encode(self.chart).decode() if self.chart else None,
            "chart_name": self.chart_name,
            "mentions": list(self.mentions),
            "actions": [a.__dict__ for a in self.actions],
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
                )
                for s in data["sections"]
            ),
            text=data["text"],
            footer=data["footer"],
            chart=base64.b64decode(data["chart"]) if data.get("chart") else None,
            chart_name=data.get("chart_name", "credits.png"),
            mentions=tuple(data["mentions"]),
            actions=tuple(Action(**a) for a in data["actions"]),
        )


def money_text(value: Money | None) -> str:
    """`$12.34`, or an em dash when unknown."""
    return "—" if value is None else value.format()


def days_text(value: Decimal | None) -> str:
    """Days left with one decimal, or a dash when the balance is not running out."""
    return "—" if value is None else f"{value:.1f}"


def time_text(when: datetime) -> str:
    """`2026-11-25 09:00 UTC`."""
    return when.strftime("%Y-%m-%d %H:%M UTC")


def headline(view: AccountView) -> str:
    """One phrase saying where an account stands."""
    if view.balance is not None:
        suffix = {BalanceSource.ESTIMATED: " (estimated)", BalanceSource.KEY_LIMIT: " (key limit)"}.get(
            view.balance_source or BalanceSource.REPORTED, ""
        )
        return f"{view.balance.format()} left{suffix}"
    if view.spent_month is not None:
        return f"{view.spent_month.format()} spent this month"
    return "no data" if view.error else "no balance reported"


def section(view: AccountView, change: Money | None = None) -> Section:
    """The section for one account, with the fields every platform shows."""
    fields = [Field("Balance" if view.balance is not None else "Spend", headline(view))]
    for label, value in (
        ("Other currencies", ", ".join(m.format() for m in view.balances if view.balance and m != view.balance)),
        ("Today", money_text(view.spent_today) if view.spent_today is not None else ""),
        ("Month to date", money_text(view.spent_month) if view.spent_month is not None else ""),
        ("Budget", money_text(view.monthly_budget) if view.monthly_budget is not None else ""),
        ("Burn/day", money_text(view.burn_rate) if view.burn_rate is not None else ""),
        ("Days left", days_text(view.days_left) if view.days_left is not None else ""),
        ("Change", _signed(change) if change is not None else ""),
    ):
        if value:
            fields.append(Field(label, value))
    fields.append(Field("Status", view.status.value + (" (stale)" if view.stale else "")))
    note = None
    if view.error:
        note = f"stale: {view.error}" if view.stale else view.error
    return Section(view.name, view.account.provider, view.status.value, headline(view), tuple(fields), note)


def _signed(change: Money) -> str:
    sign = "+" if change.amount > 0 else ""
    return f"{sign}{change.format()}"


def footer(views: Sequence[AccountView], now: datetime) -> str:
    """ "as of" the oldest reading shown, saying so when some are stale."""
    times = [v.fetched_at for v in views if v.fetched_at is not None]
    text = f"as of {time_text(min(times))}" if times else f"no readings yet ({time_text(now)})"
    stale = [v.name for v in views if v.stale]
    if stale:
        text += f" · stale: {', '.join(stale)}"
    return text


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
        summary=summary if len(summary) <= 300 else summary[:297] + "...",
        severity=worst_severity(views),
        sections=tuple(section(v) for v in views),
        footer=footer(views, now),
        chart=chart,
        actions=tuple(actions),
    )


def summary_message(
    views: Sequence[AccountView],
    now: datetime,
    previous: Mapping[str, Money],
    open_alerts: Mapping[str, Sequence[str]],
    chart: bytes | None,
) -> Message:
    """The daily summary: every account, change since the previous summary, open alerts, a chart."""
    sections = []
    for view in views:
        before = previous.get(view.name)
        now_value = view.balance if view.balance is not None else view.spent_month
        change = None
        if before is not None and now_value is not None and before.currency == now_value.currency:
            change = now_value - before
        base = section(view, change)
        alerts = open_alerts.get(view.name)
        if alerts:
            base = Section(
                base.account,
                base.provider,
                base.status,
                base.headline,
                (*base.fields, Field("Open alerts", ", ".join(alerts))),
                base.note,
            )
        sections.append(base)
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
    )


def text_message(title: str, text: str, severity: Severity = Severity.INFO) -> Message:
    """A plain reply such as a confirmation, help or a refusal."""
    first = text.splitlines()[0] if text else title
    return Message(title=title, summary=first[:300], severity=severity, text=text)


def render_text(message: Message) -> str:
    """Plain text rendering, for the console and the CLI."""
    lines = []
    if message.mentions:
        lines.append(" ".join(message.mentions))
    marker = {Severity.CRITICAL: "[CRITICAL] ", Severity.WARNING: "[WARNING] "}.get(message.severity, "")
    lines.append(f"{marker}{message.title}")
    lines.append("=" * len(lines[-1]))
    if message.text:
        lines.append(message.text)
    for item in message.sections:
        lines.append(f"{item.account} ({item.provider}): {item.headline} [{item.status}]")
        details = [f"{f.label}: {f.value}" for f in item.fields if f.label not in ("Balance", "Spend", "Status")]
        if details:
            lines.append("  " + " · ".join(details))
        if item.note:
            lines.append(f"  {item.note}")
    if message.footer:
        lines.append(message.footer)
    # The console is a terminal: no escape sequence or bidi override from data may reach it.
    return printable("\n".join(lines))
