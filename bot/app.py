"""The composition root: builds the store, the provider HTTP client, one monitor, each adapter once, the
runtime and the web server, for `creditbot run` and for the one-off commands that deliver. The only module of
`bot/` that imports `adapters/`."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from bot.adapter import Adapter, AdapterConfigError, Route
from bot.config import AppConfig, load_config, load_settings
from bot.errors import EX_CONFIG, CommandFailure
from bot.monitor import Monitor
from bot.runtime import Runtime
from bot.stopping import on_signal, unless_stopped
from bot.store import OutboxItem, Store
from bot.text import counted

COMMAND_HOUSEKEEPING_SECONDS = 1.0  # the share of housekeeping a one-off command does before it exits

log = logging.getLogger("bot")

# Builds a platform's adapter from the configuration, or None when the platform is not configured.
# `listening` is True for `creditbot run` (commands are served) and False for one-off commands, which only
# deliver.
AdapterFactory = Callable[[AppConfig, bool], Adapter | None]

ADAPTERS: dict[str, AdapterFactory] = {}
# The setting (its environment variable) without which a platform has no adapter.
NEEDS: dict[str, str] = {}
# The channel keys beyond the common ones that a platform's channels take (`url`, `secret`): key -> required.
CHANNEL_KEYS: dict[str, dict[str, bool]] = {}


def register_adapter(
    platform: str,
    factory: AdapterFactory,
    *,
    needs: str | None = None,
    channel_keys: dict[str, bool] | None = None,
) -> None:
    """Make a platform available to `[[channels]]` tables, `run`, `summary --send` and `notify-test`; `needs`
    names the setting without which it is not configured (a channel on it is then a configuration error);
    `channel_keys` the extra keys its channels take (`{"url": True}`: required)."""
    ADAPTERS[platform] = factory
    if needs is not None:
        NEEDS[platform] = needs
    if channel_keys:
        CHANNEL_KEYS[platform] = dict(channel_keys)


def _console(config: AppConfig, listening: bool) -> Adapter:
    from adapters.console import ConsoleAdapter

    return ConsoleAdapter(chart_dir=config.settings.chart_dir, interactive=None if listening else False)


def _slack(config: AppConfig, listening: bool) -> Adapter | None:
    if not config.settings.slack_enabled:
        return None
    from adapters.slack.adapter import SlackAdapter

    slack = SlackAdapter(config.settings)
    if listening and slack.http_routes() and not config.settings.http_enabled:
        raise AdapterConfigError(
            "Slack HTTP mode needs the HTTP listener: set CREDITBOT_HTTP=true, or SLACK_APP_TOKEN for Socket Mode"
        )
    return slack


def _discord(config: AppConfig, listening: bool) -> Adapter | None:
    if not config.settings.discord_enabled:
        return None
    if not listening:
        # One-off commands post over REST: the gateway session belongs to `creditbot run`.
        from adapters.discord.rest import DiscordRestAdapter

        return DiscordRestAdapter(config.settings)
    from adapters.discord.adapter import DiscordAdapter

    return DiscordAdapter(config.settings)


def _webhook(config: AppConfig, listening: bool) -> Adapter | None:
    from adapters.webhook import webhook_adapter  # None without a webhook channel

    return webhook_adapter(config.channels)


def _apprise(config: AppConfig, listening: bool) -> Adapter | None:
    from adapters.apprise_channel import apprise_adapter  # None without an apprise channel; Apprise only then

    return apprise_adapter(config.channels)


register_adapter("console", _console)
register_adapter("slack", _slack, needs="SLACK_BOT_TOKEN")
register_adapter("discord", _discord, needs="DISCORD_TOKEN")
register_adapter("webhook", _webhook, channel_keys={"url": True, "secret": True})
register_adapter("apprise", _apprise, channel_keys={"url": True})


def platforms() -> list[str]:
    """The platform names that `[[channels]]` tables may use."""
    return list(ADAPTERS)


def build_adapters(config: AppConfig, *, listening: bool) -> list[Adapter]:
    """Each configured platform's adapter, built once; a setting that cannot work is a CommandFailure."""
    adapters = []
    for factory in ADAPTERS.values():
        try:
            adapter = factory(config, listening)
        except AdapterConfigError as exc:
            raise CommandFailure(str(exc), EX_CONFIG) from None
        if adapter is not None:
            adapters.append(adapter)
    return adapters


def load() -> AppConfig:
    """Settings, accounts and channels, with logging set up to scrub every secret they hold."""
    from bot.logs import configure_logging

    settings = load_settings()
    unconfigured = {platform: needs for platform, needs in NEEDS.items() if not settings.given(needs)}
    config = load_config(settings, platforms=platforms(), unconfigured=unconfigured, channel_keys=CHANNEL_KEYS)
    configure_logging(settings.log_level, settings.log_format, config.secrets())
    return config


@dataclass(frozen=True)
class Services:
    """What every command works with: the configuration, the open store and the one monitor."""

    config: AppConfig
    store: Store
    monitor: Monitor


@asynccontextmanager
async def services(config: AppConfig) -> AsyncIterator[Services]:
    """Open the store and the provider HTTP client; database failures become one-line CommandFailures."""
    from bot.httpclient import provider_client
    from bot.store import StoreError, database_problem, is_database_error

    try:
        store = await Store.open(config.settings.database_url)
    except StoreError as exc:
        raise CommandFailure(str(exc), EX_CONFIG if exc.misconfigured else 1) from None
    try:
        async with provider_client(config.settings) as http:
            yield Services(config, store, Monitor(config, store, http))
    except Exception as exc:
        # A database that opened but fails later (a damaged page, a lost server) is one line, not a traceback.
        if is_database_error(exc):
            raise CommandFailure(database_problem(config.settings.database_url, exc)) from None
        raise
    finally:
        await store.close()


def _runtime(parts: Services, adapters: Sequence[Adapter], **options: Any) -> Runtime:
    from bot.chart_data import make_chart

    async def charts(views: Sequence[Any]) -> bytes | None:
        return await make_chart(parts.monitor, views)

    return Runtime(parts.monitor, adapters, charts=charts, **options)


def run(config: AppConfig) -> int:
    """Run the bot until SIGINT, SIGTERM or SIGHUP; the process ends within CREDITBOT_STOP_GRACE_SECONDS plus 5
    seconds of the signal, whatever it was doing."""

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # SIGHUP too: a closed terminal or a supervisor's hang-up stops the bot cleanly rather than killing it.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, on_signal, stop, config.settings.stop_grace_seconds)
        await serve(config, stop)
        return 0

    return asyncio.run(main())


async def serve(config: AppConfig, stop: asyncio.Event) -> None:
    """The bot: adapters, HTTP listener, leadership and the runtime, until `stop` is set (also while start-up
    is still waiting for something)."""
    from bot.leader import AnotherRunError, leadership_for
    from bot.metrics import metrics_access
    from bot.runtime import settle_heap

    settings = config.settings
    adapters = build_adapters(config, listening=True)
    async with services(config) as parts:
        runtime = _runtime(parts, adapters, leadership=leadership_for(settings.database_url))
        routes: list[Route] = [route for adapter in adapters for route in adapter.http_routes()]
        web: list[Any] = []

        async def start_up() -> None:
            # The runtime first: a second `run` on the same SQLite file then hears "another creditbot is
            # running", not that its port is taken.
            try:
                await runtime.start()
            except AnotherRunError as exc:
                raise CommandFailure(str(exc)) from None
            except AdapterConfigError as exc:  # e.g. a token the platform refuses: no retry can fix it
                raise CommandFailure(str(exc), EX_CONFIG) from None
            if settings.http_enabled:
                from bot.web import start_http

                try:
                    web.append(await start_http(settings.port, [*routes, *runtime.http_routes()]))
                except OSError as exc:
                    raise CommandFailure(f"cannot listen on port {settings.port} (PORT): {exc.strerror}") from None
            if config.demo:
                # The demo shows its summary at once rather than at the next summary time.
                await runtime.send_summaries([c for c in config.channels if c.source == "demo"])

        try:
            if await unless_stopped(start_up(), stop):
                settle_heap()
                log.info(
                    "creditbot running: %s, %s, polling every %gs%s",
                    counted(len(config.accounts), "account"),
                    counted(len(await runtime.channels()), "channel"),
                    settings.poll_seconds,
                    f", health on :{settings.port}/healthz" if web else "",
                )
                if web:
                    log.info("metrics: %s", metrics_access(settings))
                await stop.wait()
            log.info("stopping")
        finally:
            await runtime.stop()
            for runner in web:
                await runner.cleanup()


async def summary_text(config: AppConfig, channel_ids: Sequence[str]) -> str:
    """The daily summary as plain text, for one channel when exactly one is chosen, else for all accounts."""
    from bot.plain import render_text

    async with services(config) as parts:
        runtime = _runtime(parts, [])
        channels = _chosen(await runtime.channels(), channel_ids)
        message = await runtime.summary_message(channels[0] if len(channels) == 1 else None)
        return render_text(message)


async def send_summaries(config: AppConfig, channel_ids: Sequence[str]) -> dict[str, OutboxItem | None]:
    """Fetch, then send the summary to each chosen channel now; returns each channel's outbox row (None when
    its summary could not be built)."""
    async with services(config) as parts, _delivering(config) as adapters:
        runtime = _runtime(parts, adapters)
        channels = _chosen(await runtime.channels(), channel_ids)
        if not channels:
            raise CommandFailure("no channels are configured: add [[channels]] to creditbot.toml (see README)")
        await parts.monitor.refresh()
        day = f"manual-{parts.monitor.clock().isoformat()}"
        for channel in channels:
            await runtime.send_summary(channel, day=day)
        queued = {item.key: item for item in await parts.store.outbox.items("summary")}
        return {channel.key: queued.get(f"summary:{channel.key}:{day}") for channel in channels}


async def notify_test(config: AppConfig, channel_ids: Sequence[str]) -> list[OutboxItem]:
    """Send a test message to each chosen channel; returns each message's outbox row."""
    async with services(config) as parts, _delivering(config) as adapters:
        runtime = _runtime(parts, adapters)
        channels = [c for c in await runtime.channels() if not channel_ids or c.id in channel_ids]
        if not channels:
            raise CommandFailure("no matching channels are configured")
        keys = {await runtime.notify_test(channel) for channel in channels}
        return [item for item in await parts.store.outbox.items("test") if item.key in keys]


@asynccontextmanager
async def _delivering(config: AppConfig) -> AsyncIterator[list[Adapter]]:
    """The adapters of a one-off command, stopped afterwards (their HTTP sessions closed)."""
    adapters = build_adapters(config, listening=False)
    try:
        yield adapters
    finally:
        for adapter in adapters:
            await adapter.stop()


def _chosen(channels: list[Any], channel_ids: Sequence[str]) -> list[Any]:
    if not channel_ids:
        return channels
    unknown = [c for c in channel_ids if c not in {ch.id for ch in channels}]
    if unknown:
        known = ", ".join(ch.id for ch in channels) or "none"
        raise CommandFailure(f"unknown channel {', '.join(unknown)}; known: {known}", usage=True)
    return [c for c in channels if c.id in channel_ids]


@dataclass(frozen=True)
class Check:
    """One line of `creditbot doctor`, and whether it is a problem to fix."""

    line: str
    problem: bool = False


async def platform_checks(config: AppConfig) -> list[Check]:
    """What `creditbot doctor` says about the HTTP listener and each chat platform, one line each; "!" marks
    a problem."""
    from bot.metrics import metrics_access

    settings = config.settings
    lines = [
        Check(f"metrics: {metrics_access(settings)}" if settings.http_enabled else "metrics: no HTTP listener")
    ]
    if settings.slack_enabled:
        from adapters.slack.adapter import check_slack

        lines += [Check(f"slack: {line}", line.startswith("!")) for line in await check_slack(settings) or ["ok"]]
    if settings.discord_enabled:
        from adapters.discord.adapter import check_discord

        lines += [Check(f"discord: {line}", line.startswith("!")) for line in await check_discord(settings)]
    for channel in config.channels:
        if channel.url is not None:  # a push-only channel: its address is a secret, so scheme and host only
            shown = _shown_url(channel.platform, channel.url)
            lines.append(Check(f"channel {channel.key}: delivers to {shown}", shown.startswith("!")))
    return lines


def _shown_url(platform: str, url: SecretStr) -> str:
    if platform == "apprise":
        from adapters.apprise_channel.urls import describe_url

        return describe_url(url.get_secret_value())
    try:
        parts = urlsplit(url.get_secret_value())
    except ValueError:  # e.g. an unclosed "[": `run` refuses it too, naming the channel
        return "! a url that is not a valid address"
    return f"{parts.scheme}://{parts.hostname or ''}"
