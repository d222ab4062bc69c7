"""`credits breakdown` and `credits chart models` end to end: parsing, the console, Slack (signed requests into
bolt, answers on the fake response URL, within the 3 s ack) and Discord (deferred, then embeds), over a seeded
store; the stacked chart is a PNG whose series add up to the stored parts."""

from __future__ import annotations

import asyncio
import io
import json
import struct
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.console import ConsoleAdapter
from adapters.discord.adapter import DiscordAdapter
from adapters.slack.adapter import SlackAdapter
from bot.breakdown import BreakdownPart, BreakdownReport, Dimension
from bot.breakdown_messages import models_chart_message
from bot.breakdown_table import stacked
from bot.chart_stacked import render_stacked, stacked_by_model
from bot.commands import Command, CommandError, Verb, command_from_words, parse_command, with_account_option
from bot.config import AppConfig
from bot.store import Store
from bot.web import start_http
from tests.breakdown_seed import GAP, GAP_DAY_OFFSET, many_parts, model_parts, seed
from tests.conftest import make_account, make_runtime, make_settings
from tests.fake_discord import FakeDiscord, command_interaction
from tests.fake_slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack, signed_headers, slash_body
from tests.fakes import FakeProviderServer
from tests.test_discord import TOKEN
from tests.test_run_e2e import free_port

ACCOUNTS = ["oa", "wide", "ds"]


def _accounts(fake: FakeProviderServer) -> tuple[Any, ...]:
    return (
        make_account("oa", "openai", fake.base_url("openai")),
        make_account("wide", "openai", "http://127.0.0.1:9"),
        make_account("ds", "deepseek", fake.base_url("deepseek")),
    )


async def _seed(store: Store, *, fetched_at: datetime | None = None) -> None:
    today = datetime.now(UTC).date()
    gaps = {today - timedelta(days=GAP_DAY_OFFSET): GAP}
    await seed(store, "oa", model_parts(today), gaps=gaps, fetched_at=fetched_at)
    await seed(store, "wide", many_parts(today), gaps={}, fetched_at=fetched_at)


# Parsing


@pytest.mark.parametrize(
    ("text", "account", "days"),
    [
        ("credits breakdown", None, 7),
        ("breakdown oa", "oa", 7),
        ("/credits breakdown oa 30", "oa", 30),
        ("credits breakdown 90", None, 90),
        ("credits breakdown 1", None, 1),
        ("credits breakdown 30 oa", "oa", 30),  # either order
    ],
)
def test_breakdown_words(text: str, account: str | None, days: int) -> None:
    command = parse_command(text, ACCOUNTS)
    assert (command.verb, command.account, command.days) == (Verb.BREAKDOWN, account, days)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("breakdown 0", "days must be a whole number from 1 to 90, not 0"),
        ("breakdown oa 91", "days must be a whole number from 1 to 90, not 91"),
        ("breakdown -3", "days must be a whole number from 1 to 90"),
        ("breakdown 2.5", "days must be a whole number from 1 to 90"),
        ("breakdown oa week", "'week' is not a number of days"),
        ("breakdown nope", "unknown account 'nope'"),
        ("breakdown oa 7 more", "too many arguments"),
        ("breakdown 30 nope", "unknown account 'nope'"),
        ("breakdown week oa", "'week' is not a number of days"),
    ],
)
def test_bad_breakdown_words_get_one_line_with_usage(text: str, problem: str) -> None:
    with pytest.raises(CommandError) as caught:
        parse_command(text, ACCOUNTS)
    assert problem in str(caught.value)
    assert str(caught.value).endswith("Usage: credits breakdown [account] [days 1-90]")


def test_a_number_is_an_account_when_one_has_that_name() -> None:
    assert parse_command("breakdown 30", ["30"]).account == "30"
    assert parse_command("breakdown 30 5", ["30"]).days == 5
    assert parse_command("breakdown 5 30", ["30"]) == Command(Verb.BREAKDOWN, account="30", days=5)
    assert parse_command("breakdown 30 oa", ["30", "oa"]) == Command(Verb.BREAKDOWN, account="oa", days=30)
    names = [*ACCOUNTS, "30"]
    typed = command_from_words(Verb.BREAKDOWN, ["30"], names)  # Discord's `days=30`, as `Handler.typed` parses it
    assert typed == Command(Verb.BREAKDOWN, days=30)
    assert with_account_option(typed, "oa", names) == Command(Verb.BREAKDOWN, account="oa", days=30)
    assert with_account_option(command_from_words(Verb.BREAKDOWN, [], names), "30", names).account == "30"


@pytest.mark.parametrize(
    ("text", "account", "by_model"),
    [
        ("chart", None, False),
        ("chart oa", "oa", False),
        ("chart models", None, True),
        ("chart oa models", "oa", True),
        ("chart MODELS oa", "oa", True),
    ],
)
def test_chart_words(text: str, account: str | None, by_model: bool) -> None:
    command = parse_command(text, ACCOUNTS)
    assert (command.verb, command.account, command.by_model) == (Verb.CHART, account, by_model)


def test_an_account_called_models_is_still_charted() -> None:
    assert parse_command("chart models", ["models"]).by_model is False
    assert parse_command("chart models models", ["models"]).by_model is True
    with pytest.raises(CommandError, match="too many arguments"):
        parse_command("chart oa models ds", ACCOUNTS)


# The stacked chart


async def test_stacked_chart_is_a_png_whose_series_add_up_to_the_parts(
    tmp_path: Path, store: Store, fake: FakeProviderServer
) -> None:
    await _seed(store)
    config = AppConfig(make_settings(tmp_path), _accounts(fake), "test")
    async with httpx.AsyncClient() as http:
        monitor = make_runtime(config, store, http, []).monitor
        series, notes = await stacked_by_model(monitor, list(config.accounts))
    assert notes == {"ds": "no breakdown from this provider"}
    oa, wide = series
    today = datetime.now(UTC).date()
    assert (oa.days[0], oa.days[-1], len(oa.days)) == (today - timedelta(days=30), today - timedelta(days=1), 30)
    assert list(oa.values) == ["gpt-4o", "gpt-4o-mini", "o1"]
    assert oa.total == Decimal("49.50")  # 7 x 3.00 + 7 x 2.00 + 14 x 1.00 + 0.50; today is left out
    assert oa.total == sum((p.cost or 0 for p in model_parts(today) if p.day < today), Decimal(0))
    assert list(wide.values) == ["model-12", "model-11", "model-10", "model-09", "model-08", "other"]
    assert (wide.total, wide.missing) == (sum((p.cost or 0 for p in many_parts(today)), Decimal(0)), 0)
    other = sum((v or 0 for v in wide.values["other"]), Decimal(0))  # every day answered: no None among them
    assert other == sum(Decimal(f"0.{n:02d}") * 14 for n in range(1, 8))
    png = render_stacked(series, "Spend by model", generated_at=datetime.now(UTC))
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1100, round(110 * (1.5 + 3.2 * 2)))
    from matplotlib.image import imread

    assert imread(io.BytesIO(png)).shape[:2] == (height, width)


async def test_days_not_answered_are_gaps_and_left_out_of_the_total(
    tmp_path: Path, store: Store, fake: FakeProviderServer
) -> None:
    today = datetime.now(UTC).date()
    asked = [today - timedelta(days=n) for n in range(31)]  # all asked just now: nothing is due
    said = tuple(d for d in asked[1:] if (today - d).days not in (2, 5, 9))
    parts = [BreakdownPart(d, Dimension.MODEL, "gpt-4o", "gpt-4o", Decimal(2)) for d in said]
    parts.append(BreakdownPart(said[0], Dimension.MODEL, "o1", "o1", Decimal("0.50")))
    report = BreakdownReport("USD", said, tuple(parts), frozenset({Dimension.MODEL}))
    await store.breakdowns.save("oa", asked, report, settled_before=today, now=datetime.now(UTC))
    config = AppConfig(make_settings(tmp_path), _accounts(fake)[:2], "test")  # `wide` refuses: never answered
    async with httpx.AsyncClient() as http:
        monitor = make_runtime(config, store, http, []).monitor
        series, notes = await stacked_by_model(monitor, list(config.accounts))
    oa, wide = series
    assert {oa.values[m][n] for m in oa.values for n, d in enumerate(oa.days) if d not in said} == {None}  # no 0
    assert (oa.total, oa.missing, oa.values["o1"].count(Decimal(0))) == (Decimal("54.50"), 3, 26)  # 27 x 2 + 0.5
    assert (wide.total, wide.missing, wide.values) == (None, 30, {})
    assert "could not refresh" in notes["wide"]
    text = models_chart_message(series, {}, None, datetime.now(UTC)).text
    assert text == "oa: $54.50 by model (3 days not reported)\nwide: no breakdown yet"
    assert render_stacked(series, "Spend by model", generated_at=datetime.now(UTC)).startswith(b"\x89PNG")
    labels, values = stacked(parts, oa.days, answered=said[1:])  # a stored part of a day not answered: left out
    assert (values["gpt-4o"][-1], labels) == (None, ["gpt-4o"])


# The console


async def test_console_answers_breakdown_and_the_models_chart(
    tmp_path: Path, store: Store, fake: FakeProviderServer
) -> None:
    await _seed(store)
    config = AppConfig(make_settings(tmp_path), _accounts(fake), "test")
    out = io.StringIO()
    console = ConsoleAdapter(out, chart_dir=tmp_path / "charts", interactive=False)
    async with httpx.AsyncClient() as http:
        runtime = make_runtime(config, store, http, [console])
        await console.start(runtime.handler)
        text = await console.answer("/credits breakdown oa")
        assert text.startswith("Where the money went: last 7 days")
        assert "oa (openai): $28.87 in the last 7 days" in text
        assert "gpt-4o: $21.00 · 72.7% · +$7.00 vs the days before · 7k in (1.4k cached) / 700 out tokens" in text
        assert "unattributed: $0.37 · 1.3% · +$0.37 vs the days before" in text
        assert "today: $0.25 so far (partial), most on gpt-4o" in text
        wide = await console.answer("/credits breakdown wide 30")
        assert "5 more: $" in wide  # 12 models: 7 shown, 5 folded
        assert "no breakdown from this provider" in await console.answer("/credits breakdown ds")
        assert "days must be a whole number from 1 to 90" in await console.answer("/credits breakdown 365")
        assert await console.answer("/credits chart models") == ""  # printed, with the chart saved
    printed = out.getvalue()
    assert "Spend by model: last 30 days" in printed
    assert "ds: no breakdown from this provider" in printed
    assert (tmp_path / "charts" / "spend-by-model.png").read_bytes().startswith(b"\x89PNG")


# Slack


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


@pytest.fixture
async def slack_bot(tmp_path: Path, fake: FakeProviderServer, slack: FakeSlack) -> AsyncIterator[dict[str, Any]]:
    settings = make_settings(
        tmp_path,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.api_url,
        CREDITBOT_SLACK_VIEWERS="U1,C1",
        CREDITBOT_ANSWER_SECONDS=0.5,
    )
    config = AppConfig(settings, _accounts(fake), "test")
    store = await Store.open(settings.database_url)
    async with httpx.AsyncClient() as http:
        adapter = SlackAdapter(settings)
        runtime = make_runtime(config, store, http, [adapter])
        port = free_port()
        web = await start_http(port, adapter.http_routes(), host="127.0.0.1")
        await adapter.start(runtime.handler)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield {"runtime": runtime, "client": client, "slack": slack, "store": store, "fake": fake}
        await adapter.stop()
        await web.cleanup()
    await store.close()


async def _slash(bot: dict[str, Any], text: str) -> tuple[httpx.Response, float]:
    slack: FakeSlack = bot["slack"]
    body = slash_body(text, response_url=slack.response_url(text.replace(" ", "_")))
    started = time.monotonic()
    response = await bot["client"].post("/slack/events", content=body, headers=signed_headers(body))
    return response, time.monotonic() - started


async def _slack_reply(bot: dict[str, Any], text: str) -> dict[str, Any]:
    slack: FakeSlack = bot["slack"]
    (call,) = await asyncio.to_thread(slack.state.wait_for, f"/webhook/{text.replace(' ', '_')}", 1)
    return call.data


async def test_slack_breakdown_is_acked_then_answered_in_blocks(slack_bot: dict[str, Any]) -> None:
    await _seed(slack_bot["store"])
    response, _took = await _slash(slack_bot, "breakdown oa 7")
    assert response.status_code == 200
    reply = await _slack_reply(slack_bot, "breakdown oa 7")
    assert reply["response_type"] == "ephemeral"
    blocks = reply["blocks"]
    assert blocks[0]["text"]["text"] == "Where the money went: last 7 days"
    section = blocks[1]
    assert "*oa* (openai)" in section["text"]["text"]
    assert "$28.87 in the last 7 days" in section["text"]["text"]
    fields = [f["text"] for f in section["fields"]]
    assert fields[0].startswith("*gpt-4o*\n$21.00 · 72.7% · +$7.00")
    assert "*unattributed*\n$0.37" in fields[3]
    assert fields[-1] == "*today*\n$0.25 so far (partial), most on gpt-4o"
    assert len(blocks) <= 50
    assert all(len(b.get("fields", [])) <= 10 for b in blocks)


async def test_slack_breakdown_of_many_models_stays_within_block_kit(slack_bot: dict[str, Any]) -> None:
    await _seed(slack_bot["store"])
    await _slash(slack_bot, "breakdown")
    reply = await _slack_reply(slack_bot, "breakdown")
    text = json.dumps(reply["blocks"])
    sections = [b for b in reply["blocks"] if b["type"] == "section"]
    assert len(sections) == 3
    wide = sections[1]
    assert len(wide["fields"]) == 9  # 7 models, "5 more" and today: Slack shows up to 10
    assert "*5 more*" in text
    assert "no breakdown from this provider" in text


async def test_slack_usage_error_is_one_clear_line(slack_bot: dict[str, Any]) -> None:
    await _slash(slack_bot, "breakdown oa 120")
    reply = await _slack_reply(slack_bot, "breakdown oa 120")
    assert "days must be a whole number from 1 to 90, not 120" in json.dumps(reply["blocks"])


async def test_slack_ack_comes_in_time_while_a_breakdown_fetch_is_slow(slack_bot: dict[str, Any]) -> None:
    fake: FakeProviderServer = slack_bot["fake"]
    fake.state.latency = 1.5  # every answer of the provider's loopback server takes 1.5 s
    await _seed(slack_bot["store"], fetched_at=datetime.now(UTC) - timedelta(hours=2))  # the last days are due
    response, took = await _slash(slack_bot, "breakdown oa")
    assert response.status_code == 200
    assert took < 1.5  # well inside Slack's 3 s
    started = time.monotonic()
    reply = await _slack_reply(slack_bot, "breakdown oa")
    assert time.monotonic() - started < 1.4  # answered from the store after CREDITBOT_ANSWER_SECONDS
    text = json.dumps(reply["blocks"])
    assert "could not refresh, showing what is stored: the provider did not answer within 0.5 s" in text
    assert "$28.87" in text
    await asyncio.sleep(2)  # the fetch goes on in the background; let it finish before the store closes
    assert fake.state.count("openai", "/v1/organization/costs") >= 1  # it went to the provider


async def test_slack_models_chart_is_uploaded_to_the_channel(slack_bot: dict[str, Any]) -> None:
    await _seed(slack_bot["store"])
    await _slash(slack_bot, "chart oa models")
    reply = await _slack_reply(slack_bot, "chart oa models")
    assert "oa: $49.50 by model" in json.dumps(reply["blocks"])
    slack: FakeSlack = slack_bot["slack"]
    await asyncio.to_thread(slack.state.wait_for, "/api/files.completeUploadExternal", 1)
    (upload,) = slack.state.called("/upload/F1")
    assert upload.data  # the PNG's bytes went to the upload URL


# Discord


@pytest.fixture
def discord_fake() -> Iterator[FakeDiscord]:
    with FakeDiscord(token=TOKEN) as server, server.patch():
        yield server


@pytest.fixture
async def discord_bot(
    tmp_path: Path, fake: FakeProviderServer, discord_fake: FakeDiscord
) -> AsyncIterator[dict[str, Any]]:
    settings = make_settings(
        tmp_path,
        DISCORD_TOKEN=TOKEN,
        DISCORD_API_URL=discord_fake.rest_url,
        DISCORD_GATEWAY_URL=discord_fake.gateway_url,
        DISCORD_GUILD_IDS=str(discord_fake.guild_id),
    )
    config = AppConfig(settings, _accounts(fake), "test")
    store = await Store.open(settings.database_url)
    await _seed(store)
    async with httpx.AsyncClient() as http:
        adapter = DiscordAdapter(settings, guild_ready_timeout=0.1)
        runtime = make_runtime(config, store, http, [adapter])
        await adapter.start(runtime.handler)
        try:
            yield {"discord": discord_fake}
        finally:
            await adapter.stop()
    await store.close()


async def test_discord_breakdown_is_deferred_then_answered_with_embeds(discord_bot: dict[str, Any]) -> None:
    fake: FakeDiscord = discord_bot["discord"]
    group = next(c for c in fake.guild_commands[fake.guild_id] if c["name"] == "creditbot")
    breakdown = next(o for o in group["options"] if o["name"] == "breakdown")
    assert [o["name"] for o in breakdown["options"]] == ["account", "days"]
    fake.send_interaction(command_interaction(fake, "creditbot breakdown", {"account": "oa", "days": 7}))
    (callback,) = await fake.wait_for_async("POST", "/interactions/*/callback")
    assert callback.json["type"] == 5  # deferred, within the 3 seconds
    (follow,) = await fake.wait_for_async("POST", "/webhooks/*")
    assert follow.json["content"] == "**Where the money went: last 7 days**"
    (embed,) = follow.json["embeds"]
    assert embed["title"] == "oa (openai)"
    assert embed["description"].startswith("$28.87 in the last 7 days")
    names = [f["name"] for f in embed["fields"]]
    assert names == ["gpt-4o", "gpt-4o-mini", "o1", "unattributed", "today"]
    assert embed["fields"][3]["value"].startswith("$0.37 · 1.3%")
    assert len(json.dumps(embed)) < 6000


async def test_discord_breakdown_days_out_of_range_get_usage(discord_bot: dict[str, Any]) -> None:
    fake: FakeDiscord = discord_bot["discord"]
    fake.send_interaction(command_interaction(fake, "creditbot breakdown", {"days": 91}))
    (follow,) = await fake.wait_for_async("POST", "/webhooks/*")
    assert "days must be a whole number from 1 to 90, not 91" in follow.json["embeds"][0]["description"]


async def test_discord_models_chart_is_attached(discord_bot: dict[str, Any]) -> None:
    fake: FakeDiscord = discord_bot["discord"]
    fake.send_interaction(command_interaction(fake, "creditbot chart", {"models": True}))
    (follow,) = await fake.wait_for_async("POST", "/webhooks/*")
    (attachment,) = follow.files
    assert attachment.filename == "spend-by-model.png"
    assert attachment.data.startswith(b"\x89PNG")
    assert "wide: $10.92 by model" in json.dumps(follow.json)  # 14 stored days of 78 cents
