"""Every provider, every billing-API fault: survived, last good amount shown stale, no money alert, one alert."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from bot.channels import Channel
from bot.config import AppConfig
from bot.handler import Requester
from bot.messages import Message
from bot.models import AlertEvent, ErrorKind, Rule, Severity
from bot.money import Money
from bot.plain import render_text
from bot.providers.base import MAX_ATTEMPTS, MAX_BODY_BYTES
from bot.store import Store
from tests.conftest import make_account, make_runtime, make_settings
from tests.fakes import HTML_PAGE, REVOKED_KEY_ERRORS, FakeProviders, FakeProviderServer, Scripted
from tests.test_runtime import Clock, RecordingAdapter

D = Decimal
PROVIDERS = ("openai", "anthropic", "openrouter", "deepseek", "moonshot", "openai-legacy")
FAILURES_BEFORE_ALERT = 3
POLL_EVERY = timedelta(minutes=5)
ANSWER_DEADLINE = 2.5  # seconds: Slack gives a slash command 3 s
FAST_TIMEOUT = 2.0  # fetch budget where the fault answers at once: roomy for the good polls on a busy machine
SLOW_TIMEOUT = 0.5  # fetch budget where the fault never answers: each such fetch costs all of it
# Requests one fetch makes when nothing is retried (openrouter asks /credits and /key, the legacy dashboard
# grants, usage and subscription, all at once); retries may multiply this by MAX_ATTEMPTS at most.
ENDPOINTS = {"openai": 1, "anthropic": 1, "openrouter": 2, "deepseek": 1, "moonshot": 1, "openai-legacy": 3}
# Last good balance per provider, from the fake's defaults (openai/anthropic show an estimate instead).
GOOD_HEADLINES = {
    "openrouter": "$74.75 left",
    "deepseek": "¥110.00 left",
    "moonshot": "$49.59 left",
    "openai-legacy": "$17.37 left",
}
# Thresholds a good reading clears comfortably, but a balance fabricated from a failure (0) would not.
THRESHOLDS = {"warn_below": D(10), "critical_below": D(2)}
ALERTS_HERE = Channel("slack", "C1", daily_summary=None, alerts=Severity.INFO)  # every alert, info included
MEMBER = Requester("slack", "U1", "C1", is_admin=False)

# A body larger than the client's cap, shaped like JSON so that only its size is wrong.
HUGE_BODY = b'{"data": [' + b"1," * (MAX_BODY_BYTES // 2 + 1024) + b"1]}"
assert len(HUGE_BODY) > MAX_BODY_BYTES

# An error inside a 200, in each provider's own envelope.
ERROR_IN_200: dict[str, Any] = {
    "openai": {
        "error": {
            "message": "The server had an error while processing your request.",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    },
    "anthropic": {"type": "error", "error": {"type": "api_error", "message": "Internal server error"}},
    "openrouter": {"error": {"code": 502, "message": "Provider returned error"}},
    "deepseek": {"error": {"message": "Service is too busy", "type": "server_error", "param": None, "code": None}},
    "moonshot": {"code": 5, "data": None, "scode": "0x5", "status": False},
    # What the dashboard says to a key that is not a session key, sometimes with HTTP 200.
    "openai-legacy": {
        "error": {
            "message": "Your request to GET /dashboard/billing/credit_grants must be made with a session key "
            "(that is, it can only be made from the browser). You made it with the following key type: secret.",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    },
}
# A 200 that lacks the data a reading needs (or states none of it): never a zero.
WITHOUT_DATA: dict[str, Any] = {
    "openai": {"object": "page", "has_more": False, "next_page": None},
    "anthropic": {"has_more": False, "next_page": None},
    "openrouter": {"data": None},
    "deepseek": {"is_available": False, "balance_infos": []},
    "moonshot": {"code": 0, "data": None, "scode": "0x0", "status": True},
    "openai-legacy": {"object": "credit_summary"},
}


@dataclass(frozen=True)
class Fault:
    """One way a billing API fails, as the fake answers it to every request."""

    name: str
    answer: Callable[[str], Scripted]
    kind: ErrorKind  # how the failure must be classified
    shows: str  # regex the error shown beside the stale reading matches: it says what went wrong
    slow: bool = False  # never answers: each fetch costs the whole fetch budget


FAULTS = (
    Fault(
        "http-500",
        lambda _p: Scripted(500, {"error": {"message": "The server had an error"}}),
        ErrorKind.UNAVAILABLE,
        r"HTTP 500\)",
    ),
    Fault(
        "http-502-html",
        lambda _p: Scripted(502, HTML_PAGE, {"Content-Type": "text/html"}),
        ErrorKind.UNAVAILABLE,
        r"HTTP 502\): an HTML error page",
    ),
    Fault(
        "timeout",
        lambda _p: Scripted(200, {"data": []}, delay=SLOW_TIMEOUT + 1),
        ErrorKind.UNAVAILABLE,
        r"did not answer",
        slow=True,
    ),
    Fault(
        "stalled-body",
        lambda _p: Scripted(200, {"data": [{"amount": 1}] * 50}, stall=True),
        ErrorKind.UNAVAILABLE,
        r"did not answer",
        slow=True,
    ),
    Fault(
        "malformed-json",
        lambda _p: Scripted(200, b'{"data": [{"amount": ', {"Content-Type": "application/json"}),
        ErrorKind.BAD_RESPONSE,
        r"malformed JSON",
    ),
    Fault(
        "huge-body",
        lambda _p: Scripted(200, HUGE_BODY, {"Content-Type": "application/json"}),
        ErrorKind.BAD_RESPONSE,
        r"larger than 4 MB",
    ),
    Fault(
        "429-storm",
        lambda _p: Scripted(429, {"error": {"code": 429, "message": "Rate limit exceeded"}}),
        ErrorKind.RATE_LIMITED,
        r"rate limiting us \(HTTP 429\)",
    ),
    Fault(
        "429-retry-after",
        lambda _p: Scripted(429, {"error": {"message": "Rate limit exceeded"}}, {"Retry-After": "30"}),
        ErrorKind.RATE_LIMITED,
        r"asks to retry after 30 s",
    ),
    Fault(
        "revoked-key",
        lambda p: Scripted(401, REVOKED_KEY_ERRORS[p]),
        ErrorKind.AUTH,
        r"refused the key \(HTTP 401\)",
    ),
    Fault(
        "error-in-200",
        lambda p: Scripted(200, ERROR_IN_200[p]),
        ErrorKind.BAD_RESPONSE,
        r"reported an error",
    ),
    Fault(
        "200-without-data",
        lambda p: Scripted(200, WITHOUT_DATA[p]),
        ErrorKind.BAD_RESPONSE,
        r"(?!)",  # every provider words it its own way: see SHOWS
    ),
)


def expected_kind(provider: str, fault: Fault) -> ErrorKind:
    """How the failure must be classified; the one provider-specific case is spelled out."""
    if provider == "openai-legacy" and fault.name == "error-in-200":
        return ErrorKind.AUTH  # the session-key refusal is a refused key whatever the HTTP status
    return fault.kind


# Where a provider words the error its own way (each says what is wrong, never just "error").
SHOWS = {
    ("openai-legacy", "error-in-200"): r"accepts only a browser session key",
    ("moonshot", "error-in-200"): r"moonshot reported an error: status=False code=5",
    ("openai", "200-without-data"): r"openai response is missing 'data'",
    ("anthropic", "200-without-data"): r"anthropic response is missing 'data'",
    ("openrouter", "200-without-data"): r"openrouter credits is missing 'total_credits'",
    ("deepseek", "200-without-data"): r"deepseek returned no balance entries",
    ("moonshot", "200-without-data"): r"moonshot response is missing 'data'",
    ("openai-legacy", "200-without-data"): r"openai-legacy response is missing 'total_available'",
}


def expected_shows(provider: str, fault: Fault) -> str:
    """Regex for the error shown beside the stale reading."""
    return SHOWS.get((provider, fault.name), fault.shows)


@pytest.fixture
def fake() -> Iterator[FakeProviderServer]:
    # This file makes about two thousand requests, up to a dozen at once.
    with FakeProviderServer(FakeProviders(), many_requests=True) as server:
        yield server


def configure(fake: FakeProviderServer, provider: str, today: datetime) -> dict[str, Any]:
    """Account settings under which a good reading of `provider` is healthy: no rule has anything to say."""
    extra: dict[str, Any] = dict(THRESHOLDS)
    if provider in ("openai", "anthropic"):
        # Spend-only: an even $2 a day (no spike, no runway worry) against $500 bought ten days ago.
        days = [today.date() - timedelta(days=n) for n in range(-1, 45)]
        fake.state.openai_daily = {day: D(2) for day in days}
        fake.state.anthropic_daily_cents = {day: D(200) for day in days}
        extra.update(prepaid_credit=Money(D(500), "USD"), prepaid_since=(today - timedelta(days=10)).date())
    return extra


async def no_backoff(_seconds: float) -> None:
    """Retry waits pass at once: their bound is the fetch budget, proven with real time further down."""


def alerts(adapter: RecordingAdapter) -> list[Message]:
    """The alert messages delivered so far (summaries and replies are not alerts)."""
    return [m for _, m in adapter.sent if m.footer.startswith("rule:")]


def only_source(events: list[AlertEvent]) -> list[tuple[str, str]]:
    """The events as (rule, kind), after checking that no money rule spoke."""
    assert all(e.rule is Rule.SOURCE for e in events), f"a failed fetch caused a money alert: {events}"
    return [(e.rule.value, e.kind) for e in events]


async def timed(call: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = await call
    return result, time.monotonic() - started


async def stored_balances(store: Store, account: str) -> list[tuple[bool, str | None]]:
    """(ok, balance) of every stored reading of an account, oldest first."""
    async with store.engine.connect() as connection:
        rows = await connection.execute(
            sa.text("SELECT ok, balance FROM readings WHERE account = :a ORDER BY id"), {"a": account}
        )
        return [(bool(ok), balance) for ok, balance in rows.all()]


def cases() -> list[Any]:
    """Each provider alone under each fault that answers; all providers at once under those that never do
    (concurrently, so the file waits out each fetch budget once instead of six times)."""
    result = []
    for fault in FAULTS:
        if fault.slow:
            result.append(pytest.param(PROVIDERS, fault, id=f"all-providers-{fault.name}"))
        else:
            result += [pytest.param((p,), fault, id=f"{p}-{fault.name}") for p in PROVIDERS]
    return result


def account_name(provider: str) -> str:
    return f"{provider.replace('openai-legacy', 'legacy')}-main"


@pytest.mark.parametrize(("providers", "fault"), cases())
async def test_provider_fault_is_stale_not_zero_and_announced_once(
    tmp_path: Path, fake: FakeProviderServer, store: Store, providers: tuple[str, ...], fault: Fault
) -> None:
    budget = SLOW_TIMEOUT if fault.slow else FAST_TIMEOUT
    # An hour behind the real clock, so that the polls' "now" never passes the fake's (OpenAI refuses a
    # future end_time); the runtime only ever sees this clock.
    # The polls span about 40 minutes, all on one UTC day: a day boundary in between would add a real day's
    # spend to the estimate that the test compares with the first poll's.
    start = datetime.now(UTC) - timedelta(hours=1)
    clock = Clock(min(start, datetime.combine(start.date(), dt_time(23, 10), UTC)))
    names = {p: account_name(p) for p in providers}
    accounts = tuple(
        make_account(names[p], p, fake.base_url(p), **configure(fake, p, clock.now)) for p in providers
    )
    settings = make_settings(
        tmp_path,
        fetch_timeout=budget,
        failures_before_alert=FAILURES_BEFORE_ALERT,
        per_host_concurrency=16,  # every provider of the fake shares one host: none may wait for a slot
        # These polls count each provider's requests: the breakdowns' own, after a poll, are tested apart
        # (tests/test_breakdown_service.py).
        breakdowns=False,
    )
    config = AppConfig(settings, accounts, "test", channels=(ALERTS_HERE,))
    adapter = RecordingAdapter()

    def alerts_of(provider: str) -> list[Message]:
        return [m for m in alerts(adapter) if m.title.startswith(f"{names[provider]}:")]

    # A client that would wait far longer than the budget: the runtime's own deadline must hold.
    async with httpx.AsyncClient(timeout=10) as http:
        runtime = make_runtime(config, store, http, [adapter], clock=clock)
        runtime.monitor._sleep = no_backoff  # type: ignore[method-assign]

        # A good first poll: nothing to say, and /credits shows each healthy balance.
        assert await runtime.poll() == []
        good = {s.account: s for s in (await runtime.handler.handle("", MEMBER)).message.sections}
        for provider in providers:
            headline = good[names[provider]].headline
            if provider in GOOD_HEADLINES:
                assert headline == GOOD_HEADLINES[provider]
            else:  # $500 bought minus ten days or so at $2: an estimate well above zero
                assert re.fullmatch(r"\$4\d\d\.00 left \(est\.\)", headline), headline
            assert good[names[provider]].note is None

        alert_after = {
            p: 1 if expected_kind(p, fault) is ErrorKind.AUTH else FAILURES_BEFORE_ALERT for p in providers
        }
        for provider in providers:
            fake.state.fail(provider, fault.answer(provider))
        for failure in range(1, FAILURES_BEFORE_ALERT + 1):
            clock.now += POLL_EVERY
            before = {p: fake.state.count(p) for p in providers}
            events, took = await timed(runtime.poll())  # never raises
            assert took < budget + 1.5, f"poll {failure} took {took:.2f}s"
            only_source(events)
            for provider in providers:
                # Retries are bounded: never more than MAX_ATTEMPTS tries of each endpoint.
                assert fake.state.count(provider) - before[provider] <= MAX_ATTEMPTS * ENDPOINTS[provider]
                if fault.name == "429-retry-after":
                    # Retry-After beyond the budget: one try of each endpoint, then a clear error, no waiting.
                    assert fake.state.count(provider) - before[provider] == ENDPOINTS[provider]
                fired = [(e.rule, e.kind) for e in events if e.account == names[provider]]
                due = failure == alert_after[provider]
                assert fired == ([(Rule.SOURCE, "fired")] if due else []), f"{provider} after failure {failure}"
                assert len(alerts_of(provider)) == int(failure >= alert_after[provider]), (
                    f"after failure {failure}"
                )

        # Each failure is classified and explained, and stored as a failure: no amount, and no zero anywhere.
        latest = await store.readings.latest_readings(names.values())
        for provider in providers:
            readings = latest[names[provider]]
            assert readings.latest is not None
            assert readings.latest_good is not None
            assert readings.latest.report is None
            assert readings.latest.error_kind is expected_kind(provider, fault), readings.latest.error
            assert re.search(expected_shows(provider, fault), readings.latest.error or ""), readings.latest.error
            rows = await stored_balances(store, names[provider])
            assert [ok for ok, _ in rows].count(False) == FAILURES_BEFORE_ALERT
            assert all(balance is None for ok, balance in rows if not ok)
            assert all(D(balance) != 0 for ok, balance in rows if ok and balance is not None)

        # /credits during the fault (a live fetch, the cache being off): in time, each last good amount, stale.
        clock.now += timedelta(minutes=1)
        reply, took = await timed(runtime.handler.handle("", MEMBER))
        assert took < ANSWER_DEADLINE, f"/credits took {took:.2f}s"
        text = render_text(reply.message)
        assert not re.search(r"[$¥]0\.00 left", text)
        shown = {s.account: s for s in reply.message.sections}
        for provider in providers:
            name = names[provider]
            section = shown[name]
            assert section.headline == good[name].headline
            assert dict((f.label, f.value) for f in section.fields)["Status"].endswith("(stale)")
            assert section.note is not None
            assert section.note.startswith("stale: ")
            assert re.search(expected_shows(provider, fault), section.note)
            assert good[name].headline in text
        assert "stale: " + ", ".join(names.values()) in reply.message.footer
        # Still failing: no second alert, and asking did not alert either.
        clock.now += POLL_EVERY
        assert await runtime.poll() == []
        for provider in providers:
            (failing,) = alerts_of(provider)
            assert failing.title == f"{names[provider]}: billing source failing"
            assert failing.footer.startswith("rule: source")
            refused = alert_after[provider] == 1
            assert failing.severity is (Severity.CRITICAL if refused else Severity.WARNING)
            # The alert, too, shows the last good amount.
            assert failing.sections[0].headline == good[names[provider]].headline

        # Recovery: one message per account, then silence.
        for provider in providers:
            fake.state.fail(provider, None)
        clock.now += POLL_EVERY
        events = await runtime.poll()
        assert sorted(only_source(events)) == [("source", "recovered")] * len(providers)
        for _ in range(2):
            clock.now += POLL_EVERY
            assert await runtime.poll() == []
        for provider in providers:
            assert [m.title for m in alerts_of(provider)] == [
                f"{names[provider]}: billing source failing",
                f"{names[provider]}: billing source works again",
            ]
        assert len(alerts(adapter)) == 2 * len(providers)
        fresh = {s.account: s for s in (await runtime.handler.handle("", MEMBER)).message.sections}
        for name, section in fresh.items():
            assert section.headline == good[name].headline
            assert section.note is None


@pytest.mark.parametrize("retry_after", [None, "1"], ids=["no-retry-after", "retry-after-1s"])
async def test_429_storm_ends_within_the_fetch_budget_in_real_time(
    tmp_path: Path, fake: FakeProviderServer, store: Store, retry_after: str | None
) -> None:
    """Real back-off: every provider at once under a 429 storm, the poll still ends within its budget."""
    budget = 1.5
    # The polls span about 40 minutes, all on one UTC day: a day boundary in between would add a real day's
    # spend to the estimate that the test compares with the first poll's.
    start = datetime.now(UTC) - timedelta(hours=1)
    clock = Clock(min(start, datetime.combine(start.date(), dt_time(23, 10), UTC)))
    accounts = tuple(
        make_account(f"a{i}", p, fake.base_url(p), **configure(fake, p, clock.now))
        for i, p in enumerate(PROVIDERS)
    )
    settings = make_settings(
        tmp_path,
        fetch_timeout=budget,
        failures_before_alert=FAILURES_BEFORE_ALERT,
        per_host_concurrency=16,
        breakdowns=False,  # as above: the spend fetch's requests are counted
    )
    config = AppConfig(settings, accounts, "test", channels=(ALERTS_HERE,))
    adapter = RecordingAdapter()
    async with httpx.AsyncClient(timeout=10) as http:
        runtime = make_runtime(config, store, http, [adapter], clock=clock)
        await runtime.poll()
        headers = {"Retry-After": retry_after} if retry_after else {}
        for provider in PROVIDERS:
            fake.state.fail(provider, Scripted(429, {"error": {"message": "Rate limit exceeded"}}, headers))
        before = {p: fake.state.count(p) for p in PROVIDERS}
        clock.now += POLL_EVERY
        events, took = await timed(runtime.poll())
    assert took < budget + 1.0
    assert events == []  # one failure is not yet an outage
    latest = await store.readings.latest_readings(a.name for a in accounts)
    for account in accounts:
        reading = latest[account.name].latest
        assert reading is not None
        assert reading.error_kind is ErrorKind.RATE_LIMITED, reading.error
        tries = fake.state.count(account.provider) - before[account.provider]
        # Retry-After 1 s is honoured once; the next wait would overrun the budget, so the fetch gives up.
        assert tries <= (2 if retry_after else MAX_ATTEMPTS) * ENDPOINTS[account.provider]
        if retry_after:
            assert tries == 2 * ENDPOINTS[account.provider]
            assert "asks to retry after 1 s" in (reading.error or "")


@pytest.mark.parametrize(
    ("provider", "page"),
    [
        pytest.param("openai", {"object": "page", "data": [], "has_more": False, "next_page": None}, id="openai"),
        pytest.param("anthropic", {"data": [], "has_more": False, "next_page": None}, id="anthropic"),
    ],
)
async def test_spend_page_without_any_bucket_is_a_failure_not_zero_spend(
    tmp_path: Path, fake: FakeProviderServer, store: Store, provider: str, page: dict[str, Any]
) -> None:
    """Both cost APIs answer one bucket per day, empty days included: a page with none is broken, and must
    not be read as nothing spent (which would raise the estimated balance)."""
    # The polls span about 40 minutes, all on one UTC day: a day boundary in between would add a real day's
    # spend to the estimate that the test compares with the first poll's.
    start = datetime.now(UTC) - timedelta(hours=1)
    clock = Clock(min(start, datetime.combine(start.date(), dt_time(23, 10), UTC)))
    account = make_account("spend", provider, fake.base_url(provider), **configure(fake, provider, clock.now))
    config = AppConfig(make_settings(tmp_path), (account,), "test", channels=(ALERTS_HERE,))
    async with httpx.AsyncClient(timeout=10) as http:
        runtime = make_runtime(config, store, http, [RecordingAdapter()], clock=clock)
        await runtime.poll()
        good = (await runtime.handler.handle("", MEMBER)).message.sections[0]
        fake.state.fail(provider, Scripted(200, page))
        clock.now += POLL_EVERY
        await runtime.poll()
        shown = (await runtime.handler.handle("", MEMBER)).message.sections[0]
    assert shown.headline == good.headline  # not a higher estimate, as if nothing had been spent
    assert re.fullmatch(rf"stale: {provider} returned no cost buckets for .+", shown.note or "")
