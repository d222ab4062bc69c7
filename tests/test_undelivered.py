"""Failed deliveries are visible: `creditbot alerts` lists them, `doctor` counts them as a problem."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.store import NewMessage, Store
from tests.conftest import TEST_KEYS
from tests.fakes import FakeProviderServer
from tests.test_cli import run_cli


def seed_outbox(database: Path) -> None:
    """One message failed for good, one waiting for its retry, one sent."""

    async def go() -> None:
        store = await Store.open(f"sqlite+aiosqlite:///{database}")
        now = datetime.now(UTC) - timedelta(minutes=5)
        try:
            for key in ("alert:slack:C1:ds:balance:1", "summary:slack:C2:2026-11-29", "test:slack:C3:x"):
                await store.outbox.enqueue(
                    NewMessage(key, "slack", key.split(":")[2], "alert", "warning", {}, now), now=now
                )
            items = {item.key: item for item in await store.outbox.items()}
            for item in items.values():
                await store.outbox.claim(item, now, timedelta(minutes=5))
            await store.outbox.mark_failed(items["alert:slack:C1:ds:balance:1"].id, "channel_not_found", None)
            await store.outbox.mark_failed(
                items["summary:slack:C2:2026-11-29"].id, "HTTP 503", now + timedelta(hours=1)
            )
            await store.outbox.mark_sent(items["test:slack:C3:x"].id, now)
        finally:
            await store.close()

    asyncio.run(go())


def test_alerts_lists_what_was_not_delivered_and_doctor_counts_it(
    tmp_path: Path, fake: FakeProviderServer
) -> None:
    database = tmp_path / "data" / "creditbot.db"
    database.parent.mkdir()
    seed_outbox(database)
    toml = f"""
[[accounts]]
name = "ds"
provider = "deepseek"
api_key = "{TEST_KEYS["deepseek"]}"
base_url = "{fake.base_url("deepseek")}"
"""
    alerts = run_cli(tmp_path, "alerts", toml=toml)
    assert alerts.returncode == 0, alerts.stderr
    lines = alerts.stdout.split("Undelivered:", 1)[1].strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("slack:C2: summary:slack:C2:2026-11-29: retrying (attempt 1) at ")
    assert lines[0].endswith(": HTTP 503")
    assert lines[1].startswith("slack:C1: alert:slack:C1:ds:balance:1: failed at ")
    assert lines[1].endswith(": channel_not_found")
    doctor = run_cli(tmp_path, "doctor", toml=toml)
    assert doctor.returncode == 1
    assert "outbox: ! 1 message not delivered; `creditbot alerts` lists them" in doctor.stdout + doctor.stderr


def test_doctor_shows_a_push_channel_by_scheme_and_host_only(tmp_path: Path, fake: FakeProviderServer) -> None:
    toml = f"""
[[accounts]]
name = "ds"
provider = "deepseek"
api_key = "{TEST_KEYS["deepseek"]}"
base_url = "{fake.base_url("deepseek")}"

[[channels]]
platform = "webhook"
id = "pager"
url = "https://hooks.example.com/creditbot/HOOK-CANARY-0123456789"
secret = "${{HOOK_SECRET}}"

[[channels]]
platform = "apprise"
id = "oncall"
url = "json://hooks.example.com/apprise/APPRISE-CANARY-0123456789"
"""
    doctor = run_cli(tmp_path, "doctor", toml=toml, env={"HOOK_SECRET": "SECRET-CANARY-0123456789"})
    output = doctor.stdout + doctor.stderr
    assert "channel webhook:pager: delivers to https://hooks.example.com" in output
    assert "channel apprise:oncall: delivers to json://hooks.example.com" in output
    assert "CANARY" not in output
