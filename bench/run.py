"""Benchmarks against loopback fakes, each beside the naive way (sequential, no cache, no pacing).

`python -m bench.run` writes bench/results/report.json and report.md; `--smoke` runs a seconds-long version
(used by `make test` to keep the runner working). Scenarios so far: /credits latency over Slack's HTTP
mode, polling at scale, a daily summary fanned out to many Slack channels, start-up weight, a year of
history beside a day of it (`bench/history.py`), and `breakdown` over 20 accounts and 90 days
(`bench/breakdown.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import time as dt_time
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from bench.breakdown import breakdown_markdown, scenario_breakdown
from bench.history import history_markdown, scenario_history
from bot.config import Account, AppConfig, Settings
from bot.httpclient import provider_client
from bot.monitor import Monitor
from bot.providers import PROVIDERS
from bot.store import Store

RESULTS = Path(__file__).with_name("results")


def summary(samples: list[float]) -> dict[str, float]:
    """Median and spread of repeated runs."""
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "runs": len(samples)}


class FakeProcess:
    """A loopback fake in a child process, so that it does not share the benchmark's GIL; it prints its URLs."""

    def __init__(self, module: str, *args: str, urls: int = 1) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.urls = [self.process.stdout.readline().strip() for _ in range(urls)]

    def close(self) -> str:
        """Stop the child process; returns what it printed last."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.close()
        tail = self.process.stdout.read()
        self.process.wait(timeout=10)
        return tail


class FakeHosts(FakeProcess):
    """Fake provider hosts; each measures how many requests it had in flight at once."""

    def __init__(self, count: int, latency: float, *, deepseek_currency: str | None = None) -> None:
        extra = (deepseek_currency,) if deepseek_currency else ()
        super().__init__("bench.fake_hosts", str(count), str(latency), *extra, urls=count)
        self.peaks: list[int] = []

    def close(self) -> str:
        """Stop the hosts and read their peak concurrency."""
        tail = super().close()
        self.peaks = json.loads(tail.strip().splitlines()[-1])
        return tail


async def _poll_once(accounts: int, hosts: int, latency: float, tmp: Path) -> tuple[float, int, int]:
    fakes = FakeHosts(hosts, latency)
    try:
        settings = Settings(
            _env_file=None,
            CREDITBOT_DATABASE_URL=f"sqlite+aiosqlite:///{tmp / 'b.db'}",  # type: ignore[call-arg]
            CREDITBOT_CACHE_SECONDS=0,
        )
        config = AppConfig(
            settings,
            tuple(
                Account(
                    f"ds{i}",
                    "deepseek",
                    SecretStr("sk-bench000000000000"),
                    f"{fakes.urls[i % hosts]}/deepseek",
                    "bench",
                    spend_only=False,
                )
                for i in range(accounts)
            ),
            "bench",
        )
        store = await Store.open(settings.database_url)
        async with provider_client(settings) as http:  # the client `creditbot run` uses
            monitor = Monitor(config, store, http)
            started = time.perf_counter()
            readings = await monitor.refresh()
            elapsed = time.perf_counter() - started
            peak = max(monitor.limiter.peak.values(), default=0)
        await store.close()
        assert all(r.ok for r in readings), "a fetch failed during the benchmark"
    finally:
        fakes.close()
    return elapsed, peak, max(fakes.peaks)


def _naive_poll(accounts: int, latency: float) -> float:
    fakes = FakeHosts(1, latency)
    try:
        started = time.perf_counter()
        with httpx.Client() as client:  # a cron script: one request after the other, nothing kept
            for _ in range(accounts):
                client.get(
                    fakes.urls[0] + "/deepseek/user/balance",
                    headers={"Authorization": "Bearer sk-bench000000000000"},
                ).raise_for_status()
        return time.perf_counter() - started
    finally:
        fakes.close()


def scenario_polling(smoke: bool) -> dict[str, Any]:
    """One polling cycle over many accounts on several hosts with the default limits."""
    accounts, hosts, latency, runs = (100, 4, 0.05, 1) if smoke else (1000, 10, 0.05, 3)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    samples, peaks, served_peaks = [], [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            elapsed, peak, served_peak = asyncio.run(_poll_once(accounts, hosts, latency, Path(tmp)))
        samples.append(elapsed)
        peaks.append(peak)
        served_peaks.append(served_peak)
    # Ideal: the tighter of the global and the per-host limits, each request taking `latency`.
    waves = max(
        math.ceil(accounts / settings.concurrency), math.ceil(accounts / hosts / settings.per_host_concurrency)
    )
    ideal = waves * latency
    baseline_accounts = min(accounts, 100)
    baseline = _naive_poll(baseline_accounts, latency) * accounts / baseline_accounts
    median = statistics.median(samples)
    return {
        "name": "polling",
        "accounts": accounts,
        "hosts": hosts,
        "latency_s": latency,
        "seconds": summary(samples),
        "ideal_s": ideal,
        "ratio_to_ideal": median / ideal,
        "goal_ratio": 1.3,
        "baseline_s": baseline,
        "ratio_to_baseline": median / baseline,
        "peak_per_host": max(peaks),
        "peak_per_host_seen_by_hosts": max(served_peaks),
        "per_host_limit": settings.per_host_concurrency,
    }


def _timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, capture_output=True, check=True)
    return time.perf_counter() - started


def scenario_startup(smoke: bool) -> dict[str, Any]:
    """`creditbot --help` wall time, and resident memory after start with both chat adapters imported."""
    runs = 3 if smoke else 10
    env = {**os.environ}
    helps = [_timed([sys.executable, "-m", "bot", "--help"], env) for _ in range(runs)]
    code = (
        "import resource, asyncio\n"
        "import bot.cli, bot.runtime, bot.chart_data, adapters.console, adapters.slack.adapter, "
        "adapters.discord.adapter, matplotlib.figure\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    rss_kb = [
        int(
            subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            ).stdout.strip()
        )
        for _ in range(2 if smoke else 3)
    ]
    return {
        "name": "startup",
        "help_seconds": summary(helps),
        "help_goal_s": 0.5,
        "rss_mb_with_adapters": summary([kb / 1024 for kb in rss_kb]),
        "rss_goal_mb": 150,
    }


SIX_PROVIDERS = ("openai", "anthropic", "openrouter", "deepseek", "moonshot", "openai-legacy")


async def _credits_latency(smoke: bool, latency: float, tmp: Path) -> dict[str, Any]:
    from adapters.slack.adapter import SlackAdapter
    from bot.runtime import Runtime, settle_heap
    from bot.web import start_http
    from tests.conftest import TEST_KEYS
    from tests.fake_slack import BOT_TOKEN, SIGNING_SECRET, signed_headers, slash_body
    from tests.test_run_e2e import free_port

    fakes = FakeHosts(len(SIX_PROVIDERS), latency)  # each provider on its own host, as in real life
    slack = FakeProcess("bench.fake_slack_host", "0", "0")  # receives the answers on response_url
    slack_base = slack.urls[0].removesuffix("/api/")
    try:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            CREDITBOT_DATABASE_URL=f"sqlite+aiosqlite:///{tmp / 'c.db'}",
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=slack.urls[0],
        )
        accounts = tuple(
            Account(
                p, p, SecretStr(TEST_KEYS[p]), f"{fakes.urls[i]}/{p}", "bench", spend_only=PROVIDERS[p].spend_only
            )
            for i, p in enumerate(SIX_PROVIDERS)
        )
        store = await Store.open(settings.database_url)
        async with provider_client(settings) as http:
            adapter = SlackAdapter(settings)
            runtime = Runtime(Monitor(AppConfig(settings, accounts, "bench"), store, http), [adapter])
            port = free_port()
            web = await start_http(port, adapter.http_routes(), host="127.0.0.1")
            await adapter.start(runtime.handler)
            settle_heap()  # as `creditbot run` does once started
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:

                async def ask(name: str) -> tuple[float, float]:
                    body = slash_body("", response_url=f"{slack_base}/webhook/{name}")
                    started = time.monotonic()  # system-wide, so comparable with the fake's arrival time
                    response = await client.post("/slack/events", content=body, headers=signed_headers(body))
                    acked = time.monotonic() - started
                    assert response.status_code == 200
                    arrival = (await client.get(f"{slack_base}/_arrival/{name}")).json()["at"]
                    return acked, arrival - started

                cold_ack, cold_answer = await ask("cold")
                warm = [await ask(f"warm{i}") for i in range(5 if smoke else 50)]
            await adapter.stop()
            await web.cleanup()
        await store.close()
    finally:
        slack.close()
        fakes.close()
    warm_answers = sorted(w[1] for w in warm)
    p99 = warm_answers[min(len(warm_answers) - 1, math.ceil(0.99 * len(warm_answers)) - 1)]
    return {
        "cold_ack": cold_ack,
        "cold_answer": cold_answer,
        "warm_p99": p99,
        "warm_median": statistics.median(warm_answers),
    }


def _naive_credits(latency: float) -> float:
    """A script that asks each of the six providers in turn, one request after another."""
    from tests.conftest import TEST_KEYS

    paths = {
        "openai": "/v1/organization/costs?start_time=0&limit=180",
        "anthropic": "/v1/organizations/cost_report?starting_at=2026-10-25T00:00:00Z&limit=31",
        "openrouter": "/api/v1/credits",
        "deepseek": "/user/balance",
        "moonshot": "/v1/users/me/balance",
        "openai-legacy": "/dashboard/billing/credit_grants",
    }
    fakes = FakeHosts(1, latency)
    try:
        started = time.perf_counter()
        with httpx.Client() as client:
            for provider, path in paths.items():
                headers = {
                    "Authorization": f"Bearer {TEST_KEYS[provider]}",
                    "x-api-key": TEST_KEYS[provider],
                    "anthropic-version": "2023-06-01",
                }
                client.get(f"{fakes.urls[0]}/{provider}{path}", headers=headers)
        return time.perf_counter() - started
    finally:
        fakes.close()


def scenario_credits(smoke: bool) -> dict[str, Any]:
    """`/credits` over Slack's HTTP mode with six accounts whose providers take 200 ms per request."""
    latency = 0.2
    runs = 1 if smoke else 3
    results = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            results.append(asyncio.run(_credits_latency(smoke, latency, Path(tmp))))
    # The longest chain of sequential requests one account needs: Anthropic's two pages, or OpenRouter's
    # /credits then /activity.
    chain = 2 * latency
    return {
        "name": "credits",
        "latency_s": latency,
        "cold_ack_s": summary([r["cold_ack"] for r in results]),
        "cold_ack_goal_s": 0.1,
        "cold_answer_s": summary([r["cold_answer"] for r in results]),
        "cold_answer_goal_s": 1.2 * chain + 0.05,
        "warm_p99_s": summary([r["warm_p99"] for r in results]),
        "warm_median_s": summary([r["warm_median"] for r in results]),
        "warm_goal_s": 0.02,
        "baseline_s": _naive_credits(latency),
    }


async def _fan_out_once(channel_count: int, per_second: int, tmp: Path) -> dict[str, Any]:
    from adapters.slack.adapter import SlackAdapter
    from bot.channels import Channel
    from bot.runtime import Runtime
    from tests.conftest import TEST_KEYS
    from tests.fake_slack import BOT_TOKEN, SIGNING_SECRET

    slack = FakeProcess("bench.fake_slack_host", "1", str(per_second))
    fakes = FakeHosts(1, 0.0)
    try:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            CREDITBOT_DATABASE_URL=f"sqlite+aiosqlite:///{tmp / 'f.db'}",
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=slack.urls[0],
        )
        accounts = tuple(
            Account(
                p, p, SecretStr(TEST_KEYS[p]), f"{fakes.urls[0]}/{p}", "bench", spend_only=PROVIDERS[p].spend_only
            )
            for p in ("deepseek", "moonshot")
        )
        channels = tuple(Channel("slack", f"C{i:04d}", daily_summary=dt_time(9, 0)) for i in range(channel_count))
        store = await Store.open(settings.database_url)
        async with httpx.AsyncClient() as http:
            adapter = SlackAdapter(settings)
            runtime = Runtime(
                Monitor(AppConfig(settings, accounts, "bench", channels=channels), store, http), [adapter]
            )
            await adapter.start(runtime.handler)
            await runtime.monitor.refresh()
            await asyncio.sleep(1.1)  # auth.test and friends leave the fake's one-second window
            started = time.perf_counter()
            queued = await runtime.send_summaries(channels, day="bench")
            elapsed = time.perf_counter() - started
            items = await store.outbox.items("summary")
            stats = (await http.get(slack.urls[0].replace("/api/", "/_stats"))).json()
            await adapter.stop()
        await store.close()
    finally:
        slack.close()
        fakes.close()
    return {
        "seconds": elapsed,
        "queued": queued,
        "sent": sum(1 for i in items if i.status == "sent"),
        "delivered": sum(stats["posts"].values()),
        "repeated": sum(1 for n in stats["posts"].values() if n > 1),
        "throttled": stats["throttled"],
    }


def _naive_fan_out(channel_count: int, per_second: int) -> dict[str, float]:
    """A cron script: one chat.postMessage after another, no pacing; it waits out each 429 and tries again."""
    from tests.fake_slack import BOT_TOKEN

    slack = FakeProcess("bench.fake_slack_host", "1", str(per_second))
    throttled = 0
    try:
        started = time.perf_counter()
        with httpx.Client(headers={"Authorization": f"Bearer {BOT_TOKEN}"}) as client:
            for i in range(channel_count):
                while True:
                    response = client.post(
                        slack.urls[0] + "chat.postMessage", json={"channel": f"C{i:04d}", "text": "summary"}
                    )
                    if response.status_code != 429:
                        break
                    throttled += 1
                    time.sleep(float(response.headers.get("Retry-After", "1")))
        return {"seconds": time.perf_counter() - started, "throttled": throttled}
    finally:
        slack.close()


def scenario_fan_out(smoke: bool) -> dict[str, Any]:
    """A daily summary to many Slack channels under 1 message/s per channel and a workspace-wide call rate."""
    channel_count, per_second, runs = (30, 20, 1) if smoke else (200, 20, 3)
    results = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            results.append(asyncio.run(_fan_out_once(channel_count, per_second, Path(tmp))))
    for r in results:
        assert r["queued"] == r["sent"] == r["delivered"] == channel_count, f"a message was lost: {r}"
        assert r["repeated"] == 0, f"a message was repeated: {r}"
    # The sustained rate allows `per_second` calls each second; the fake's moving window would also let a
    # sender that bursts first finish one second sooner.
    minimum = channel_count / per_second
    median = statistics.median(r["seconds"] for r in results)
    baseline = _naive_fan_out(channel_count, per_second)
    return {
        "name": "fan_out",
        "channels": channel_count,
        "calls_per_second": per_second,
        "seconds": summary([r["seconds"] for r in results]),
        "minimum_s": minimum,
        "burst_minimum_s": math.ceil(channel_count / per_second) - 1,
        "ratio_to_minimum": median / minimum,
        "goal_ratio": 1.2,
        "throttled_429": [r["throttled"] for r in results],
        "lost": 0,
        "repeated": 0,
        "baseline_s": baseline["seconds"],
        "baseline_429": baseline["throttled"],
        "ratio_to_baseline": median / baseline["seconds"],
    }


SCENARIOS: dict[str, Callable[[bool], dict[str, Any]]] = {
    "credits": scenario_credits,
    "polling": scenario_polling,
    "fan_out": scenario_fan_out,
    "startup": scenario_startup,
    "history": scenario_history,
    "breakdown": scenario_breakdown,
}


def markdown(results: list[dict[str, Any]], machine: str) -> str:
    """A short table of medians and their ratios to limit and baseline."""
    lines = [
        f"Benchmarks on {machine}",
        "",
        "| scenario | median | goal | ratio to goal/ideal | baseline |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        if r["name"] == "credits":
            lines.append(
                f"| /credits cold: ack | {r['cold_ack_s']['median'] * 1000:.0f} ms | < 100 ms "
                f"| {r['cold_ack_s']['median'] / 0.1:.2f} | — |"
            )
            lines.append(
                f"| /credits cold: full answer | {r['cold_answer_s']['median'] * 1000:.0f} ms "
                f"| ≤ {r['cold_answer_goal_s'] * 1000:.0f} ms "
                f"| {r['cold_answer_s']['median'] / r['cold_answer_goal_s']:.2f} "
                f"| sequential {r['baseline_s'] * 1000:.0f} ms "
                f"({r['cold_answer_s']['median'] / r['baseline_s']:.2f}×) |"
            )
            lines.append(
                f"| /credits warm: answer p99 (median {r['warm_median_s']['median'] * 1000:.1f} ms) "
                f"| {r['warm_p99_s']['median'] * 1000:.1f} ms | < 20 ms "
                f"| {r['warm_p99_s']['median'] / 0.02:.2f} | — |"
            )
        if r["name"] == "polling":
            lines.append(
                f"| polling {r['accounts']} accounts / {r['hosts']} hosts | {r['seconds']['median']:.2f} s "
                f"| ≤1.3× ideal {r['ideal_s']:.2f} s "
                f"(peak per host, seen by the hosts: {r['peak_per_host_seen_by_hosts']} ≤ {r['per_host_limit']}) "
                f"| {r['ratio_to_ideal']:.2f} | sequential {r['baseline_s']:.1f} s "
                f"({r['ratio_to_baseline']:.3f}×) |"
            )
        if r["name"] == "fan_out":
            lines.append(
                f"| summary to {r['channels']} Slack channels | {r['seconds']['median']:.2f} s "
                f"| ≤1.2× minimum {r['minimum_s']:.1f} s ({r['calls_per_second']} calls/s, 1 msg/s/channel) "
                f"| {r['ratio_to_minimum']:.2f} (429s: {max(r['throttled_429'])}, lost 0, repeated 0) "
                f"| sequential {r['baseline_s']:.1f} s, {r['baseline_429']} × 429 "
                f"({r['ratio_to_baseline']:.2f}×) |"
            )
        if r["name"] == "startup":
            lines.append(
                f"| `creditbot --help` | {r['help_seconds']['median']:.3f} s | < 0.5 s "
                f"| {r['help_seconds']['median'] / 0.5:.2f} | — |"
            )
            lines.append(
                f"| RSS with both adapters | {r['rss_mb_with_adapters']['median']:.0f} MB | < 150 MB "
                f"| {r['rss_mb_with_adapters']['median'] / 150:.2f} | — |"
            )
        if r["name"] == "breakdown":
            lines.extend(breakdown_markdown(r))
    for r in results:
        if r["name"] == "history":
            lines.extend(["", *history_markdown(r)])
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the scenarios and write the report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a seconds-long run that only checks the runner")
    parser.add_argument("--only", choices=sorted(SCENARIOS), action="append")
    args = parser.parse_args()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    results = [SCENARIOS[name](args.smoke) for name in (args.only or SCENARIOS)]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / ("smoke.json" if args.smoke else "report.json")).write_text(
        json.dumps({"machine": machine, "results": results}, indent=2, default=str)
    )
    table = markdown(results, machine)
    (RESULTS / ("smoke.md" if args.smoke else "report.md")).write_text(table)
    print(table)


if __name__ == "__main__":
    main()
