"""The Slack adapter driven over real HTTP: signed requests into bolt, the real slack_sdk client against a
loopback fake Slack Web API, exact blocks checked; rate limits and outages included."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from adapters.slack.adapter import SlackAdapter
from adapters.slack.render import MAX_BLOCKS, render
from bot.channels import Channel
from bot.config import AppConfig
from bot.handler import Requester
from bot.messages import Field, Message, Section
from bot.runtime import Runtime
from bot.store import NewMessage, Store
from bot.web import start_http
from tests.conftest import make_account, make_runtime, make_settings
from tests.fake_slack import BOT_TOKEN, SIGNING_SECRET, TEAM, FakeSlack, signed_headers, slash_body
from tests.fakes import FakeProviderServer
from tests.test_run_e2e import free_port


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


@pytest.fixture
async def bot(tmp_path: Path, fake: FakeProviderServer, slack: FakeSlack) -> AsyncIterator[dict[str, Any]]:
    settings = make_settings(
        tmp_path,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.api_url,
        CREDITBOT_SLACK_VIEWERS="U1,U2,UADMIN,C1",
        cache_seconds=60,
    )
    accounts = (make_account("ds", "deepseek", fake.base_url("deepseek"), warn_below=Decimal(200)),)
    channel = Channel("slack", "C1", daily_summary=clock_time(9, 0), alerts=None)
    config = AppConfig(settings, accounts, "test", channels=(channel,))
    store = await Store.open(settings.database_url)
    async with httpx.AsyncClient() as http:
        adapter = SlackAdapter(settings)
        runtime = make_runtime(config, store, http, [adapter], charts=_tiny_chart)
        port = free_port()
        web = await start_http(port, adapter.http_routes(), host="127.0.0.1")
        await adapter.start(runtime.handler)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield {
                "runtime": runtime,
                "adapter": adapter,
                "client": client,
                "slack": slack,
                "fake": fake,
                "store": store,
                "channel": channel,
            }
        await adapter.stop()
        await web.cleanup()
    await store.close()


async def _tiny_chart(_views: Any) -> bytes:
    return b"\x89PNG\r\n\x1a\nchart"


async def post_command(bot: dict[str, Any], text: str, **kwargs: Any) -> httpx.Response:
    slack: FakeSlack = bot["slack"]
    body = slash_body(text, response_url=slack.response_url(text.replace(" ", "_") or "root"), **kwargs)
    return await bot["client"].post("/slack/events", content=body, headers=signed_headers(body))


async def reply_for(bot: dict[str, Any], name: str, count: int = 1) -> list[dict[str, Any]]:
    slack: FakeSlack = bot["slack"]
    calls = await asyncio.to_thread(slack.state.wait_for, f"/webhook/{name}", count)
    return [c.data for c in calls]


async def test_credits_is_acked_then_answered_with_blocks(bot: dict[str, Any]) -> None:
    response = await post_command(bot, "")
    assert response.status_code == 200
    (reply,) = await reply_for(bot, "root")
    assert reply["response_type"] == "ephemeral"
    blocks = reply["blocks"]
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": "LLM credits", "emoji": True}}
    section = blocks[1]
    assert section["text"]["text"] == ":large_yellow_circle: *ds* (deepseek) · warning\n¥110.00 left"
    assert "fields" not in section  # DeepSeek reports a balance only: no empty fields are shown
    context = blocks[2]["elements"][0]["text"]
    assert context.startswith("as of ")
    actions = blocks[3]["elements"]
    assert [a["action_id"] for a in actions] == ["credits_refresh", "credits_snooze_1"]
    assert reply["text"].startswith(":warning: LLM credits: ds: ¥110.00 left")


async def test_ack_comes_in_time_even_when_the_provider_is_slow(bot: dict[str, Any]) -> None:
    bot["fake"].state.latency = 2.5
    started = time.monotonic()
    response = await post_command(bot, "ds")
    assert response.status_code == 200
    assert time.monotonic() - started < 1.5  # well inside Slack's 3 s
    (reply,) = await reply_for(bot, "ds")
    assert "¥110.00 left" in json.dumps(reply["blocks"], ensure_ascii=False)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (lambda body: signed_headers(body, secret="wrong-secret"), 401),
        (lambda body: {"Content-Type": "application/x-www-form-urlencoded"}, 401),
        (lambda body: signed_headers(body, timestamp=int(time.time()) - 400), 401),  # replayed: older than 5 min
    ],
)
async def test_bad_missing_or_replayed_signatures_are_refused(
    bot: dict[str, Any], headers: Any, status: int
) -> None:
    body = slash_body("", response_url=bot["slack"].response_url("never"))
    response = await bot["client"].post("/slack/events", content=body, headers=headers(body))
    assert response.status_code == status
    await asyncio.sleep(0.3)
    assert bot["slack"].state.called("/webhook/never") == []


async def test_another_workspace_is_refused(bot: dict[str, Any]) -> None:
    response = await post_command(bot, "", team="T999")
    assert response.status_code == 401
    await asyncio.sleep(0.3)
    assert bot["slack"].state.called("/webhook/root") == []


async def test_oversized_body_is_refused(bot: dict[str, Any]) -> None:
    body = slash_body("x" * 300_000)
    response = await bot["client"].post("/slack/events", content=body, headers=signed_headers(body))
    assert response.status_code == 413


async def test_viewers_and_admins(bot: dict[str, Any]) -> None:
    await post_command(bot, "", user="USTRANGER", channel="CSECRET")
    (refusal,) = await reply_for(bot, "root")
    assert "not allowed to see LLM balances" in refusal["text"]
    assert "blocks" not in refusal or not refusal.get("blocks")

    await post_command(bot, "threshold ds 500", user="U2")
    (refused,) = await reply_for(bot, "threshold_ds_500")
    assert "only admins" in json.dumps(refused["blocks"])

    bot["slack"].state.admins.add("UADMIN")
    await post_command(bot, "snooze ds 24h", user="UADMIN")
    (done,) = await reply_for(bot, "snooze_ds_24h")
    assert "snoozed until" in json.dumps(done["blocks"])
    audit = await bot["store"].settings.audit_entries()
    assert [(a.command, a.user) for a in audit] == [("snooze", "UADMIN"), ("threshold", "U2")]


async def test_share_posts_in_channel_only_where_allowed(bot: dict[str, Any]) -> None:
    await post_command(bot, "share", user="U1", channel="C1")
    (shared,) = await reply_for(bot, "share")
    assert shared["response_type"] == "in_channel"
    await post_command(bot, "share ds", user="U1", channel="CELSEWHERE")
    (refused,) = await reply_for(bot, "share_ds")
    assert refused["response_type"] == "ephemeral"
    assert "cannot be posted in this channel" in refused["text"]


async def test_refresh_button_and_app_home(bot: dict[str, Any]) -> None:
    slack: FakeSlack = bot["slack"]
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM},
        "user": {"id": "U1", "team_id": TEAM},
        "channel": {"id": "C1"},
        "api_app_id": "A1",
        "trigger_id": "1.1.x",
        "response_url": slack.response_url("button"),
        "actions": [
            {"action_id": "credits_refresh", "block_id": "b", "type": "button", "value": "|", "action_ts": "1"}
        ],
    }
    body = urlencode({"payload": json.dumps(payload)})
    response = await bot["client"].post("/slack/events", content=body, headers=signed_headers(body))
    assert response.status_code == 200
    (reply,) = await reply_for(bot, "button")
    assert reply["replace_original"] is True
    assert reply["blocks"][0]["text"]["text"] == "LLM credits"

    event = {
        "token": "x",
        "team_id": TEAM,
        "api_app_id": "A1",
        "type": "event_callback",
        "event_id": "Ev1",
        "event_time": 1,
        "event": {"type": "app_home_opened", "user": "U1", "channel": "D1", "tab": "home"},
    }
    body = json.dumps(event)
    headers = {**signed_headers(body), "Content-Type": "application/json"}
    assert (await bot["client"].post("/slack/events", content=body, headers=headers)).status_code == 200
    (publish,) = await asyncio.to_thread(slack.state.wait_for, "/api/views.publish")
    view = publish.data["view"] if isinstance(publish.data["view"], dict) else json.loads(publish.data["view"])
    assert view["type"] == "home"
    assert "¥110.00 left" in json.dumps(view, ensure_ascii=False)


async def test_scheduled_summary_posts_blocks_and_uploads_the_chart(bot: dict[str, Any]) -> None:
    runtime: Runtime = bot["runtime"]
    assert await runtime.send_summary(bot["channel"])
    slack: FakeSlack = bot["slack"]
    (post,) = slack.state.called("/api/chat.postMessage")
    blocks = post.data["blocks"] if isinstance(post.data["blocks"], list) else json.loads(post.data["blocks"])
    assert post.data["channel"] == "C1"
    assert blocks[0]["text"]["text"] == "Daily LLM credits summary"
    assert slack.state.called("/api/files.getUploadURLExternal")
    assert slack.state.called("/upload/F1")
    (complete,) = slack.state.called("/api/files.completeUploadExternal")
    assert "C1" in json.dumps(complete.data)


async def test_429_is_retried_honouring_retry_after_and_delivered_once(bot: dict[str, Any]) -> None:
    slack: FakeSlack = bot["slack"]
    slack.state.rate_limited = 1
    from bot.messages import text_message

    started = time.monotonic()
    await bot["adapter"].send("C1", text_message("hello", "one message"))
    assert time.monotonic() - started >= 1.0  # Retry-After: 1 was honoured
    assert len(slack.state.called("/api/chat.postMessage")) == 2  # the 429, then the delivery


async def test_fan_out_keeps_to_slack_pacing_and_delivers_each_summary_once(
    tmp_path: Path, fake: FakeProviderServer, slack: FakeSlack
) -> None:
    slack.state.channel_interval = 1.0
    slack.state.workspace_per_second = 10
    settings = make_settings(
        tmp_path,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.api_url,
        SLACK_CALLS_PER_SECOND=10,
    )
    channels = tuple(Channel("slack", f"C{i:02d}", daily_summary=clock_time(9, 0)) for i in range(25))
    config = AppConfig(
        settings, (make_account("ds", "deepseek", fake.base_url("deepseek")),), "t", channels=channels
    )
    store = await Store.open(settings.database_url)
    chart_calls = []

    async def chart(views: Any) -> bytes:
        chart_calls.append(views)
        return b"\x89PNG\r\n\x1a\nchart"

    async with httpx.AsyncClient() as http:
        adapter = SlackAdapter(settings)
        runtime = make_runtime(config, store, http, [adapter], charts=chart)
        await adapter.start(runtime.handler)
        await asyncio.sleep(1.0)  # auth.test leaves the fake's window
        started = time.monotonic()
        assert await runtime.send_summaries(channels) == 25
        elapsed = time.monotonic() - started
        items = await store.outbox.items("summary")
    await store.close()
    assert [i.status for i in items] == ["sent"] * 25
    assert slack.state.posted == {c.id: 1 for c in channels}  # every channel once, none twice
    assert len(chart_calls) == 1  # channels with the same accounts share one drawing
    # 25 messages and 25 uploads (two Web API calls each) at 10 calls/s cannot take less than 7.5 s; the
    # fake answers 429 to anything faster, so few 429s show the pacing came from our side.
    assert elapsed >= 7.0
    assert slack.state.throttled <= 5  # without pacing: dozens


async def test_a_429_pauses_every_delivery_for_its_retry_after(bot: dict[str, Any]) -> None:
    slack: FakeSlack = bot["slack"]
    slack.state.rate_limited = 1
    from bot.messages import text_message

    started = time.monotonic()
    await asyncio.gather(
        bot["adapter"].send("C1", text_message("one", "first")),
        bot["adapter"].send("C2", text_message("two", "second")),
    )
    posts = slack.state.called("/api/chat.postMessage")
    assert len(posts) == 3  # one 429, then both delivered
    # Every call after the 429 waited for Retry-After, whichever channel it was for (even one that was
    # already queued for a slot when the 429 came).
    assert posts[1].at - posts[0].at >= 0.95
    assert posts[2].at - posts[0].at >= 0.95
    assert time.monotonic() - started >= 1.0


async def test_a_long_retry_after_fails_sends_at_once_for_the_outbox_to_retry(bot: dict[str, Any]) -> None:
    from bot.adapter import DeliveryError
    from bot.messages import text_message

    slack: FakeSlack = bot["slack"]
    slack.state.rate_limited = 1
    slack.state.retry_after = "120"
    started = time.monotonic()
    for channel in ("C1", "C2"):
        with pytest.raises(DeliveryError) as failed:
            await bot["adapter"].send(channel, text_message("hello", "one message"))
        assert failed.value.retry_after is not None
        assert failed.value.retry_after > 100
    assert time.monotonic() - started < 5  # nobody sat out the two minutes inside a send
    assert len(slack.state.called("/api/chat.postMessage")) == 1  # the paused call was never made


async def test_outage_goes_back_to_the_outbox_and_arrives_once(bot: dict[str, Any]) -> None:
    slack: FakeSlack = bot["slack"]
    runtime: Runtime = bot["runtime"]
    slack.state.failing = 3
    clock = {"now": datetime.now(UTC)}
    runtime.clock = lambda: clock["now"]
    await runtime.store.outbox.enqueue(
        NewMessage(
            "alert:test",
            "slack",
            "C1",
            "alert",
            "warning",
            Message("Low balance", "ds is low").to_json(),
            clock["now"],
        ),
        now=clock["now"],
    )
    await runtime.dispatch()
    (item,) = await runtime.store.outbox.items("alert")
    assert item.status == "pending"
    assert "Slack answered" in (item.last_error or "")
    for _ in range(4):
        clock["now"] += timedelta(minutes=5)
        await runtime.dispatch()
    (item,) = await runtime.store.outbox.items("alert")
    assert item.status == "sent"
    ok_posts = [c for c in slack.state.called("/api/chat.postMessage")]
    assert len(ok_posts) == 4  # three 500s, one delivery


def test_block_kit_limits_split_large_messages() -> None:
    sections = tuple(
        Section(
            f"acct-{i}",
            "openai",
            "warning",
            "$1.00 left",
            tuple(Field(f"F{j}", "x" * 2500) for j in range(14)),
            note="n" * 4000,
        )
        for i in range(60)
    )
    message = Message("LLM credits", "s" * 5000, sections=sections, text="t" * 7000, footer="as of now")
    payloads = render(message)
    assert len(payloads) > 1
    for payload in payloads:
        assert len(payload["blocks"]) <= MAX_BLOCKS
        assert len(payload["text"]) <= 3000
        for block in payload["blocks"]:
            if block["type"] == "section":
                assert len(block["text"]["text"]) <= 3000
                assert len(block.get("fields", [])) <= 10
                assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))
            if block["type"] == "context":
                assert all(len(e["text"]) <= 3000 for e in block["elements"])
    shown = [b for p in payloads for b in p["blocks"] if b["type"] == "section" and "acct-" in b["text"]["text"]]
    assert len(shown) == 60  # nothing dropped


def test_injection_is_neutralised_in_blocks() -> None:
    message = Message(
        "t",
        "<!channel> *bold*",
        sections=(
            Section(
                "ds", "deepseek", "error", "no data", note="provider said <!channel> <@U1> <https://evil|click>"
            ),
        ),
    )
    text = json.dumps(render(message))
    assert "<!channel>" not in text
    assert "<@U1>" not in text
    assert "&lt;!channel&gt;" in text


def test_creditbot_run_in_http_mode_answers_signed_slash_commands(
    tmp_path: Path, fake: FakeProviderServer, slack: FakeSlack
) -> None:
    from tests.test_run_e2e import BotProcess, bot_env, write_config

    write_config(tmp_path, fake)
    just_passed = (datetime.now(UTC) - timedelta(minutes=2)).strftime("%H:%M")
    with (tmp_path / "creditbot.toml").open("a") as toml:
        toml.write(
            f'\n[[channels]]\nplatform = "slack"\nid = "C1"\ndaily_summary = "{just_passed}"\n'
            'alerts = "warning"\nmention = "<!here>"\n'
        )
    port = free_port()
    env = {
        **bot_env(tmp_path, port),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "CREDITBOT_POLL_SECONDS": "30",
    }
    process = BotProcess(tmp_path, env)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        slack.state.wait_for("/api/auth.test")
        body = slash_body("ds", response_url=slack.response_url("e2e"))
        started = time.monotonic()
        response = httpx.post(
            f"http://127.0.0.1:{port}/slack/events", content=body, headers=signed_headers(body), timeout=5
        )
        assert response.status_code == 200
        assert time.monotonic() - started < 3
        (reply,) = slack.state.wait_for("/webhook/e2e")
        assert reply.data["blocks"][1]["text"]["text"].endswith("¥110.00 left")
        bad = httpx.post(
            f"http://127.0.0.1:{port}/slack/events",
            content=body,
            headers=signed_headers(body, secret="nope"),
            timeout=5,
        )
        assert bad.status_code == 401
        # The first poll queued the alert and caught up the summary: posted with blocks, chart uploaded.
        posts = slack.state.wait_for("/api/chat.postMessage", 2)
        texts = [p.data["text"] for p in posts]
        assert any(t.startswith("<!here> :warning: ds: below ¥200.00") for t in texts)
        summary = next(p for p in posts if "Daily LLM credits summary" in p.data["text"])
        blocks = summary.data["blocks"]
        assert blocks[0]["text"]["text"] == "Daily LLM credits summary"
        assert blocks[1]["text"]["text"] == ":large_yellow_circle: *ds* (deepseek) · warning\n¥110.00 left"
        slack.state.wait_for("/api/files.completeUploadExternal")
        assert slack.state.called("/upload/F1")
        event = {
            "token": "x",
            "team_id": TEAM,
            "api_app_id": "A1",
            "type": "event_callback",
            "event_id": "Ev9",
            "event_time": 1,
            "event": {"type": "app_home_opened", "user": "U1", "channel": "D1", "tab": "home"},
        }
        raw = json.dumps(event)
        home = httpx.post(
            f"http://127.0.0.1:{port}/slack/events",
            content=raw,
            headers={**signed_headers(raw), "Content-Type": "application/json"},
            timeout=5,
        )
        assert home.status_code == 200
        (publish,) = slack.state.wait_for("/api/views.publish")
        assert "¥110.00 left" in json.dumps(publish.data, ensure_ascii=False)
    finally:
        assert process.terminate() == 0
    assert BOT_TOKEN not in process.stdout + "".join(process.err)
    assert SIGNING_SECRET not in process.stdout + "".join(process.err)


async def test_socket_mode_answers_a_slash_command_envelope(
    tmp_path: Path, fake: FakeProviderServer, slack: FakeSlack
) -> None:
    from tests.fake_slack import APP_TOKEN, FakeSocketMode

    with FakeSocketMode() as socket_server:
        slack.state.socket_url = socket_server.url
        settings = make_settings(
            tmp_path, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_APP_TOKEN=APP_TOKEN, SLACK_API_URL=slack.api_url
        )
        config = AppConfig(settings, (make_account("ds", "deepseek", fake.base_url("deepseek")),), "test")
        store = await Store.open(settings.database_url)
        async with httpx.AsyncClient() as http:
            adapter = SlackAdapter(settings)
            assert adapter.socket_mode
            assert adapter.http_routes() == []
            runtime = make_runtime(config, store, http, [adapter])
            await adapter.start(runtime.handler)
            try:
                payload = dict(pair.split("=", 1) for pair in slash_body("ds").split("&"))
                payload.update(text="ds", response_url=slack.response_url("socket"), command="/credits")
                await asyncio.to_thread(
                    socket_server.push,
                    {
                        "envelope_id": "env-1",
                        "type": "slash_commands",
                        "accepts_response_payload": True,
                        "payload": payload,
                    },
                )
                (reply,) = await reply_for({"slack": slack}, "socket")
                assert "¥110.00 left" in json.dumps(reply["blocks"], ensure_ascii=False)
                assert any(m.get("envelope_id") == "env-1" for m in socket_server.received)  # acked
            finally:
                await adapter.stop()
        await store.close()


# --- Regressions found in review -----------------------------------------------------------------


def test_blank_signing_secret_is_not_a_secret(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET="", SLACK_APP_TOKEN="  ")
    assert settings.slack_signing_secret is None
    assert settings.slack_app_token is None
    with pytest.raises(ValueError, match="SLACK_SIGNING_SECRET"):
        SlackAdapter(settings)


async def test_channel_commands_are_checked_on_the_parsed_verb(bot: dict[str, Any]) -> None:
    bot["slack"].state.admins.add("UADMIN")
    await post_command(bot, "credits subscribe", user="UADMIN", channel="CELSEWHERE")
    (refused,) = await reply_for(bot, "credits_subscribe")
    assert "cannot be posted in this channel" in refused["text"]
    assert await bot["store"].settings.subscriptions() == []  # refused before anything ran
    await post_command(bot, "credits chart", user="U1", channel="CELSEWHERE")
    await reply_for(bot, "credits_chart")
    assert bot["slack"].state.called("/api/files.getUploadURLExternal") == []


async def test_app_home_has_no_buttons(bot: dict[str, Any]) -> None:
    from adapters.slack.render import render_home

    runtime: Runtime = bot["runtime"]
    reply = await runtime.handler.handle("", Requester("slack", "U1", None, is_admin=False))
    view = render_home(reply.message)
    assert all(block["type"] != "actions" for block in view["blocks"])


def test_escaping_never_pushes_text_over_the_limit() -> None:
    payloads = render(Message("t", "s", text="a & b < c " * 400))
    for payload in payloads:
        for block in payload["blocks"]:
            if block["type"] == "section":
                assert len(block["text"]["text"]) <= 3000


async def test_a_retry_does_not_post_the_message_again(bot: dict[str, Any]) -> None:
    slack: FakeSlack = bot["slack"]
    slack.state.failing_uploads = 1
    runtime: Runtime = bot["runtime"]
    clock = {"now": datetime.now(UTC)}
    runtime.clock = lambda: clock["now"]
    message = Message("Daily LLM credits summary", "s", chart=b"\x89PNG chart", chart_name="c.png")
    await runtime.store.outbox.enqueue(
        NewMessage("summary:x", "slack", "C1", "summary", "info", message.to_json(), clock["now"]),
        now=clock["now"],
    )
    await runtime.dispatch()
    clock["now"] += timedelta(minutes=5)
    await runtime.dispatch()
    (item,) = await runtime.store.outbox.items("summary")
    assert item.status == "sent"
    assert len(slack.state.called("/api/chat.postMessage")) == 1  # the text was not posted twice
    assert len(slack.state.called("/api/files.completeUploadExternal")) == 1


async def test_snooze_button_snoozes_for_admins(bot: dict[str, Any]) -> None:
    slack: FakeSlack = bot["slack"]
    slack.state.admins.add("UADMIN")
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM},
        "user": {"id": "UADMIN", "team_id": TEAM},
        "channel": {"id": "C1"},
        "api_app_id": "A1",
        "trigger_id": "1.1.x",
        "response_url": slack.response_url("snooze-button"),
        "actions": [
            {
                "action_id": "credits_snooze_1",
                "block_id": "b",
                "type": "button",
                "value": "ds|24h",
                "action_ts": "1",
            }
        ],
    }
    body = urlencode({"payload": json.dumps(payload)})
    assert (
        await bot["client"].post("/slack/events", content=body, headers=signed_headers(body))
    ).status_code == 200
    (reply,) = await reply_for(bot, "snooze-button")
    assert "snoozed until" in json.dumps(reply["blocks"])
    assert "ds" in await bot["store"].settings.snoozed_until(bot["runtime"].clock())
