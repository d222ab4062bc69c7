"""Where messages go: channels from the TOML file and from `subscribe` commands."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from pydantic import SecretStr

from bot.models import Severity

if TYPE_CHECKING:
    from bot.store import Subscription

# The platforms creditbot ships adapters for; the composition root (`bot.app`) may register more.
BUILT_IN_PLATFORMS = ("console", "slack", "discord")


@dataclass(frozen=True)
class Channel:
    """One destination with its summary schedule, alert level, mention and quiet hours."""

    platform: str
    id: str
    accounts: tuple[str, ...] = ("*",)
    daily_summary: time | None = time(9, 0)
    timezone: str = "UTC"
    alerts: Severity | None = Severity.WARNING  # None: no alerts here
    mention: str | None = None
    quiet_hours: tuple[time, time] | None = None
    source: str = "creditbot.toml"
    # Push-only platforms (apprise, webhook): where to deliver and the signing secret; kept out of the repr.
    url: SecretStr | None = field(default=None, repr=False)
    secret: SecretStr | None = field(default=None, repr=False)

    @property
    def key(self) -> str:
        """`platform:id`, unique per channel."""
        return f"{self.platform}:{self.id}"

    def includes(self, account: str) -> bool:
        """True when this channel shows the account."""
        return "*" in self.accounts or account in self.accounts

    def visible(self, accounts: Sequence[str]) -> list[str]:
        """The accounts this channel shows, in the given order."""
        return [a for a in accounts if self.includes(a)]

    def wants(self, severity: Severity) -> bool:
        """True when alerts of this severity are delivered here."""
        return self.alerts is not None and severity.rank >= self.alerts.rank

    def quiet_until(self, now: datetime) -> datetime | None:
        """End of the quiet period that `now` falls in (in this channel's timezone), or None."""
        if self.quiet_hours is None:
            return None
        start, end = self.quiet_hours
        local = now.astimezone(ZoneInfo(self.timezone))
        clock = local.time().replace(tzinfo=None)
        inside = start <= clock < end if start < end else (clock >= start or clock < end)
        if not inside:
            return None
        end_day = local.date() if clock < end else local.date() + timedelta(days=1)
        naive_end = datetime.combine(end_day, end)
        return naive_end.replace(tzinfo=ZoneInfo(self.timezone)).astimezone(now.tzinfo)

    def summary_date(self, now: datetime) -> str:
        """The local date whose summary `now` belongs to."""
        return now.astimezone(ZoneInfo(self.timezone)).date().isoformat()

    def last_due(self, now: datetime) -> datetime | None:
        """The most recent time a summary fell due at or before `now` (today's, else yesterday's, both local
        calendar days: across a DST change a day is not 24 hours)."""
        if self.daily_summary is None:
            return None
        local_day = now.astimezone(ZoneInfo(self.timezone)).date()
        today = self._due_on(local_day, now)
        return today if today <= now else self._due_on(local_day - timedelta(days=1), now)

    def summary_due_at(self, now: datetime) -> datetime | None:
        """When today's summary (local date) is due, as an aware datetime; None without a summary."""
        if self.daily_summary is None:
            return None
        return self._due_on(now.astimezone(ZoneInfo(self.timezone)).date(), now)

    def _due_on(self, local_day: date, now: datetime) -> datetime:
        assert self.daily_summary is not None
        zone = ZoneInfo(self.timezone)
        wall = datetime.combine(local_day, self.daily_summary)
        due = wall.replace(tzinfo=zone)
        if due.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall:
            # The time falls in a DST gap (the clocks skip it): the summary is due as the gap ends, the first
            # moment of that day at or after its time.
            due = _gap_end(wall, zone)
        return due.astimezone(now.tzinfo)


def parse_clock(value: str) -> time:
    """`HH:MM` as a time, or ValueError."""
    parts = value.strip().split(":")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"'{value}' is not a time of day like 09:00")
    hour, minute = int(parts[0]), int(parts[1])
    if not (0 <= hour < 24 and 0 <= minute < 60):
        raise ValueError(f"'{value}' is not a time of day like 09:00")
    return time(hour, minute)


def parse_quiet_hours(value: str) -> tuple[time, time]:
    """`22:00-07:00` as a (start, end) pair."""
    if "-" not in value:
        raise ValueError("must look like 22:00-07:00")
    start, end = value.split("-", 1)
    parsed = parse_clock(start), parse_clock(end)
    if parsed[0] == parsed[1]:
        raise ValueError("start and end must differ")
    return parsed


def merge_subscriptions(configured: Sequence[Channel], subscribed: Iterable[Subscription]) -> list[Channel]:
    """Channels from the TOML file plus those subscribed from chat (the TOML file wins on the same id)."""
    channels = list(configured)
    known = {c.key for c in channels}
    for sub in subscribed:
        channel = Channel(
            platform=sub.platform,
            id=sub.channel,
            daily_summary=parse_clock(sub.daily_summary) if sub.daily_summary else None,
            timezone=sub.timezone,
            alerts=None if sub.alerts == "none" else Severity(sub.alerts),
            source=f"subscribed by {sub.created_by}",
        )
        if channel.key not in known:
            channels.append(channel)
    return channels


def _gap_end(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant a DST gap containing the local wall time `wall` ends (the clocks jump past it)."""
    # Read with the offsets before and after the change, the wall time gives two instants; the change lies
    # between them, on a whole minute.
    after = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    before = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    later_offset = wall.replace(tzinfo=zone, fold=1).utcoffset()
    instant = after.replace(second=0, microsecond=0)
    while instant < before and instant.astimezone(zone).utcoffset() != later_offset:
        instant += timedelta(minutes=1)
    return instant
