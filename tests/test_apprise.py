"""The `apprise` platform, end to end on loopback: Apprise's `json://` and `form://` services post to a local
HTTP receiver and `mailto://` mails a local SMTP server; what arrives (title, body, type, chart), what a
refusal does to the outbox (retried with back-off, sent once, failed after 12 attempts), and that the URL,
a secret, shows nowhere: not in logs, output, errors or the database."""

from __future__ import annotations

import base64
import logging
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from adapters.apprise_channel import render
from adapters.apprise_channel.adapter import AppriseAdapter
from adapters.apprise_channel.urls import describe_url
from bot.adapter import AdapterConfigError, DeliveryError
from bot.channels import Channel
from bot.config import AppConfig
from bot.delivery import MAX_ATTEMPTS
from bot.messages import Field, Message, Section, text_message
from bot.models import Severity
from bot.runtime import Runtime
from bot.store import NewMessage, Store
from tests.apprise_receivers import HttpReceiver, SmtpReceiver
from tests.conftest import TEST_KEYS, make_account, make_runtime, make_settings
from tests.fakes import FakeProviderServer
from tests.test_cli import run_cli

ROOT = Path(__file__).resolve().parents[1]
CANARY = "hook-CANARY-0123456789"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as server:
        yield server


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as server:
        yield server


def channel(channel_id: str, url: str, **options: Any) -> Channel:
    return Channel("apprise", channel_id, url=SecretStr(url), **options)


def section(status: str = "warning", note: str | None = None) -> Section:
    fields = (Field("Balance", "¥110.00 left"), Field("Days left", "3.0"), Field("Status", status))
    return Section("ds", "deepseek", status, "¥110.00 left", fields, note)


def alert(severity: Severity, kind: str = "alert", mentions: tuple[str, ...] = ()) -> Message:
    title = "ds: recovered" if kind == "recovery" else "ds: below ¥200.00"
    return Message(
        title, title, severity, (section(),), "Balance fell.", "rule: balance", mentions=mentions, kind=kind
    )


def no_canary(*texts: str) -> None:
    for text in texts:
        assert CANARY not in text
        assert "CANARY" not in text  # not even a piece of it


# --- What doctor shows of a URL ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"json://user:password@hooks.example.com:8443/{CANARY}?+X-Token=abc", "json://hooks.example.com"),
        ("form://127.0.0.1:9000/in", "form://127.0.0.1"),
        ("mailto://bot:app-password@smtp.example.com?to=ops@example.com", "mailto://smtp.example.com"),
        (
            "workflows://prod-01.westus.logic.azure.com:443/wf123/sig456",
            "workflows://prod-01.westus.logic.azure.com",
        ),
        # Schemes whose first part is a token or topic, not a host: the scheme alone.
        ("tgram://123456789:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQ/-100123", "tgram://"),
        ("ntfy://my-secret-topic", "ntfy://"),
        ("discord://webhook_id/webhook_token", "discord://"),
        ("unknown://whatever/secret", "unknown://"),
        ("not a url at all", "(not an Apprise URL)"),
    ],
)
def test_describe_url_shows_the_scheme_and_a_real_host_only(url: str, shown: str) -> None:
    assert describe_url(url) == shown


# --- What arrives ------------------------------------------------------------------------------------------------


async def test_an_alert_has_its_severity_as_the_apprise_type_and_mentions_first(receiver: HttpReceiver) -> None:
    adapter = AppriseAdapter([channel("oncall", receiver.url("json", f"/{CANARY}"))])
    await adapter.send("oncall", alert(Severity.INFO))
    await adapter.send("oncall", alert(Severity.WARNING))
    await adapter.send("oncall", alert(Severity.CRITICAL, mentions=("@here", "@oncall-team")))
    await adapter.send("oncall", alert(Severity.INFO, kind="recovery"))
    payloads = [post.json for post in receiver.posts]
    assert [p["type"] for p in payloads] == ["info", "warning", "failure", "success"]
    assert payloads[2]["title"] == "ds: below ¥200.00"
    # JSON shows text as it is: plain text, no Markdown to show as asterisks.
    assert payloads[2]["message"].startswith("@here @oncall-team\nBalance fell.\nds (deepseek): ¥110.00 left")
    assert "**" not in payloads[2]["message"]
    assert not payloads[0]["message"].startswith("@")
    assert [p["attachments"] for p in payloads] == [[]] * 4  # no chart, nothing attached


async def test_a_summary_chart_is_attached_to_json_and_form(receiver: HttpReceiver) -> None:
    adapter = AppriseAdapter([channel("j", receiver.url("json", "/j")), channel("f", receiver.url("form", "/f"))])
    summary = Message(
        "Daily LLM credits summary", "1 accounts", Severity.WARNING, (section(),), footer="as of 09:00",
        chart=PNG, chart_name="credits-2030-01-02.png", kind="summary",
    )  # fmt: skip
    await adapter.send("j", summary)
    await adapter.send("f", summary)
    as_json, as_form = receiver.posts
    (attached,) = as_json.json["attachments"]
    assert attached["filename"] == "credits-2030-01-02.png"
    assert attached["mimetype"] == "image/png"
    assert base64.b64decode(attached["base64"]) == PNG
    assert as_json.json["type"] == "warning"
    assert as_form.fields["title"] == "Daily LLM credits summary"
    assert as_form.fields["type"] == "warning"
    assert "ds (deepseek): ¥110.00 left [warning]" in as_form.fields["message"]
    assert as_form.files == [("credits-2030-01-02.png", "image/png", PNG)]


async def test_email_gets_html_from_markdown_and_the_chart_as_a_png_attachment(smtp: SmtpReceiver) -> None:
    adapter = AppriseAdapter([channel("mail", smtp.url("bot@example.com", "ops@example.com"))])
    message = Message(
        "Daily LLM credits summary", "1 accounts", Severity.INFO,
        (section(note="stale: <img src=x onerror=alert(1)> *boom*"),), footer="as of 09:00",
        chart=PNG, chart_name="credits.png", mentions=("@ops",), kind="summary",
    )  # fmt: skip
    await adapter.send("mail", message)
    ((sender, to, mail),) = smtp.mails
    assert (sender, to, mail["Subject"]) == ("bot@example.com", ["ops@example.com"], "Daily LLM credits summary")
    html = mail.get_body(("html",))
    assert html is not None
    content = html.get_content()
    assert "<p>@ops</p>" in content
    assert "<strong>ds</strong> (deepseek): ¥110.00 left" in content
    assert "<li>Days left: 3.0</li>" in content
    # Data is shown, never interpreted: no tag and no emphasis from a provider's error text.
    assert "<img" not in content
    assert "&lt;img src=x onerror=alert(1)&gt; *boom*" in content
    (png,) = [part for part in mail.iter_attachments() if part.get_content_type() == "image/png"]
    assert png.get_filename() == "credits.png"
    assert png.get_content() == PNG


def test_markdown_escapes_what_data_could_start() -> None:
    assert render.escape("# a [link](http://x) *b* _c_ `d`") == (r"\# a \[link\](http://x) \*b\* \_c\_ \`d\`")
    assert render.escape("- item\n1. item") == "\\- item\n1\\. item"
    assert render.escape("a<b & c>d") == "a&lt;b &amp; c&gt;d"


# --- Refusals and the outbox -------------------------------------------------------------------------------------


@pytest.fixture
async def apprise_runtime(
    tmp_path: Path, fake: FakeProviderServer, receiver: HttpReceiver
) -> AsyncIterator[dict[str, Any]]:
    settings = make_settings(tmp_path)
    accounts = (make_account("ds", "deepseek", fake.base_url("deepseek"), warn_below=Decimal(200)),)
    oncall = channel("oncall", receiver.url("json", f"/{CANARY}"))
    config = AppConfig(settings, accounts, "test", channels=(oncall,))
    store = await Store.open(settings.database_url)
    async with httpx.AsyncClient() as http:
        runtime = make_runtime(config, store, http, [AppriseAdapter([oncall])])
        clock = {"now": datetime.now(UTC)}
        runtime.clock = lambda: clock["now"]
        yield {"runtime": runtime, "clock": clock, "store": store, "db": tmp_path / "creditbot.db"}
    await store.close()


async def _queue_alert(runtime: Runtime, now: datetime) -> None:
    message = replace(text_message("ds: below ¥200.00", "Balance fell."), kind="alert")
    await runtime.store.outbox.enqueue(
        NewMessage(
            "alert:apprise:oncall:ds:balance:1", "apprise", "oncall", "alert", "warning", message.to_json(), now
        ),
        now=now,
    )


async def test_a_refusal_is_retried_with_back_off_and_sent_exactly_once(
    apprise_runtime: dict[str, Any], receiver: HttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    runtime: Runtime = apprise_runtime["runtime"]
    clock: dict[str, datetime] = apprise_runtime["clock"]
    receiver.statuses = [500, 500]
    await _queue_alert(runtime, clock["now"])
    await runtime.dispatch()
    (item,) = await runtime.store.outbox.items()
    assert (item.status, item.attempts) == ("pending", 1)
    assert (
        item.last_error
        == "apprise channel oncall: the service did not accept the notification (see Apprise's warning)"
    )
    assert item.not_before - clock["now"] == timedelta(seconds=30)  # the outbox's back-off, first step
    await runtime.dispatch()
    assert len(receiver.posts) == 1  # not before the back-off has passed
    for _ in range(2):
        clock["now"] += timedelta(minutes=2)
        await runtime.dispatch()
    clock["now"] += timedelta(hours=1)
    await runtime.dispatch()  # nothing left to send
    assert [post.status for post in receiver.posts] == [500, 500, 200]
    (item,) = await runtime.store.outbox.items()
    assert (item.status, item.attempts) == ("sent", 3)
    # Apprise said why (its warning), the delivery log said which channel; neither says where.
    assert "error=500" in caplog.text
    assert "apprise:oncall failed (attempt 1)" in caplog.text
    no_canary(caplog.text, apprise_runtime["db"].read_bytes().decode("latin-1"))


async def test_after_twelve_refusals_the_message_is_failed_and_no_longer_tried(
    apprise_runtime: dict[str, Any], receiver: HttpReceiver
) -> None:
    runtime: Runtime = apprise_runtime["runtime"]
    clock: dict[str, datetime] = apprise_runtime["clock"]
    receiver.always = 500
    await _queue_alert(runtime, clock["now"])
    for _ in range(MAX_ATTEMPTS + 3):
        await runtime.dispatch()
        clock["now"] += timedelta(hours=1, seconds=1)  # past the longest back-off
    assert len(receiver.posts) == MAX_ATTEMPTS == 12
    (item,) = await runtime.store.outbox.items()
    assert (item.status, item.attempts) == ("failed", 12)
    assert (item.last_error or "").startswith("apprise channel oncall:")


async def test_no_answer_in_time_is_a_retryable_delivery_error(receiver: HttpReceiver) -> None:
    receiver.delay = 1.5
    adapter = AppriseAdapter([channel("slow", receiver.url("json", "/slow"))], timeout=0.3)
    with pytest.raises(DeliveryError, match=r"^apprise channel slow: no answer within 0.3 s$") as caught:
        await adapter.send("slow", alert(Severity.WARNING))
    assert not caught.value.permanent


async def test_a_channel_no_longer_configured_is_a_permanent_failure(receiver: HttpReceiver) -> None:
    adapter = AppriseAdapter([channel("oncall", receiver.url("json", "/x"))])
    with pytest.raises(DeliveryError, match="apprise channel gone is not configured") as caught:
        await adapter.send("gone", alert(Severity.WARNING))
    assert caught.value.permanent


# --- The URL is a secret -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [f"bogus://{CANARY}", f"json://[bad/{CANARY}", f"tgram://{CANARY}/x", f"mailto://{CANARY}", "json://", " "],
)
def test_a_url_apprise_cannot_use_is_a_config_error_naming_the_channel_only(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AdapterConfigError, match=r"^apprise channel oncall-teams: url ") as caught:
        AppriseAdapter([channel("oncall-teams", url)])
    no_canary(str(caught.value), caplog.text)  # Apprise logs an unparseable URL whole, at ERROR: scrubbed
    assert logging.getLogger("apprise").getEffectiveLevel() >= logging.WARNING


def test_several_urls_in_one_channel_are_refused() -> None:
    with pytest.raises(AdapterConfigError, match="url must be one Apprise URL, not 2"):
        AppriseAdapter([channel("two", "json://127.0.0.1:1/a, form://127.0.0.1:1/b")])


# --- Through the CLI ---------------------------------------------------------------------------------------------


def apprise_toml(fake: FakeProviderServer) -> str:
    return f"""
[[accounts]]
name = "ds"
provider = "deepseek"
api_key = "{TEST_KEYS["deepseek"]}"
base_url = "{fake.base_url("deepseek")}"
warn_below = "200"

[[channels]]
platform = "apprise"
id = "oncall-teams"
url = "${{TEAMS_WEBHOOK_URL}}"
accounts = ["*"]
daily_summary = "09:00"
mention = "@oncall"

[[channels]]
platform = "apprise"
id = "forms"
url = "${{FORM_URL}}"
daily_summary = false
"""


def _all_text(tmp_path: Path, *results: subprocess.CompletedProcess[str]) -> list[str]:
    texts = [r.stdout + r.stderr for r in results]
    for path in (tmp_path / "data").glob("creditbot.db*"):  # the database, its WAL and journal
        texts.append(path.read_bytes().decode("latin-1"))
    with sqlite3.connect(tmp_path / "data" / "creditbot.db") as db:
        texts.append(repr(db.execute("SELECT * FROM outbox").fetchall()))
    return texts


def test_summary_send_and_notify_test_deliver_through_apprise_and_never_show_the_url(
    tmp_path: Path, fake: FakeProviderServer, receiver: HttpReceiver
) -> None:
    env = {
        "TEAMS_WEBHOOK_URL": receiver.url("json", f"/{CANARY}"),
        "FORM_URL": receiver.url("form", "/forms-CANARY-in"),
        "CREDITBOT_LOG_LEVEL": "DEBUG",
    }
    summary = run_cli(tmp_path, "summary", "--send", "--channel", "oncall-teams", env=env, toml=apprise_toml(fake))
    assert summary.returncode == 0, summary.stderr
    assert "apprise:oncall-teams: summary sent" in summary.stderr
    (post,) = receiver.posts
    assert post.path == f"/{CANARY}"
    assert post.json["title"] == "Daily LLM credits summary"
    assert post.json["type"] == "warning"  # ¥110 is below the ¥200 warning level
    assert post.json["message"].startswith("ds (deepseek): ¥110.00 left [warning]")  # a summary pings no one
    (chart,) = post.json["attachments"]
    assert chart["mimetype"] == "image/png"
    assert chart["filename"].startswith("credits-")
    assert base64.b64decode(chart["base64"]).startswith(b"\x89PNG")

    tested = run_cli(tmp_path, "notify-test", "--channel", "forms", env=env)
    assert tested.returncode == 0, tested.stderr
    assert len(receiver.posts) == 2
    form = receiver.posts[1].fields
    assert (form["title"], form["type"]) == ("creditbot test message", "info")
    assert form["message"].startswith("Delivery to apprise:forms works")

    receiver.always = 500
    refused = run_cli(tmp_path, "notify-test", "--channel", "oncall-teams", env=env)
    assert refused.returncode == 1
    assert (
        "apprise:oncall-teams: not delivered yet (apprise channel oncall-teams: the service did not accept the "
        "notification (see Apprise's warning)); it stays queued" in refused.stderr
    )
    assert "WARNING apprise: Failed to send JSON POST notification" in refused.stderr  # Apprise's reason
    for result in (summary, tested, refused):
        assert "Traceback" not in result.stderr
        assert "DEBUG apprise" not in result.stderr  # Apprise stays at WARNING, also while it loads
    no_canary(*_all_text(tmp_path, summary, tested, refused))


def test_an_unusable_url_stops_the_command_with_status_78_naming_the_channel(
    tmp_path: Path, fake: FakeProviderServer
) -> None:
    env = {"TEAMS_WEBHOOK_URL": f"msteams://{CANARY}/a/b", "FORM_URL": "form://127.0.0.1:9/x"}
    result = run_cli(tmp_path, "notify-test", env=env, toml=apprise_toml(fake))
    assert result.returncode == 78, result.stderr
    assert "apprise channel oncall-teams: url is not one Apprise can use" in result.stderr
    assert "Traceback" not in result.stderr
    no_canary(result.stdout, result.stderr)


def test_a_missing_url_is_a_configuration_error(tmp_path: Path, fake: FakeProviderServer) -> None:
    toml = apprise_toml(fake).replace('url = "${FORM_URL}"\n', "")
    result = run_cli(tmp_path, "notify-test", env={"TEAMS_WEBHOOK_URL": "json://127.0.0.1:9/x"}, toml=toml)
    assert result.returncode == 78
    assert "url: is required for platform apprise" in result.stderr


# --- Start-up cost -----------------------------------------------------------------------------------------------

_IMPORTED = (
    "import sys\n"
    "from bot import app\n"
    "config = app.load()\n"
    "adapters = app.build_adapters(config, listening=False)\n"
    "print(sorted(a.platform for a in adapters), 'apprise' in sys.modules)\n"
)


@pytest.mark.parametrize(
    ("channels", "expected"),
    [
        ('[[channels]]\nplatform = "console"\nid = "ops"\n', "['console'] False"),
        (
            '[[channels]]\nplatform = "apprise"\nid = "ops"\nurl = "json://127.0.0.1:9/x"\n',
            "['apprise', 'console'] True",
        ),
    ],
)
def test_apprise_is_imported_only_when_a_channel_uses_it(
    tmp_path: Path, fake: FakeProviderServer, channels: str, expected: str
) -> None:
    (tmp_path / "creditbot.toml").write_text(apprise_toml(fake).split("[[channels]]")[0] + channels)
    env = {"PATH": "", "HOME": str(tmp_path), "CREDITBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/x.db"}
    result = subprocess.run(
        [sys.executable, "-c", _IMPORTED], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == expected


def test_creditbot_help_does_not_import_apprise() -> None:
    code = (
        "import sys, bot.cli, bot.app\nprint('apprise' in sys.modules, 'adapters.apprise_channel' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == "False False"
