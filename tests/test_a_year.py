"""A year in a test: the real runtime with an injected clock runs 400 days without sleeping, against in-process
providers (`httpx.MockTransport`) whose balance and spend follow known formulas. Polls every 6 hours, hourly
within 36 hours of each month end, DST change and restart; summaries fire when the scheduler's own triggers
say; the bot restarts (with downtime) across every DST change. Every summary's numbers, every alert, and
exactly one summary per channel per local day are checked."""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from apscheduler.triggers.cron import CronTrigger

from bot.adapter import BaseAdapter
from bot.channels import Channel
from bot.config import AppConfig
from bot.messages import Message
from bot.models import Severity
from bot.money import Money
from bot.runtime import Runtime
from bot.store import Store
from tests.conftest import make_account, make_runtime, make_settings

START = datetime(2025, 1, 15, tzinfo=UTC)
DAYS = int(os.environ.get("YEAR_DAYS", "400"))
END = START + timedelta(days=DAYS)
CHANNELS = (
    # Local times that the DST changes skip or repeat: each still gets one summary a day.
    Channel("console", "london", daily_summary=time(1, 30), timezone="Europe/London", alerts=Severity.INFO),
    Channel("console", "newyork", daily_summary=time(2, 30), timezone="America/New_York", alerts=None),
    Channel("console", "lordhowe", daily_summary=time(2, 15), timezone="Australia/Lord_Howe", alerts=None),
)
DST_CHANGES = [
    datetime(2025, 3, 9, 7, tzinfo=UTC),  # New York springs forward
    datetime(2025, 3, 30, 1, tzinfo=UTC),  # London springs forward
    datetime(2025, 4, 5, 15, tzinfo=UTC),  # Lord Howe falls back half an hour
    datetime(2025, 10, 4, 15, 30, tzinfo=UTC),  # Lord Howe springs forward half an hour
    datetime(2025, 10, 26, 1, tzinfo=UTC),  # London falls back
    datetime(2025, 11, 2, 6, tzinfo=UTC),  # New York falls back
]
RESTART_DOWNTIME = timedelta(hours=5)  # each restart starts 5 hours before a DST change and lasts 5 hours
TOP_UP_DAY = date(2025, 3, 26)  # the spender's estimate is negative before it
NO_SPEND_DAY = date(2025, 6, 1)  # a month that starts with no spend
WALLET_TOP_UPS = (45, 115)  # days after START at which the wallet gets ¥400
USD_APPEARS = START + timedelta(days=200)  # the wallet's answer also lists USD from then on


# --- the providers' formulas --------------------------------------------------------------------------------


def spend(day: date) -> Decimal:
    """The spender's (OpenAI) cost on one UTC day."""
    if day == NO_SPEND_DAY:
        return Decimal(0)
    return Decimal("2.00") if day < date(2025, 9, 1) else Decimal("2.50")


def spend_so_far(now: datetime) -> Decimal:
    """Today's cost at `now`, as the provider's bucket holds it (cents, rounded down)."""
    elapsed = Decimal((now - datetime.combine(now.date(), time(0), tzinfo=UTC)).total_seconds()) / 86400
    return (spend(now.date()) * elapsed).quantize(Decimal("0.01"), rounding="ROUND_DOWN")


def wallet(now: datetime) -> Decimal:
    """The wallet's (DeepSeek) balance in CNY: ¥6 a day, ¥400 top-ups, ¥1 a day after the second top-up."""
    days = Decimal((now - START).total_seconds()) / 86400
    first, second = WALLET_TOP_UPS
    if days < first:
        value = 300 - 6 * days
    elif days < second:
        value = 700 - 6 * days
    else:
        value = 700 - 6 * second + 400 - (days - second)
    return value.quantize(Decimal("0.01"))


@dataclass
class Providers:
    """The in-process OpenAI and DeepSeek, answering for the injected clock."""

    clock: Any
    wallet_reads: list[datetime] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        now = self.clock()
        if request.url.path.endswith("/user/balance"):
            self.wallet_reads.append(now)
            infos = [
                {
                    "currency": "CNY",
                    "total_balance": str(wallet(now)),
                    "granted_balance": "0",
                    "topped_up_balance": "0",
                }
            ]
            if now >= USD_APPEARS:
                infos.append(
                    {"currency": "USD", "total_balance": "3.00", "granted_balance": "0", "topped_up_balance": "3"}
                )
            return httpx.Response(200, json={"is_available": True, "balance_infos": infos})
        start = int(request.url.params["start_time"])
        end = int(request.url.params["end_time"])
        assert end <= now.timestamp(), "asked for the future"
        buckets = []
        for bucket_start in range(start - start % 86400, end, 86400):
            day = datetime.fromtimestamp(bucket_start, UTC).date()
            value = spend_so_far(now) if day == now.date() else spend(day)
            results = [{"amount": {"value": str(value), "currency": "usd"}}] if value else []
            buckets.append(
                {
                    "object": "bucket",
                    "start_time": bucket_start,
                    "end_time": bucket_start + 86400,
                    "results": results,
                }
            )
        return httpx.Response(200, json={"object": "page", "data": buckets, "has_more": False, "next_page": None})


class Inbox(BaseAdapter):
    """The console as a test sees it: every message with the time it was delivered."""

    platform = "console"

    def __init__(self, clock: Any) -> None:
        super().__init__()
        self.clock = clock
        self.messages: list[tuple[datetime, str, Message]] = []

    async def send(self, channel_id: str, message: Message, *, key: str | None = None) -> None:
        self.messages.append((self.clock(), channel_id, message))


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


# --- the run ------------------------------------------------------------------------------------------------


@cache
def poll_times() -> tuple[datetime, ...]:
    """Every 6 hours, and hourly within 36 hours of each month end, DST change and restart."""
    dense: list[datetime] = []
    month = START.replace(day=1)
    while month < END:
        month = (month + timedelta(days=32)).replace(day=1)
        dense.append(month)
    dense += DST_CHANGES
    times = set()
    at = START
    while at < END:
        near = any(abs(at - event) <= timedelta(hours=36) for event in dense)
        times.add(at)
        at += timedelta(hours=1 if near else 6)
    downtimes = [(change - RESTART_DOWNTIME, change) for change in DST_CHANGES]
    return tuple(sorted(t for t in times if not any(down <= t < up for down, up in downtimes)))


def summary_triggers() -> dict[str, CronTrigger]:
    """The triggers `Runtime.reschedule` gives each channel's summary job."""
    return {
        c.id: CronTrigger(hour=c.daily_summary.hour, minute=c.daily_summary.minute, timezone=ZoneInfo(c.timezone))
        for c in CHANNELS
        if c.daily_summary is not None
    }


async def run_the_year(tmp_path: Path) -> tuple[Inbox, Providers]:
    clock = Clock(START)
    providers = Providers(clock)
    inbox = Inbox(clock)
    spender = make_account(
        "spender", "openai", "http://openai.test", warn_below=Decimal(20), critical_below=Decimal(5)
    )
    spender = replace(spender, prepaid_credit=Money(Decimal(100), "USD"), prepaid_since=START.date())
    wallet_account = make_account(
        "wallet", "deepseek", "http://deepseek.test", warn_below=Decimal(100), critical_below=Decimal(20)
    )
    settings = make_settings(tmp_path, CREDITBOT_RUNWAY_WARN_DAYS=0, CREDITBOT_RETENTION_DAYS=3660)
    config = AppConfig(settings, (spender, wallet_account), "a year", channels=CHANNELS)
    store = await Store.open(settings.database_url)
    triggers = summary_triggers()
    try:
        async with httpx.AsyncClient(transport=httpx.MockTransport(providers)) as http:

            def start(at: datetime) -> tuple[Runtime, dict[str, datetime]]:
                runtime = make_runtime(config, store, http, [inbox], clock=clock)
                runtime.leading = True
                # As the scheduler does at start: each job's next fire time from now on.
                return runtime, {cid: trigger.get_next_fire_time(None, at) for cid, trigger in triggers.items()}

            runtime, next_fire = start(START)

            async def fire_until(limit: datetime) -> None:
                # Summaries fire at their triggers' times, between polls.
                while (due := min(next_fire.items(), key=lambda item: item[1]))[1] <= limit:
                    channel_id, fire = due
                    clock.now = fire.astimezone(UTC)
                    await runtime.send_summaries([c for c in CHANNELS if c.id == channel_id])
                    # As the scheduler does after a run: the next fire time after this one, "now" being a moment
                    # later in real (UTC) time; local wall-clock arithmetic would step back across the autumn
                    # change's repeated hour.
                    later = fire.astimezone(UTC) + timedelta(seconds=1)
                    next_fire[channel_id] = triggers[channel_id].get_next_fire_time(fire, later)

            topped_up = False
            downtimes = {change - RESTART_DOWNTIME: change for change in DST_CHANGES}
            for at in poll_times():
                for down, up in sorted(downtimes.items()):
                    if down <= at:  # the bot stops at `down` and starts again at `up`
                        await fire_until(down - timedelta(seconds=1))
                        del downtimes[down]
                        runtime, next_fire = start(up)
                await fire_until(at)
                clock.now = at
                if not topped_up and at.date() >= TOP_UP_DAY:
                    topped_up = True
                    await runtime.monitor.record_topup(spender, Money(Decimal(1000), "USD"), TOP_UP_DAY, "cli")
                await runtime.poll()
    finally:
        await store.close()
    return inbox, providers


# --- what must hold -----------------------------------------------------------------------------------------


def money(value: Decimal, symbol: str = "$") -> str:
    return f"-{symbol}{abs(value):,.2f}" if value < 0 else f"{symbol}{value:,.2f}"


def signed(value: Decimal, symbol: str) -> str:
    return ("+" if value > 0 else "") + money(value, symbol)


def expected_spender(now: datetime, zone: str) -> dict[str, str]:
    """The spender's fields in a summary at `now`: the provider has spend for every day, the ledger (and so the
    estimate) starts at START."""
    today = now.date()
    # The top-up is recorded (with its day) at the first poll on that day.
    topped_up_at = min(t for t in poll_times() if t.date() >= TOP_UP_DAY)
    bought = Decimal(100) + (Decimal(1000) if now >= topped_up_at else 0)
    so_far = spend_so_far(now)
    since_ledger = [START.date() + timedelta(days=i) for i in range((today - START.date()).days)]
    balance = bought - sum((spend(d) for d in since_ledger), Decimal(0)) - so_far
    month_days = [today.replace(day=1) + timedelta(days=i) for i in range(today.day - 1)]
    fields = {"Balance": f"{money(balance)} left (est.)"}
    fields["Today (UTC)"] = money(so_far) if so_far else "not reported yet"
    if month_days or so_far:
        text = money(sum((spend(d) for d in month_days), Decimal(0)) + so_far)
        if not so_far:
            text += f" (through {today - timedelta(days=1):%b %d})"
        if now.astimezone(ZoneInfo(zone)).strftime("%Y-%m") != now.strftime("%Y-%m"):
            text += f" ({now:%B}, UTC)"
        fields["Month to date (UTC)"] = text
    burn = sum((spend(today - timedelta(days=i)) for i in range(1, 8)), Decimal(0)) / 7
    fields["Burn/day"] = money(burn)
    fields["Days left"] = "0.0" if balance <= 0 else f"{balance / burn:.1f}"
    yesterday, before = today - timedelta(days=1), today - timedelta(days=2)
    fields["Yesterday (UTC)"] = (
        f"{money(spend(yesterday))} ({signed(spend(yesterday) - spend(before), '$')} on the day before)"
    )
    fields["Status"] = "critical" if balance < 5 else ("warning" if balance < 20 else "ok")
    return fields


async def test_a_year_of_summaries_alerts_and_restarts(tmp_path: Path) -> None:
    inbox, providers = await run_the_year(tmp_path)
    summaries = [(at, cid, m) for at, cid, m in inbox.messages if m.title == "Daily LLM credits summary"]
    alerts = [(at, cid, m) for at, cid, m in inbox.messages if m.title != "Daily LLM credits summary"]

    # Exactly one summary per channel per local day, every day of the run.
    per_day = Counter(
        (cid, at.astimezone(ZoneInfo(c.timezone)).date())
        for at, cid, _ in summaries
        for c in CHANNELS
        if c.id == cid
    )
    assert max(per_day.values()) == 1, [k for k, n in per_day.items() if n > 1]
    for channel in CHANNELS:
        zone = ZoneInfo(channel.timezone)
        first, last = (
            (START + timedelta(days=1)).astimezone(zone).date(),
            (END - timedelta(days=1)).astimezone(zone).date(),
        )
        missing = [
            first + timedelta(days=i)
            for i in range((last - first).days)
            if (channel.id, first + timedelta(days=i)) not in per_day
        ]
        assert missing == [], (channel.id, missing)

    # Every summary's numbers, from the formulas.
    problems: list[str] = []
    for at, cid, message in summaries:
        zone = next(c.timezone for c in CHANNELS if c.id == cid)
        sections = {s.account: {f.label: f.value for f in s.fields} for s in message.sections}
        wanted = expected_spender(at, zone)
        got = {k: v for k, v in sections["spender"].items() if k in wanted}
        if got != wanted:
            problems.append(f"{cid} {at:%Y-%m-%d %H:%M}: spender {json.dumps(got)} != {json.dumps(wanted)}")
        wallet_fields = sections["wallet"]
        if wallet_fields["Balance"] != f"{money(wallet(at), '¥')} left":
            problems.append(f"{cid} {at}: wallet balance {wallet_fields['Balance']}")
        target = at - timedelta(days=1)
        near = [r for r in providers.wallet_reads if abs(r - target) <= timedelta(hours=6)]
        if near:
            closest = min(abs(r - target) for r in near)
            # Two readings as close (one before, one after) may both be the one compared with.
            changes = {
                f"{signed(wallet(at) - wallet(r), '¥')} in 24 h" for r in near if abs(r - target) == closest
            }
            if wallet_fields.get("Change") not in changes:
                problems.append(f"{cid} {at}: wallet change {wallet_fields.get('Change')} not in {changes}")
        days = Decimal((at - START).total_seconds()) / 86400
        steady = all(abs(days - top) > 8 for top in WALLET_TOP_UPS) and days > 8
        if steady:
            rate = Decimal(6) if days < WALLET_TOP_UPS[1] else Decimal(1)
            shown = Decimal(wallet_fields["Days left"])
            # Burn comes from a week of balances read at the poll times, each rounded to cents: close to the
            # formula's rate, not equal to it.
            expected_days = wallet(at) / rate
            if abs(shown - expected_days) > max(Decimal("0.2"), expected_days / 200):
                problems.append(f"{cid} {at}: wallet days left {shown} != {wallet(at) / rate:.1f}")
        # The wallet stays in CNY when USD appears beside it.
        other = wallet_fields.get("Other currencies")
        if not wallet_fields["Balance"].startswith("¥") or (other != "$3.00" if at >= USD_APPEARS else other):
            problems.append(f"{cid} {at}: wallet currency {wallet_fields}")
    assert problems == [], "\n".join(problems[:20]) + f"\n({len(problems)} problems)"

    # Every alert, once per episode, in order: the spender's estimate falls to below zero and recovers with the
    # top-up; the wallet dips below ¥100, recovers, then falls below ¥100 and ¥20 before its second top-up.
    by_account: dict[str, list[str]] = defaultdict(list)
    for _at, cid, message in alerts:
        assert cid == "london"  # the only channel that takes alerts
        by_account[message.sections[0].account].append(message.title)
    assert by_account["spender"] == [
        "spender: below $20.00",
        "spender: below $5.00",
        "spender: balance alert recovered",
    ]
    assert by_account["wallet"] == [
        "wallet: below ¥100.00",
        "wallet: balance alert recovered",
        "wallet: below ¥100.00",
        "wallet: below ¥20.00",
        "wallet: balance alert recovered",
    ]
