"""The `webhook` platform against a loopback receiver (`tests/webhook_receiver.py`) that checks signatures as
the README tells receivers to: signed bodies that a tampered byte invalidates, bodies that match
`docs/webhook-message.schema.json` and stay byte-identical across retries, 5xx and 429 retried by the outbox
(Retry-After honoured, never sooner than a second), other 4xx failed for good, `notify-test`, `summary --send`,
alerts through the runtime and `run`, configuration errors as one line with exit 78, and neither the url nor
the secret in any output."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from pydantic import SecretStr

import bot
from adapters.webhook import WebhookAdapter, body_bytes, message_kind
from bot.adapter import AdapterConfigError, DeliveryError
from bot.channels import Channel
from bot.config import AppConfig
from bot.messages import Message, text_message
from bot.models import Severity
from bot.runtime import Runtime
from bot.store import Store
from tests.conftest import TEST_KEYS, make_account, make_runtime, make_settings
from tests.fakes import FakeProviderServer
from tests.test_cli import run_cli
from tests.test_run_e2e import BotProcess, bot_env, free_port, just_passed
from tests.test_runtime import Clock
from tests.webhook_receiver import Answer, Received, WebhookReceiver, verify

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "docs" / "webhook-message.schema.json").read_text())
# Canaries: neither may reach a log line, stdout or stderr.
SECRET = "whsec-canary-7c1f0e9a2b4d"
URL_TOKEN = "T0canary-url-token-5e8d"
SIGNATURE = re.compile(r"v1=[0-9a-f]{64}")


def valid_body(received: Received) -> dict[str, Any]:
    """The body, checked against the schema and the signature, and for the serialization the docs promise."""
    assert received.verified
    body: dict[str, Any] = json.loads(received.body)
    jsonschema.validate(body, SCHEMA, cls=jsonschema.Draft202012Validator)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert received.body == canonical
    assert received.headers["Content-Type"] == "application/json"
    assert received.headers["User-Agent"] == f"creditbot/{bot.__version__}"
    assert SIGNATURE.fullmatch(received.headers["X-Creditbot-Signature"])
    return body


@pytest.fixture(autouse=True)
def _no_webhook_canary_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level("DEBUG")
    yield
    for record in [*caplog.get_records("setup"), *caplog.get_records("call")]:
        text = record.getMessage() + (record.exc_text or "")
        assert SECRET not in text
        assert URL_TOKEN not in text


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


# --- The adapter alone ---------------------------------------------------------------------------------------


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(SECRET, path=f"/hooks/{URL_TOKEN}") as receiver:
        yield receiver


def webhook_channel(hook: WebhookReceiver, **options: Any) -> Channel:
    options.setdefault("daily_summary", None)
    options.setdefault("alerts", Severity.WARNING)
    return Channel("webhook", "pager", url=SecretStr(hook.url), secret=SecretStr(SECRET), **options)


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


async def test_the_signature_covers_the_body_and_the_timestamp(hook: WebhookReceiver) -> None:
    adapter = WebhookAdapter.for_channels([webhook_channel(hook)])
    try:
        await adapter.send("pager", text_message("hello", "one message"), key="test:webhook:pager:1")
    finally:
        await adapter.stop()
    (sent,) = hook.received
    assert sent.status == 200
    body = valid_body(sent)
    assert body["kind"] == "test"  # a message without a kind: its key says what it is
    signed = {k: v for k, v in sent.headers.items() if k.startswith(("X-Creditbot", "Content-Type"))}
    # The receiver's own check refuses the same request with one byte of the body changed, or with another
    # timestamp, and accepts it unchanged: the signature covers both.
    tampered = sent.body.replace(b"one message", b"one massage")
    assert tampered != sent.body
    assert not verify(SECRET, signed, tampered)
    assert post(hook.url, tampered, signed) == 401
    later = {**signed, "X-Creditbot-Timestamp": str(int(signed["X-Creditbot-Timestamp"]) + 1)}
    assert post(hook.url, sent.body, later) == 401
    assert not verify("another-secret", signed, sent.body)
    assert post(hook.url, sent.body, signed) == 200  # the untouched request (a replay within the window)
    assert [r.status for r in hook.received] == [200, 401, 401, 200]


async def test_an_old_timestamp_is_refused_by_the_receiver(hook: WebhookReceiver) -> None:
    adapter = WebhookAdapter.for_channels([webhook_channel(hook)], clock=lambda: time.time() - 3600)
    try:
        with pytest.raises(DeliveryError) as failed:
            await adapter.send("pager", text_message("hello", "one message"), key="k")
    finally:
        await adapter.stop()
    assert failed.value.permanent
    assert str(failed.value) == "webhook pager answered 401"
    (sent,) = hook.received
    assert not sent.verified


def test_the_body_is_deterministic_and_keeps_no_chart_bytes() -> None:
    message = Message("Daily", "1 accounts", chart=b"\x89PNG chart bytes", kind="summary", mentions=("@here",))
    first = body_bytes(message, "summary:webhook:pager:2024-05-01")
    again = body_bytes(Message.from_json(message.to_json()), "summary:webhook:pager:2024-05-01")
    assert first == again  # what the outbox hands back on a retry gives the same bytes
    body = json.loads(first)
    jsonschema.validate(body, SCHEMA, cls=jsonschema.Draft202012Validator)
    assert body["has_chart"] is True
    assert b"PNG" not in first
    assert body["mentions"] == ["@here"]


@pytest.mark.parametrize(
    ("kind", "severity", "key", "expected"),
    [
        ("recovery", Severity.INFO, "alert:x", "recovery"),
        ("", Severity.INFO, "summary:webhook:pager:2024-05-01", "summary"),
        ("", Severity.INFO, "test:webhook:pager:2024", "test"),
        ("", Severity.WARNING, "alert:webhook:pager:ds:balance:1:0:fired:1", "alert"),
        ("", Severity.INFO, "alert:webhook:pager:ds:balance:1:1:recovered:0", "recovery"),
        ("", Severity.INFO, None, "alert"),
    ],
)
def test_a_message_without_a_kind_gets_one_from_its_key(
    kind: str, severity: Severity, key: str | None, expected: str
) -> None:
    assert message_kind(Message("t", "s", severity=severity, kind=kind), key) == expected


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example.com/x",
        "hooks.example.com/creditbot",
        f"https:///{URL_TOKEN}",
        f"https://hooks.example.com:99999/{URL_TOKEN}",
        f"https://hooks.example.com/{URL_TOKEN} x",
        f"file:///etc/{URL_TOKEN}",
    ],
)
def test_a_url_that_cannot_work_is_a_configuration_error_naming_the_channel(url: str) -> None:
    channel = Channel("webhook", "pager", url=SecretStr(url), secret=SecretStr(SECRET))
    with pytest.raises(AdapterConfigError) as refused:
        WebhookAdapter.for_channels([channel])
    assert str(refused.value).startswith("channel webhook:pager: url: must be an http:// or https:// address")
    assert URL_TOKEN not in str(refused.value)


def test_an_empty_secret_is_a_configuration_error() -> None:
    channel = Channel("webhook", "pager", url=SecretStr("https://h.example/x"), secret=SecretStr(""))
    with pytest.raises(AdapterConfigError, match=r"^channel webhook:pager: secret: is empty$"):
        WebhookAdapter.for_channels([channel])


async def test_an_unreachable_receiver_is_retried_and_its_url_is_not_said() -> None:
    url = f"http://127.0.0.1:{free_port()}/hooks/{URL_TOKEN}"
    channel = Channel("webhook", "pager", url=SecretStr(url), secret=SecretStr(SECRET))
    adapter = WebhookAdapter.for_channels([channel])
    try:
        with pytest.raises(DeliveryError) as failed:
            await adapter.send("pager", text_message("hello", "one message"))
    finally:
        await adapter.stop()
    assert not failed.value.permanent
    assert str(failed.value).startswith("webhook pager is unreachable: ")
    assert "127.0.0.1" not in str(failed.value)
    assert URL_TOKEN not in str(failed.value)


# --- Through the runtime and its outbox ----------------------------------------------------------------------


@pytest.fixture
async def pager(tmp_path: Path, fake: FakeProviderServer, hook: WebhookReceiver) -> AsyncIterator[dict[str, Any]]:
    """A runtime with the fake's DeepSeek account (¥110, below ¥200) and one webhook channel, on a settable
    clock that the signatures' timestamps follow too."""
    clock = Clock(datetime.now(UTC))
    settings = make_settings(tmp_path)
    accounts = (make_account("ds", "deepseek", fake.base_url("deepseek"), warn_below=Decimal(200)),)
    channel = webhook_channel(hook, mention="@here")
    config = AppConfig(settings, accounts, "test", channels=(channel,))
    store = await Store.open(settings.database_url)
    adapter = WebhookAdapter.for_channels(config.channels, clock=lambda: clock.now.timestamp())
    async with httpx.AsyncClient() as http:
        runtime = make_runtime(config, store, http, [adapter], clock=clock)
        try:
            yield {"runtime": runtime, "clock": clock, "hook": hook, "channel": channel, "store": store}
        finally:
            await adapter.stop()
            await store.close()


async def only_item(runtime: Runtime, kind: str) -> Any:
    (item,) = await runtime.store.outbox.items(kind)
    return item


async def test_a_500_then_a_200_is_one_delivery_with_the_same_bytes(pager: dict[str, Any]) -> None:
    runtime: Runtime = pager["runtime"]
    clock: Clock = pager["clock"]
    hook: WebhookReceiver = pager["hook"]
    hook.script.append(Answer(500))
    key = await runtime.notify_test(pager["channel"])
    item = await only_item(runtime, "test")
    assert (item.status, item.attempts, item.last_error) == ("pending", 1, "webhook pager answered 500")
    assert item.not_before >= clock.now + timedelta(seconds=30)  # the outbox's back-off
    clock.now += timedelta(seconds=10)
    await runtime.dispatch()
    assert len(hook.received) == 1  # not before the back-off ends
    clock.now += timedelta(seconds=25)
    await runtime.dispatch()
    item = await only_item(runtime, "test")
    assert (item.status, item.attempts) == ("sent", 2)
    first, second = hook.received
    assert [first.status, second.status] == [500, 200]
    assert hook.delivered() == [second]  # exactly one delivery
    assert first.body == second.body  # byte-identical across attempts
    assert first.headers["X-Creditbot-Timestamp"] != second.headers["X-Creditbot-Timestamp"]
    assert first.headers["X-Creditbot-Signature"] != second.headers["X-Creditbot-Signature"]
    body = valid_body(second)
    assert (body["kind"], body["severity"], body["key"]) == ("test", "info", key)
    assert body["title"] == "creditbot test message"


@pytest.mark.parametrize(("retry_after", "wait"), [("2", 2.0), ("0", 1.0)])
async def test_a_429_is_retried_no_sooner_than_its_retry_after(
    pager: dict[str, Any], retry_after: str, wait: float
) -> None:
    runtime: Runtime = pager["runtime"]
    clock: Clock = pager["clock"]
    hook: WebhookReceiver = pager["hook"]
    hook.script.append(Answer(429, {"Retry-After": retry_after}))
    failed_at = clock.now
    await runtime.notify_test(pager["channel"])
    item = await only_item(runtime, "test")
    assert (item.status, item.last_error) == ("pending", "webhook pager answered 429")
    assert item.not_before == failed_at + timedelta(seconds=wait)  # Retry-After, and never under a second
    clock.now = failed_at + timedelta(seconds=wait - 0.5)
    await runtime.dispatch()
    assert len(hook.received) == 1
    clock.now = failed_at + timedelta(seconds=wait)
    await runtime.dispatch()
    assert [r.status for r in hook.received] == [429, 200]
    assert (await only_item(runtime, "test")).status == "sent"


async def test_a_404_fails_for_good(pager: dict[str, Any]) -> None:
    runtime: Runtime = pager["runtime"]
    clock: Clock = pager["clock"]
    hook: WebhookReceiver = pager["hook"]
    hook.script.append(Answer(404))
    await runtime.notify_test(pager["channel"])
    item = await only_item(runtime, "test")
    assert (item.status, item.attempts, item.last_error) == ("failed", 1, "webhook pager answered 404")
    clock.now += timedelta(hours=2)
    await runtime.dispatch()
    assert [r.status for r in hook.received] == [404]  # never tried again


async def test_an_alert_carries_its_outbox_key_mention_and_values(pager: dict[str, Any]) -> None:
    runtime: Runtime = pager["runtime"]
    hook: WebhookReceiver = pager["hook"]
    await runtime.poll()
    item = await only_item(runtime, "alert")
    assert item.status == "sent"
    (sent,) = hook.delivered()
    body = valid_body(sent)
    assert body["kind"] == "alert"
    assert body["severity"] == "warning"
    assert body["key"] == item.key
    assert re.fullmatch(r"alert:webhook:pager:ds:balance:\d+:\d+:fired:\d+", body["key"])
    assert body["title"] == "ds: below ¥200.00"
    assert body["mentions"] == ["@here"]
    assert body["has_chart"] is False
    (section,) = body["sections"]
    assert (section["account"], section["provider"], section["status"]) == ("ds", "deepseek", "warning")
    assert {"label": "Balance", "value": section["headline"]} in section["fields"]
    assert section["values"]["balance"] == 110
    assert section["values"]["currency"] == "CNY"
    assert body["as_of"] == section["values"]["fetched_at"]


# --- The commands, as a user runs them -----------------------------------------------------------------------


def webhook_toml(fake: FakeProviderServer, url: str, *, daily_summary: str = "09:00", secret: bool = True) -> str:
    secret_line = 'secret = "${CREDITBOT_WEBHOOK_SECRET}"\n' if secret else ""
    return f"""
[[accounts]]
name = "ds"
provider = "deepseek"
api_key = "{TEST_KEYS["deepseek"]}"
base_url = "{fake.base_url("deepseek")}"
warn_below = "200"

[[channels]]
platform = "webhook"
id = "pager"
url = "{url}"
{secret_line}daily_summary = "{daily_summary}"
alerts = "warning"
"""


def webhook_env() -> dict[str, str]:
    return {"CREDITBOT_WEBHOOK_SECRET": SECRET}


def no_canary(*outputs: str) -> None:
    for output in outputs:
        assert SECRET not in output
        assert URL_TOKEN not in output
        assert "Traceback" not in output


def test_notify_test_and_summary_send_reach_the_receiver(
    tmp_path: Path, fake: FakeProviderServer, hook: WebhookReceiver
) -> None:
    toml = webhook_toml(fake, hook.url)
    tested = run_cli(tmp_path, "notify-test", "--channel", "pager", env=webhook_env(), toml=toml)
    assert tested.returncode == 0, tested.stderr
    sent = run_cli(tmp_path, "summary", "--send", env=webhook_env())
    assert sent.returncode == 0, sent.stderr
    assert "webhook:pager: summary sent" in sent.stderr
    no_canary(tested.stdout, tested.stderr, sent.stdout, sent.stderr)
    test, summary = (valid_body(r) for r in hook.delivered())
    assert test["kind"] == "test"
    assert test["key"].startswith("test:webhook:pager:")
    assert "Delivery to webhook:pager works" in test["text"]
    assert test["sections"] == []
    assert summary["kind"] == "summary"
    assert summary["key"].startswith("summary:webhook:pager:manual-")
    assert summary["title"] == "Daily LLM credits summary"
    assert summary["has_chart"] is True
    assert [s["account"] for s in summary["sections"]] == ["ds"]
    assert summary["sections"][0]["values"]["balance"] == 110


def test_a_refusing_receiver_is_one_line_without_the_url(
    tmp_path: Path, fake: FakeProviderServer, hook: WebhookReceiver
) -> None:
    hook.script.append(Answer(404))
    result = run_cli(tmp_path, "notify-test", env=webhook_env(), toml=webhook_toml(fake, hook.url))
    assert result.returncode == 1
    assert "webhook:pager: not delivered (webhook pager answered 404)" in result.stderr
    no_canary(result.stdout, result.stderr)


def test_run_delivers_the_alert_and_the_summary(
    tmp_path: Path, fake: FakeProviderServer, hook: WebhookReceiver
) -> None:
    (tmp_path / "creditbot.toml").write_text(webhook_toml(fake, hook.url, daily_summary=just_passed()))
    bot = BotProcess(tmp_path, {**bot_env(tmp_path, free_port()), **webhook_env()})
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(hook.delivered()) < 2:
            time.sleep(0.2)
    finally:
        assert bot.terminate() == 0, "".join(bot.err)
    no_canary(bot.stdout, "".join(bot.err))
    kinds = sorted((body["kind"], body["key"].split(":")[0]) for body in map(valid_body, hook.delivered()))
    assert kinds == [("alert", "alert"), ("summary", "summary")], "".join(bot.err)


def test_a_missing_secret_is_one_line_and_exit_78(
    tmp_path: Path, fake: FakeProviderServer, hook: WebhookReceiver
) -> None:
    result = run_cli(tmp_path, "notify-test", toml=webhook_toml(fake, hook.url, secret=False))
    assert result.returncode == 78
    problems = [line for line in result.stderr.splitlines() if "pager" in line]
    assert len(problems) == 1
    assert problems[0].endswith("channels[0] 'pager': secret: is required for platform webhook")
    no_canary(result.stdout, result.stderr)
    assert not hook.received


def test_a_secret_from_an_unset_variable_is_one_line_and_exit_78(
    tmp_path: Path, fake: FakeProviderServer, hook: WebhookReceiver
) -> None:
    result = run_cli(tmp_path, "notify-test", toml=webhook_toml(fake, hook.url))
    assert result.returncode == 78
    (problem,) = [line for line in result.stderr.splitlines() if "pager" in line]
    assert problem.endswith("secret: environment variable CREDITBOT_WEBHOOK_SECRET is not set")
    no_canary(result.stdout, result.stderr)


@pytest.mark.parametrize("command", [("notify-test",), ("run",)])
def test_a_url_that_is_not_http_is_exit_78_naming_the_channel(
    tmp_path: Path, fake: FakeProviderServer, command: tuple[str, ...]
) -> None:
    toml = webhook_toml(fake, f"ftp://hooks.example.com/{URL_TOKEN}")
    env = {**webhook_env(), "PORT": str(free_port())}
    result = run_cli(tmp_path, *command, env=env, toml=toml)
    assert result.returncode == 78, result.stderr
    assert "channel webhook:pager: url: must be an http:// or https:// address" in result.stderr
    no_canary(result.stdout, result.stderr)
