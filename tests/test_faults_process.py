"""Process and database faults: `creditbot run` killed with SIGKILL while summaries are being sent,
`creditbot check` killed while it upgrades the schema (SQLite and PostgreSQL), a database URL that is wrong
or unreachable, PostgreSQL going away while the bot runs, a SQLite file that is not a database or is damaged,
and one locked by another writer.

What it proves: after a kill the store is intact and no message is lost; nothing is repeated except, as
documented, a post that was in flight when the process died (the outbox is at-least-once: a claim abandoned
mid-send is taken over after CLAIM_LEASE). An upgrade killed half-way leaves the previous schema and the
data, and the next start completes it. A database that cannot be used is one clear line naming
CREDITBOT_DATABASE_URL (never its password) and what to do, no traceback; readiness reports it, and the bot
resumes polling and delivering once the database is back.

Real `creditbot run`/`check` subprocesses where a process must die; the runtime in-process (the same
database file, a clock moved past the lease) where time must move. Faked only at the wire: the loopback
provider and Slack fakes, and a TCP proxy in front of the real PostgreSQL server that can be cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from adapters.console import ConsoleAdapter
from bot import schema
from bot.channels import Channel
from bot.config import AppConfig
from bot.leader import LEADER_LOCK_KEY, PostgresLeadership
from bot.messages import text_message
from bot.models import Severity
from bot.runtime import CLAIM_LEASE
from bot.store import MIGRATIONS_DIR, AccountReadings, NewMessage, Store, reading_to_row
from tests.conftest import TEST_KEYS, make_account, make_runtime, make_settings
from tests.fake_slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack
from tests.fakes import FakeProviderServer
from tests.test_cli import run_cli
from tests.test_run_e2e import BotProcess, bot_env, free_port
from tests.test_store_backends import PG_ADMIN_DSN, _drop, postgres_database, reading

SUMMARY = "Daily LLM credits summary"
CANARY = "p4ssCANARY"  # a password put in database URLs: it must never be printed


@pytest.fixture
def pg() -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL database (URL, name), dropped afterwards; skips without a server unless CI=true."""
    database = asyncio.run(postgres_database())
    yield database
    asyncio.run(_drop(database[1]))


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def async_wait_until(condition: Callable[[], Any], what: str, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def sigkill(bot: BotProcess) -> None:
    bot.proc.send_signal(signal.SIGKILL)
    bot.proc.wait(timeout=10)


def settled(slack: FakeSlack) -> None:
    """Wait until the fake has read every request the dead process managed to write before it died."""
    count, stable_since = -1, time.monotonic()
    while time.monotonic() - stable_since < 0.5:
        if len(slack.state.calls) != count:
            count, stable_since = len(slack.state.calls), time.monotonic()
        time.sleep(0.05)


def summary_toml(tmp_path: Path, fake: FakeProviderServer, channels: list[str]) -> None:
    """One account and Slack channels whose summary time has just passed (the first poll's catch-up sends
    it); no alerts, so the summaries are the only posts."""
    just_passed = (datetime.now(UTC) - timedelta(minutes=2)).strftime("%H:%M")
    text = f"""
[[accounts]]
name = "ds"
provider = "deepseek"
api_key = "{TEST_KEYS["deepseek"]}"
base_url = "{fake.base_url("deepseek")}"
"""
    for channel in channels:
        text += f'\n[[channels]]\nplatform = "slack"\nid = "{channel}"\n'
        text += f'daily_summary = "{just_passed}"\nalerts = "none"\n'
    (tmp_path / "creditbot.toml").write_text(text)


def slack_bot_env(tmp_path: Path, slack: FakeSlack, **extra: str) -> dict[str, str]:
    return {
        **bot_env(tmp_path, free_port()),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        **extra,
    }


def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "creditbot.db"


def sqlite_rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute(query).fetchall()


def summary_rows(path: Path) -> dict[str, tuple[str, int]]:
    """(status, attempts) of each channel's summary in the outbox."""
    rows = sqlite_rows(path, "SELECT channel, status, attempts FROM outbox WHERE kind = 'summary'")
    return {channel: (status, attempts) for channel, status, attempts in rows}


def summary_posts(slack: FakeSlack) -> Counter[str]:
    """Summary posts the fake Slack received, per channel, answered or not (a post in flight counts)."""
    calls = slack.state.called("/api/chat.postMessage")
    return Counter(str(c.data["channel"]) for c in calls if SUMMARY in str(c.data.get("text")))


def deliver_after_the_lease(tmp_path: Path, url: str, slack: FakeSlack) -> tuple[int, int]:
    """Run the outbox in-process on the database a killed process left, with the clock past CLAIM_LEASE, through
    the real Slack adapter; returns what the first and a second dispatch delivered."""
    from adapters.slack.adapter import SlackAdapter

    settings = make_settings(
        tmp_path,
        database_url=url,
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=slack.api_url,
    )
    later = datetime.now(UTC) + CLAIM_LEASE + timedelta(minutes=1)

    async def go() -> tuple[int, int]:
        store = await Store.open(url)
        try:
            async with httpx.AsyncClient() as http:
                runtime = make_runtime(
                    AppConfig(settings, (), "test"), store, http, [SlackAdapter(settings)], clock=lambda: later
                )
                return await runtime.dispatch(), await runtime.dispatch()
        finally:
            await store.close()

    return asyncio.run(go())


# SIGKILL while summaries are being sent


def test_a_summary_post_in_flight_at_sigkill_stays_claimed_and_is_sent_again_only_after_the_lease(
    tmp_path: Path, fake: FakeProviderServer
) -> None:
    summary_toml(tmp_path, fake, ["C1"])
    db = sqlite_path(tmp_path)
    url = f"sqlite+aiosqlite:///{db}"
    with FakeSlack() as slack:
        slack.state.post_delay = 120  # Slack has the post but has not answered when the process dies
        env = slack_bot_env(tmp_path, slack)
        bot = BotProcess(tmp_path, env)
        try:
            (post,) = slack.state.wait_for("/api/chat.postMessage", timeout=30)
            assert SUMMARY in post.data["text"]
        finally:
            sigkill(bot)
        slack.state.post_delay = 0  # the held post is answered, to nobody

        # The store survived the kill: intact, the reading there, the summary neither lost nor marked sent.
        assert sqlite_rows(db, "PRAGMA integrity_check") == [("ok",)]
        assert sqlite_rows(db, "SELECT count(*) FROM readings WHERE account = 'ds' AND ok")[0][0] >= 1
        assert summary_rows(db) == {"C1": ("claimed", 1)}

        # A restart neither queues that day's summary again nor takes over a claim younger than the lease:
        # the dead process may have delivered it (here Slack did receive it), so sending it at once would be
        # a duplicate under the most common crash, a kill during the wait for Slack's answer.
        polls = fake.state.count("deepseek")
        again = BotProcess(tmp_path, {**env, "PORT": str(free_port())})
        try:
            wait_until(lambda: fake.state.count("deepseek") >= polls + 3, "the restarted bot to poll")
            time.sleep(1.5)  # three more dispatch rounds
        finally:
            assert again.terminate() == 0
        assert "Traceback" not in "".join(again.err), "".join(again.err)
        assert summary_posts(slack) == {"C1": 1}
        assert summary_rows(db) == {"C1": ("claimed", 1)}

        # Once the lease has passed, the abandoned claim is taken over and the summary delivered: nothing is
        # lost, at the cost of the one documented duplicate (at-least-once); and only once more.
        assert deliver_after_the_lease(tmp_path, url, slack) == (1, 0)
        assert summary_posts(slack) == {"C1": 2}
        assert summary_rows(db) == {"C1": ("sent", 2)}
    assert sqlite_rows(db, "PRAGMA integrity_check") == [("ok",)]


def test_sigkill_in_the_middle_of_a_paced_fan_out_gives_every_channel_its_summary_once(
    tmp_path: Path, fake: FakeProviderServer
) -> None:
    channels = [f"C{n:02d}" for n in range(1, 21)]
    summary_toml(tmp_path, fake, channels)
    db = sqlite_path(tmp_path)
    url = f"sqlite+aiosqlite:///{db}"
    with FakeSlack() as slack:
        # One channel at a time: a summary is a post, then its chart a second later (Slack's one call per
        # second per channel), ~1.1 s each. Killed when the third chart is complete, i.e. between two
        # summaries (the fourth is claimed and waits for its pacing slot); the assertions hold wherever the
        # kill lands.
        env = slack_bot_env(tmp_path, slack)
        bot = BotProcess(tmp_path, {**env, "CREDITBOT_DELIVERY_CONCURRENCY": "1"})
        try:
            slack.state.wait_for("/api/files.completeUploadExternal", count=3, timeout=30)
        finally:
            sigkill(bot)
        settled(slack)
        before = summary_posts(slack)

        assert sqlite_rows(db, "PRAGMA integrity_check") == [("ok",)]
        rows = summary_rows(db)
        assert sorted(rows) == channels, "every summary was queued (one transaction) and none was lost"
        sent = {c for c, (status, _) in rows.items() if status == "sent"}
        claimed = {c for c, (status, _) in rows.items() if status == "claimed"}
        pending = {c for c, (status, _) in rows.items() if status == "pending"}
        assert sent | claimed | pending == set(channels)
        assert len(claimed) <= 1, "one send at a time (CREDITBOT_DELIVERY_CONCURRENCY=1)"
        assert pending, "the kill must land mid fan-out for this test to mean anything"
        assert all(before[c] == 1 for c in sent)
        assert all(before[c] == 0 for c in pending), "a message is posted only after it is claimed"
        in_flight = {c for c in claimed if before[c]}  # Slack had the post; the process died before marking it

        # The restart (default concurrency) delivers every summary nobody had claimed, and only those.
        again = BotProcess(tmp_path, {**env, "PORT": str(free_port())})
        try:
            wait_until(
                lambda: all(summary_posts(slack)[c] for c in pending), "the unclaimed summaries", timeout=30
            )
            time.sleep(1.5)  # three more dispatch rounds: nothing else may go out
        finally:
            assert again.terminate() == 0
        after_restart = summary_posts(slack)
        assert {c: after_restart[c] for c in channels} == {c: before[c] + (c in pending) for c in channels}

        # After the lease, the claims the dead process left are taken over.
        assert deliver_after_the_lease(tmp_path, url, slack) == (len(claimed), 0)
        final = summary_posts(slack)
    # Exactly once per channel, except a post in flight at the kill, which is sent again (at-least-once).
    assert {c: final[c] for c in channels} == {c: 1 + (c in in_flight) for c in channels}
    assert set(summary_rows(db).values()) <= {("sent", 1), ("sent", 2)}
    assert sqlite_rows(db, "PRAGMA integrity_check") == [("ok",)]


# SIGKILL during a schema upgrade


def upgrade_to(url: str, revision: str) -> None:
    """Create the schema at an older revision, as an earlier release left it."""

    def upgrade(connection: Any) -> None:
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async def go() -> None:
        store = await Store.open(url, migrate=False)
        try:
            async with store.engine.begin() as connection:
                await connection.run_sync(upgrade)
            now = datetime.now(UTC)
            # Rows in the old schema's columns, as the release that used it wrote them.
            async with store.engine.begin() as connection:
                await connection.execute(
                    schema.readings.insert().values(
                        **reading_to_row(reading("ds", now - timedelta(hours=1), "120.00"))
                    )
                )
                message = NewMessage(
                    "alert:console:ops:ds:balance:1", "console", "ops", "alert", "warning", {}, now
                )
                await connection.execute(
                    schema.outbox.insert().values(**asdict(message), status="pending", attempts=0, created_at=now)
                )
        finally:
            await store.close()

    asyncio.run(go())


def check_toml(tmp_path: Path, fake: FakeProviderServer) -> None:
    (tmp_path / "creditbot.toml").write_text(f"""
[[accounts]]
name = "ds"
provider = "deepseek"
api_key = "{TEST_KEYS["deepseek"]}"
base_url = "{fake.base_url("deepseek")}"
""")


def start_cli(tmp_path: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """`python -m bot ...` in the background, with only the given environment (no stray CREDITBOT_*)."""
    return subprocess.Popen(
        [sys.executable, "-m", "bot", *args],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "CREDITBOT_CACHE_SECONDS": "0", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def assert_seed_kept_and_schema_current(url: str) -> None:
    async def go() -> None:
        store = await Store.open(url, migrate=False)
        try:
            latest = (await store.readings.latest_readings(["ds"]))["ds"].latest_good
            assert latest is not None, "the reading stored before the upgrade is gone"
            assert [i.key for i in await store.outbox.items()] == ["alert:console:ops:ds:balance:1"]
            await store.settings.set_value("after", "upgrade")  # settings_kv, the table of revision 0004
            assert await store.settings.get_value("after") == "upgrade"
        finally:
            await store.close()

    asyncio.run(go())


def test_sigkill_during_a_sqlite_upgrade_leaves_the_old_schema_and_the_next_start_completes_it(
    tmp_path: Path, fake: FakeProviderServer
) -> None:
    check_toml(tmp_path, fake)
    db = sqlite_path(tmp_path)
    db.parent.mkdir()
    url = f"sqlite+aiosqlite:///{db}"
    upgrade_to(url, "0003")
    # A trigger that makes each recording of a new revision take half a minute, so the
    # process can be killed after the new table was created and before the upgrade committed.
    with contextlib.closing(sqlite3.connect(db)) as con:
        con.execute("CREATE TABLE slow_step (x INTEGER)")
        con.executemany("INSERT INTO slow_step VALUES (?)", [(i,) for i in range(1200)])
        con.execute(
            "CREATE TRIGGER slow_upgrade BEFORE UPDATE ON alembic_version "
            "BEGIN SELECT count(*) FROM slow_step a, slow_step b, slow_step c; END"
        )
        con.commit()
    process = start_cli(tmp_path, "check", "--json", env={"CREDITBOT_DATABASE_URL": url})
    try:
        held_since = None
        deadline = time.monotonic() + 30
        # The upgrade holds the write lock while the trigger runs: kill once it has held it for a second.
        while time.monotonic() < deadline and (held_since is None or time.monotonic() - held_since < 1):
            assert process.poll() is None, process.communicate()
            probe = sqlite3.connect(db, timeout=0, isolation_level=None)
            try:
                probe.execute("BEGIN IMMEDIATE")
                probe.execute("ROLLBACK")
                held_since = None
            except sqlite3.OperationalError:
                held_since = held_since or time.monotonic()
            finally:
                probe.close()
            time.sleep(0.05)
        assert held_since is not None, "the upgrade never reached its slow step"
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=10)

    assert sqlite_rows(db, "PRAGMA integrity_check") == [("ok",)]
    # All or nothing: before the fix the new table had been committed on its own, and every later start
    # failed with "table settings_kv already exists".
    assert sqlite_rows(db, "SELECT version_num FROM alembic_version") == [("0003",)]
    assert sqlite_rows(db, "SELECT name FROM sqlite_master WHERE name = 'settings_kv'") == []
    with contextlib.closing(sqlite3.connect(db)) as con:  # the test's scaffolding, not the bot's schema
        con.execute("DROP TRIGGER slow_upgrade")
        con.execute("DROP TABLE slow_step")
        con.commit()

    result = run_cli(tmp_path, "check", "--json", env={"CREDITBOT_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["accounts"][0]["balance"] == 110.0
    assert sqlite_rows(db, "SELECT version_num FROM alembic_version") == [("0008",)]
    assert_seed_kept_and_schema_current(url)


def test_sigkill_during_a_postgresql_upgrade_rolls_it_back_and_the_next_start_completes_it(
    tmp_path: Path, fake: FakeProviderServer, pg: tuple[str, str]
) -> None:
    import asyncpg

    url, name = pg
    check_toml(tmp_path, fake)
    upgrade_to(url, "0003")
    dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"

    async def scenario() -> None:
        # Holding the version row makes the upgrade wait at its last statement, after creating the table.
        holder = await asyncpg.connect(dsn)
        observer = await asyncpg.connect(dsn)
        try:
            await holder.execute("BEGIN")
            await holder.execute("SELECT version_num FROM alembic_version FOR UPDATE")
            process = start_cli(tmp_path, "check", "--json", env={"CREDITBOT_DATABASE_URL": url})
            try:
                waiting = (
                    "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' "
                    "AND query LIKE 'UPDATE alembic_version%'"
                )
                await async_wait_until(lambda: observer.fetchval(waiting, name), "the upgrade to wait")
                orphan = await observer.fetchval(waiting, name)
            finally:
                process.send_signal(signal.SIGKILL)
                process.communicate(timeout=10)
            # The server notices the dead client only when it next talks to it: until then its transaction
            # is open, uncommitted, invisible.
            assert await observer.fetchval("SELECT to_regclass('settings_kv')") is None
            await holder.execute("ROLLBACK")
            gone = "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $1"
            await async_wait_until(lambda: observer.fetchval(gone, orphan), "the orphaned session to end")
            assert await observer.fetchval("SELECT to_regclass('settings_kv')") is None
            assert await observer.fetchval("SELECT version_num FROM alembic_version") == "0003"
        finally:
            await holder.close()
            await observer.close()

    asyncio.run(scenario())
    result = run_cli(tmp_path, "check", "--json", env={"CREDITBOT_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["accounts"][0]["balance"] == 110.0
    assert_seed_kept_and_schema_current(url)


# A database that cannot be reached or is not a database


class Blackhole:
    """A loopback port that accepts connections and never answers (a server that hangs, a dropped route)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        # shutdown() wakes the thread blocked in accept() (close() alone does not, on Linux).
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_a_wrong_or_unreachable_database_url_is_one_clear_line_without_the_password(
    tmp_path: Path, fake: FakeProviderServer
) -> None:
    check_toml(tmp_path, fake)
    blackhole = Blackhole()
    closed = free_port()
    urls = {
        "closed port": f"postgresql+asyncpg://postgres:{CANARY}@127.0.0.1:{closed}/creditbot",
        "unknown database": f"postgresql+asyncpg://postgres:{CANARY}@127.0.0.1:5432/creditbot_no_such_db",
        "unknown user": f"postgresql+asyncpg://nobody:{CANARY}@127.0.0.1:5432/postgres",
        "server that never answers": f"postgresql+asyncpg://postgres:{CANARY}@127.0.0.1:{blackhole.port}/db",
    }
    if not postgres_is_up():  # without a server both would only be "refused" again
        if os.environ.get("CI") == "true":
            pytest.fail(f"no PostgreSQL server at {PG_ADMIN_DSN}")
        del urls["unknown database"], urls["unknown user"]
    started = time.monotonic()
    try:
        # All at once: the hanging server costs the connect timeout once, not once per case.
        runs = {
            (case, command): start_cli(
                tmp_path, command, env={"CREDITBOT_DATABASE_URL": url, "PORT": str(free_port())}
            )
            for case, url in urls.items()
            for command in ("check", "run")
        }
        results = {key: (p.wait(timeout=60), *p.communicate()) for key, p in runs.items()}
    finally:
        blackhole.close()
    assert time.monotonic() - started < 40, "a server that never answers must not hang the bot for a minute"
    for (case, command), (code, out, err) in results.items():
        assert code == (3 if command == "check" else 1), (case, command, code, err)
        assert CANARY not in out + err, (case, command)
        assert "Traceback" not in err, (case, command, err)
        (line,) = err.strip().splitlines()  # one line, nothing else: `run` never got as far as starting
        assert line.startswith("error: cannot open the database at CREDITBOT_DATABASE_URL=postgresql+asyncpg://")
        assert ":***@127.0.0.1:" in line
        expected = {
            "closed port": "Connect call failed",
            "unknown database": 'database "creditbot_no_such_db" does not exist',
            "unknown user": 'role "nobody" does not exist',
            "server that never answers": "TimeoutError",
        }[case]
        assert expected in line, line
        assert "check that the server is running" in line
    assert fake.state.count("deepseek") == 0, "nothing is fetched without a database to keep it in"


def postgres_is_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=3).close()
    except OSError:
        return False
    return True


def test_a_file_that_is_not_a_database_is_refused_with_how_to_fix_it_and_left_untouched(
    tmp_path: Path, fake: FakeProviderServer
) -> None:
    check_toml(tmp_path, fake)
    db = sqlite_path(tmp_path)
    db.parent.mkdir()
    garbage = os.urandom(64 * 1024)
    db.write_bytes(garbage)
    for command, code in (("check", 3), ("run", 1)):
        result = run_cli(tmp_path, command, env={"PORT": str(free_port())})
        assert result.returncode == code, result.stderr
        assert "Traceback" not in result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(f"error: the database file {db} is not a SQLite database or is damaged"), line
        assert "restore it from a backup, or move it away" in line
        assert "CREDITBOT_DATABASE_URL=sqlite+aiosqlite:///" in line
    assert db.read_bytes() == garbage, "the bot must never touch, repair or replace a damaged file"
    assert sorted(p.name for p in db.parent.iterdir()) == ["creditbot.db"]


def damage_pages(db: Path) -> None:
    """Overwrite a quarter of the file in its second half (the readings' pages) with garbage."""
    size = db.stat().st_size
    with db.open("r+b") as f:
        f.seek(size // 2)
        f.write(os.urandom(size // 4))


def test_a_damaged_page_fails_check_with_one_line_and_makes_the_bot_unready(
    tmp_path: Path, fake: FakeProviderServer
) -> None:
    db = sqlite_path(tmp_path)
    db.parent.mkdir()
    url = f"sqlite+aiosqlite:///{db}"
    now = datetime.now(UTC)

    async def fill() -> None:
        store = await Store.open(url)
        for batch in range(40):
            await store.readings.add_readings(
                [(reading("ds", now - timedelta(minutes=batch * 60 + i)), []) for i in range(60)]
            )
        await store.close()

    asyncio.run(fill())
    with contextlib.closing(sqlite3.connect(db)) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the main file, none in the WAL
    damage_pages(db)

    check_toml(tmp_path, fake)
    result = run_cli(tmp_path, "check", "--json")
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: the database file {db} is not a SQLite database or is damaged"), line

    async def run_bot() -> None:
        # The schema pages are fine, so the store opens and SELECT 1 answers: the damage shows at the first
        # query that reads a damaged page, and from then on readiness reports it.
        store = await Store.open(url)
        try:
            account = make_account("ds", "deepseek", fake.base_url("deepseek"))
            config = AppConfig(make_settings(tmp_path, database_url=url), (account,), "test")
            async with httpx.AsyncClient() as http:
                runtime = make_runtime(config, store, http, [ConsoleAdapter(io.StringIO(), interactive=False)])
                assert await runtime.readiness() == (True, {"store": "ok", "console": "ok"})
                with pytest.raises(Exception, match="malformed"):
                    await runtime.poll()
                ready, checks = await runtime.readiness()
                assert not ready
                assert checks["store"] == "unreachable: damaged file"  # the details go to the log only
                assert "restore it from a backup" in (store.damaged or "")
        finally:
            await store.close()

    asyncio.run(run_bot())


async def test_a_database_locked_by_another_writer_fails_one_poll_after_the_busy_timeout_and_loses_nothing(
    tmp_path: Path, fake: FakeProviderServer
) -> None:
    from sqlalchemy.exc import OperationalError

    db = tmp_path / "creditbot.db"
    url = f"sqlite+aiosqlite:///{db}"
    out = io.StringIO()
    account = make_account("ds", "deepseek", fake.base_url("deepseek"), warn_below=Decimal(200))
    channel = Channel("console", "ops", daily_summary=None, alerts=Severity.WARNING)
    config = AppConfig(make_settings(tmp_path, database_url=url), (account,), "test", channels=(channel,))
    store = await Store.open(url)
    try:
        async with httpx.AsyncClient() as http:
            runtime = make_runtime(config, store, http, [ConsoleAdapter(out, interactive=False)])
            locker = sqlite3.connect(db, isolation_level=None)  # e.g. someone's sqlite3 shell, mid-transaction
            locker.execute("BEGIN IMMEDIATE")
            try:
                # WAL readers are never blocked: the database answers, so the bot stays ready.
                assert await runtime.readiness() == (True, {"store": "ok", "console": "ok"})
                started = time.monotonic()
                with pytest.raises(OperationalError, match="database is locked"):
                    await runtime.poll()
                # It waited out busy_timeout (5 s) for the writer, then gave up instead of hanging.
                assert 4 < time.monotonic() - started < 15
            finally:
                locker.execute("ROLLBACK")
                locker.close()
            assert await store.readings.latest_readings(["ds"]) == {"ds": AccountReadings(None, None)}, (
                "all or nothing"
            )
            assert "below" not in out.getvalue()
            events = await runtime.poll()  # the next poll stores the reading and raises the alert
            assert [(e.rule.value, e.kind) for e in events] == [("balance", "fired")]
            assert out.getvalue().count("ds: below ¥200.00") == 1
    finally:
        await store.close()


# PostgreSQL going away while the bot runs


class CuttableProxy:
    """A loopback TCP forwarder to PostgreSQL. `cut()` is the server stopping: every connection is closed and
    new ones are refused; `restore()` is it coming back on the same address."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.listener: socket.socket | None = None
        self.connections: list[socket.socket] = []
        self.lock = threading.Lock()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        assert self.listener is not None
        self.listener.close()
        self.listener = None
        with self.lock:
            connections, self.connections = self.connections, []
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client = listener.accept()[0]
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self.lock:
                self.connections += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


async def test_postgresql_going_away_is_reported_and_polling_and_delivery_resume_when_it_is_back(
    tmp_path: Path, fake: FakeProviderServer, pg: tuple[str, str]
) -> None:
    import asyncpg

    from bot.web import start_http

    url, name = pg
    real = make_url(url)
    proxy = CuttableProxy((real.host or "127.0.0.1", real.port or 5432))
    proxy.restore()
    proxied = real.set(port=proxy.port).render_as_string(hide_password=False)
    dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    leader_lock = (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = $1 AND objid = $2 "
        "AND database = (SELECT oid FROM pg_database WHERE datname = $3)"
    )
    lock_args = (LEADER_LOCK_KEY >> 32, LEADER_LOCK_KEY & 0xFFFFFFFF, name)

    out = io.StringIO()
    account = make_account("ds", "deepseek", fake.base_url("deepseek"), warn_below=Decimal(200))
    channel = Channel("console", "ops", daily_summary=None, alerts=Severity.WARNING)
    settings = make_settings(tmp_path, database_url=proxied, poll_seconds=1, dispatch_seconds=0.5)
    config = AppConfig(settings, (account,), "test", channels=(channel,))
    store = await Store.open(proxied)
    observer = await asyncpg.connect(dsn)
    port = free_port()
    web = None
    runtime = None
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            runtime = make_runtime(
                config,
                store,
                http,
                [ConsoleAdapter(out, chart_dir=tmp_path / "charts", interactive=False)],
                leadership=PostgresLeadership(proxied),
            )
            web = await start_http(port, runtime.http_routes(), host="127.0.0.1")
            readyz = f"http://127.0.0.1:{port}/readyz"
            await runtime.start()
            await async_wait_until(lambda: "ds: below ¥200.00" in out.getvalue(), "the alert")
            assert (await http.get(readyz)).status_code == 200
            assert await observer.fetchval(leader_lock, *lock_args) == 1
            readings_before = await observer.fetchval("SELECT count(*) FROM readings")
            first_id = await observer.fetchval("SELECT min(id) FROM readings")
            # A message that falls due while the database is away.
            now = datetime.now(UTC)
            message = text_message("outage check", "queued before the outage").to_json()
            due = now + timedelta(seconds=2)
            await store.outbox.enqueue(
                NewMessage("test:console:ops:outage", "console", "ops", "test", "info", message, due), now=now
            )

            proxy.cut()
            answer = None

            async def unready() -> bool:
                nonlocal answer
                answer = await http.get(readyz)
                return answer.status_code == 503

            await async_wait_until(unready, "/readyz to report the database")
            assert answer is not None
            assert answer.json()["checks"]["store"].startswith("unreachable")
            assert "127.0.0.1" not in answer.json()["checks"]["store"]  # /readyz is public: no database details
            assert answer.json()["checks"]["console"] == "ok"
            # The session that held the leader lock is gone with the server: this process must know it.
            await async_wait_until(lambda: not runtime.leading, "the process to stop leading")
            assert await observer.fetchval(leader_lock, *lock_args) == 0
            await asyncio.sleep(3)  # the message falls due meanwhile; a process that does not lead sends nothing
            assert "outage check" not in out.getvalue()
            assert runtime.scheduler is not None
            assert runtime.scheduler.running, "failing jobs must not stop the scheduler"

            polls = fake.state.count("deepseek")
            proxy.restore()
            await async_wait_until(lambda: "outage check" in out.getvalue(), "the queued message", within=30)
            await async_wait_until(lambda: fake.state.count("deepseek") >= polls + 2, "polling to resume")
            await asyncio.sleep(1.5)  # more dispatch rounds: the message must not come twice
            assert (await http.get(readyz)).status_code == 200
            assert runtime.leading
            assert await observer.fetchval(leader_lock, *lock_args) == 1, "leading again means holding the lock"
        text = out.getvalue()
        assert text.count("outage check") == 1
        assert text.count("ds: below ¥200.00") == 1, "the alert state survived: no repeat after the outage"
        assert await observer.fetchval("SELECT min(id) FROM readings") == first_id, "readings were lost"
        assert await observer.fetchval("SELECT count(*) FROM readings") > readings_before + 1
        assert {r["status"] for r in await observer.fetch("SELECT status FROM outbox")} == {"sent"}
    finally:
        if runtime is not None:
            await runtime.stop()
        if web is not None:
            await web.cleanup()
        await store.close()
        await observer.close()
        if proxy.listener is not None:
            proxy.cut()
