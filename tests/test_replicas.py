"""Several `creditbot run` processes on one PostgreSQL: one leader at a time, each message exactly once, also
when the leader is killed with SIGKILL; and one `creditbot run` at a time on SQLite."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from tests.fakes import FakeProviderServer
from tests.test_cli import run_cli
from tests.test_run_e2e import BotProcess, bot_env, free_port, write_config
from tests.test_store_backends import _drop, postgres_database


@pytest.fixture
def pg_url() -> object:
    url, name = asyncio.run(postgres_database())
    yield url
    asyncio.run(_drop(name))


def leader_of(bots: list[BotProcess]) -> BotProcess:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        leaders = [b for b in bots if b.proc.poll() is None and "this process leads" in "".join(b.err)]
        if leaders:
            return leaders[-1]
        time.sleep(0.1)
    raise AssertionError("no leader")


def test_replicas_send_each_message_once_even_when_the_leader_is_killed(
    tmp_path: Path, fake: FakeProviderServer, pg_url: str
) -> None:
    from datetime import UTC, datetime, timedelta

    from tests.fake_slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack

    write_config(tmp_path, fake)
    just_passed = (datetime.now(UTC) - timedelta(minutes=2)).strftime("%H:%M")
    with (tmp_path / "creditbot.toml").open("a") as toml:
        toml.write(f'\n[[channels]]\nplatform = "slack"\nid = "C1"\ndaily_summary = "{just_passed}"\n')
    with FakeSlack() as slack:
        slack_env = {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.api_url,
        }
        _run_replicas(tmp_path, fake, pg_url, slack_env)
        posts = [c.data["text"] for c in slack.state.called("/api/chat.postMessage")]
    assert sum("ds: below ¥200.00" in p for p in posts) == 1
    assert sum("Daily LLM credits summary" in p for p in posts) == 1
    assert sum("balance alert recovered" in p for p in posts) == 1


def _run_replicas(tmp_path: Path, fake: FakeProviderServer, pg_url: str, slack_env: dict[str, str]) -> None:
    bots = []
    for _ in range(3):
        env = {**bot_env(tmp_path, free_port()), "CREDITBOT_DATABASE_URL": pg_url, **slack_env}
        bots.append(BotProcess(tmp_path, env))
    try:
        first = leader_of(bots)
        first.wait_for("ds: below ¥200.00")
        first.wait_for("Daily LLM credits summary")
        time.sleep(2)  # a few polls: the followers must stay quiet
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(timeout=10)
        second = leader_of([b for b in bots if b is not first])
        assert second is not first
        before = fake.state.count("deepseek")
        deadline = time.monotonic() + 15
        while fake.state.count("deepseek") < before + 2 and time.monotonic() < deadline:
            time.sleep(0.1)  # the new leader polls
        fake.state.deepseek_infos = [{"currency": "CNY", "total_balance": "900.00"}]
        second.wait_for("balance alert recovered")
        time.sleep(1.5)
        # Checked before shutdown: once the leader stops, another replica may rightly take over.
        followers_leading = [
            b for b in bots if b not in (first, second) and "this process leads" in "".join(b.err)
        ]
        assert followers_leading == []
    finally:
        for bot in bots:
            if bot.proc.poll() is None:
                bot.terminate()
    output = "".join(b.stdout for b in bots)
    assert output.count("ds: below ¥200.00\n") == 1
    assert output.count("Daily LLM credits summary") == 1
    assert output.count("balance alert recovered") == 1


def test_only_one_run_at_a_time_on_sqlite(tmp_path: Path, fake: FakeProviderServer) -> None:
    write_config(tmp_path, fake)
    env = bot_env(tmp_path, free_port())
    bot = BotProcess(tmp_path, env)
    try:
        bot.wait_for("ds: below ¥200.00")
        second = run_cli(tmp_path, "run", env={**env, "PORT": str(free_port())})
        assert second.returncode == 1
        assert "another creditbot run" in second.stderr
        check = run_cli(tmp_path, "check", "--json", env=env)  # the CLI keeps working beside it
        assert check.returncode == 1
    finally:
        assert bot.terminate() == 0
