"""The next adapter is easy to add: `tests/memo_adapter.py` (about 30 lines) registers a new platform with one
line, and a `[[channels]]` table of that platform gets alerts and summaries through `run`, `summary --send`
and `notify-test`, with no edit to the configuration, CLI or runtime modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.fakes import FakeProviderServer
from tests.test_run_e2e import BotProcess, bot_env, free_port, just_passed, one_account_toml

ROOT = Path(__file__).resolve().parents[1]


def memo_toml(fake: FakeProviderServer) -> str:
    return one_account_toml(fake, "memo", "inbox", just_passed())


def memo_env(tmp_path: Path) -> dict[str, str]:
    # The plugin module lives in this repository's tests package; the bot runs in a clean directory.
    return {**bot_env(tmp_path, free_port()), "MEMO_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}


def inbox(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "inbox.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def memo_cli(tmp_path: Path, *args: str, module: str = "tests.memo_adapter") -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), **memo_env(tmp_path)}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_new_platform_gets_alerts_and_summaries_everywhere(tmp_path: Path, fake: FakeProviderServer) -> None:
    (tmp_path / "creditbot.toml").write_text(memo_toml(fake))
    bot = BotProcess(tmp_path, memo_env(tmp_path), module="tests.memo_adapter")
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while datetime.now(UTC) < deadline and len(inbox(tmp_path)) < 2:
            time.sleep(0.2)
    finally:
        assert bot.terminate() == 0, "".join(bot.err)
    titles = [m["title"] for m in inbox(tmp_path)]
    assert sorted(titles) == ["Daily LLM credits summary", "ds: below ¥200.00"], "".join(bot.err)
    summary = next(m for m in inbox(tmp_path) if m["title"] == "Daily LLM credits summary")
    assert summary["key"].startswith("summary:memo:inbox:")
    assert summary["chart"]

    sent = memo_cli(tmp_path, "summary", "--send")
    assert sent.returncode == 0, sent.stderr
    assert "memo:inbox: summary sent" in sent.stderr
    tested = memo_cli(tmp_path, "notify-test")
    assert tested.returncode == 0, tested.stderr
    titles = [m["title"] for m in inbox(tmp_path)]
    assert titles[2:] == ["Daily LLM credits summary", "creditbot test message"]
    assert "Delivery to memo:inbox works" in inbox(tmp_path)[-1]["text"]


def test_a_platform_nobody_registered_is_a_configuration_error(tmp_path: Path, fake: FakeProviderServer) -> None:
    (tmp_path / "creditbot.toml").write_text(memo_toml(fake))
    result = memo_cli(tmp_path, "notify-test", module="bot")
    assert result.returncode == 78
    assert "platform: unknown platform 'memo'; use one of: console, slack, discord" in result.stderr
    assert "Traceback" not in result.stderr
