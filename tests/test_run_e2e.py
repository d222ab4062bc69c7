"""`creditbot run` as a real process with intervals in seconds: alerts once, summaries once, restarts,
/healthz, clean shutdown on SIGTERM, and the demo mode."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import TEST_KEYS
from tests.fakes import FakeProviderServer
from tests.test_cli import run_cli


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BotProcess:
    """A `creditbot run` subprocess whose output is collected as it comes."""

    def __init__(self, cwd: Path, env: dict[str, str], module: str = "bot") -> None:
        full_env = {"PATH": os.environ.get("PATH", ""), "HOME": str(cwd), **env}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, "run"],
            cwd=cwd,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()

    @staticmethod
    def _pump(stream: object, sink: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            sink.append(line)

    @property
    def stdout(self) -> str:
        return "".join(self.out)

    def wait_for(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.stdout:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not seen; stdout:\n{self.stdout}\nstderr:\n{''.join(self.err)}")

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=15)


def one_account_toml(
    fake: FakeProviderServer, platform: str, channel: str, daily_summary: str, mention: str | None = None
) -> str:
    """A `creditbot.toml` with the fake's DeepSeek account (¥110, below its ¥200 warning) and one channel."""
    extra = f'mention = "{mention}"\n' if mention else ""
    return f"""
[[accounts]]
name = "ds"
provider = "deepseek"
api_key = "{TEST_KEYS["deepseek"]}"
base_url = "{fake.base_url("deepseek")}"
warn_below = "200"

[[channels]]
platform = "{platform}"
id = "{channel}"
daily_summary = "{daily_summary}"
alerts = "warning"
{extra}"""


def just_passed() -> str:
    """A summary time that has just passed, so the first poll's catch-up sends it."""
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) - timedelta(minutes=2)).strftime("%H:%M")


def write_config(tmp_path: Path, fake: FakeProviderServer) -> None:
    (tmp_path / "creditbot.toml").write_text(one_account_toml(fake, "console", "ops", just_passed(), "@here"))


def bot_env(tmp_path: Path, port: int) -> dict[str, str]:
    return {
        "CREDITBOT_POLL_SECONDS": "1",
        "CREDITBOT_DISPATCH_SECONDS": "0.5",
        "CREDITBOT_CACHE_SECONDS": "0",
        "PORT": str(port),
        "CREDITBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'data' / 'creditbot.db'}",
        "CREDITBOT_CHART_DIR": str(tmp_path / "charts"),
    }


def test_run_alerts_and_summarises_once_across_a_restart(tmp_path: Path, fake: FakeProviderServer) -> None:
    write_config(tmp_path, fake)
    port = free_port()
    bot = BotProcess(tmp_path, bot_env(tmp_path, port))
    try:
        bot.wait_for("ds: below ¥200.00")
        bot.wait_for("Daily LLM credits summary")
        bot.wait_for("chart: ")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert response.status == 200
        time.sleep(3)  # several more polls
    finally:
        code = bot.terminate()
    assert code == 0
    first = bot.stdout
    assert first.count("ds: below ¥200.00\n") == 1
    assert first.count("Daily LLM credits summary") == 1
    assert "@here" in first
    assert fake.state.count("deepseek") >= 3
    assert list((tmp_path / "charts").glob("*.png"))

    before = fake.state.count("deepseek")
    again = BotProcess(tmp_path, bot_env(tmp_path, free_port()))
    try:
        deadline = time.monotonic() + 20
        while fake.state.count("deepseek") < before + 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert fake.state.count("deepseek") >= before + 3, "the restarted bot did not poll"
        time.sleep(1)
    finally:
        assert again.terminate() == 0
    assert "below ¥200.00" not in again.stdout
    assert "Daily LLM credits summary" not in again.stdout
    assert "Traceback" not in "".join(again.err), "".join(again.err)


def test_demo_mode_runs_with_nothing_configured(tmp_path: Path) -> None:
    env = bot_env(tmp_path, free_port())
    bot = BotProcess(tmp_path, env)
    try:
        bot.wait_for("Daily LLM credits summary")
        bot.wait_for("demo (demo)")
    finally:
        assert bot.terminate() == 0
    assert "DEMO MODE" in "".join(bot.err)


def test_summary_send_delivers_a_chart_through_the_console(tmp_path: Path, fake: FakeProviderServer) -> None:
    write_config(tmp_path, fake)
    result = run_cli(tmp_path, "summary", "--send", env={"CREDITBOT_CHART_DIR": str(tmp_path / "charts")})
    assert result.returncode == 0, result.stderr
    assert "Daily LLM credits summary" in result.stdout
    assert "console:ops: summary sent" in result.stderr
    (chart,) = list((tmp_path / "charts").glob("*.png"))
    assert chart.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("command", ["alerts", "notify-test"])
def test_other_runtime_commands(tmp_path: Path, fake: FakeProviderServer, command: str) -> None:
    write_config(tmp_path, fake)
    result = run_cli(tmp_path, command)
    assert result.returncode == 0, result.stderr
    if command == "notify-test":
        assert "creditbot test message" in result.stdout
    else:
        assert "No open alerts" in result.stdout


def test_thresholds_set_from_chat_are_used_by_check_and_accounts(tmp_path: Path, fake: FakeProviderServer) -> None:
    import asyncio
    from datetime import UTC, datetime
    from decimal import Decimal

    from bot.store import Store, ThresholdOverride

    write_config(tmp_path, fake)
    url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'creditbot.db'}"

    async def set_override() -> None:
        store = await Store.open(url)
        await store.settings.set_threshold_override(
            ThresholdOverride("ds", Decimal(500), Decimal(300), "slack:alice", datetime.now(UTC))
        )
        await store.close()

    asyncio.run(set_override())
    accounts = run_cli(tmp_path, "accounts")
    assert "500 (chat, by slack:alice)" in accounts.stdout
    check = run_cli(tmp_path, "check", "--json")
    assert check.returncode == 2  # ¥110 is below the chat-set critical level of 300


def test_readyz_and_metrics(tmp_path: Path, fake: FakeProviderServer) -> None:
    write_config(tmp_path, fake)
    port = free_port()
    token = "scrape-token-5f1e8a2c9b7d4e60"
    bot = BotProcess(tmp_path, {**bot_env(tmp_path, port), "CREDITBOT_METRICS_TOKEN": token})
    try:
        bot.wait_for("ds: below ¥200.00")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            assert response.status == 200
            assert b'"store": "ok"' in response.read()
        scrape = urllib.request.Request(
            f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(scrape, timeout=5) as response:
            text = response.read().decode()
    finally:
        assert bot.terminate() == 0
    log = "".join(bot.err)
    assert "metrics: /metrics needs the token of CREDITBOT_METRICS_TOKEN" in log
    assert token not in log
    assert 'creditbot_balance{account="ds",currency="CNY",provider="deepseek"} 110.0' in text
    assert 'creditbot_alerts_total{kind="fired",rule="balance",severity="warning"} 1.0' in text
    assert 'creditbot_deliveries_total{outcome="sent",platform="console"}' in text
    assert "creditbot_fetch_duration_seconds_count" in text
    assert TEST_KEYS["deepseek"] not in text
