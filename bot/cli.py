"""The `creditbot` command line."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import click

from bot import __version__

if TYPE_CHECKING:
    from bot.config import AppConfig
    from bot.models import AccountView
    from bot.money import Money
    from bot.monitor import Monitor

# Commands import the core lazily so that `creditbot --help` starts fast.

EX_USAGE = 64  # sysexits.h: so usage and configuration errors never look like a monitoring status
EX_CONFIG = 78
NO_ACCOUNTS_HELP = (
    "No accounts are configured. Set one of OPENAI_ADMIN_KEY, ANTHROPIC_ADMIN_KEY, OPENROUTER_API_KEY, "
    "DEEPSEEK_API_KEY, MOONSHOT_API_KEY (in the environment or .env), or list [[accounts]] in creditbot.toml. "
    "See README.md > Configuration."
)


class CliFailure(Exception):
    """A command failed in a way the user can fix; the message says how."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _config() -> AppConfig:
    from bot.config import load_config, load_settings
    from bot.logs import configure_logging

    settings = load_settings()
    config = load_config(settings)
    configure_logging(settings.log_level, settings.log_format, config.secrets())
    return config


@asynccontextmanager
async def _monitor(config: AppConfig) -> AsyncIterator[Monitor]:
    from bot.httpclient import provider_client
    from bot.monitor import Monitor
    from bot.store import Store, StoreError, database_problem, is_database_error

    try:
        store = await Store.open(config.settings.database_url)
    except StoreError as exc:
        raise CliFailure(str(exc), EX_CONFIG if exc.misconfigured else 1) from None
    try:
        async with provider_client(config.settings) as http:
            yield Monitor(config, store, http)
    except Exception as exc:
        # A database that opened but fails later (a damaged page, a lost server) is one line, not a traceback.
        if is_database_error(exc):
            raise CliFailure(database_problem(config.settings.database_url, exc)) from None
        raise
    finally:
        await store.close()


def _unknown_accounts(config: AppConfig, names: Sequence[str]) -> None:
    unknown = [n for n in names if config.account(n) is None]
    if unknown:
        known = ", ".join(a.name for a in config.accounts) or "none configured"
        raise click.UsageError(f"unknown account {', '.join(repr(n) for n in unknown)}; known accounts: {known}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="creditbot")
def cli() -> None:
    """How much money is left on your LLM API accounts, and when it runs out."""


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--account", "names", multiple=True, metavar="NAME", help="Only this account (repeatable).")
@click.option("--refresh", is_flag=True, help="Fetch now even if a reading is younger than the cache time.")
def check(as_json: bool, names: tuple[str, ...], refresh: bool) -> int:
    """Show balances, spend and runway; exit 0 ok, 1 warning, 2 critical, 3 error."""
    from bot.report import EXIT_UNKNOWN, check_document, exit_status

    config = _config()
    _unknown_accounts(config, names)
    if not config.accounts:
        if as_json:
            from datetime import UTC, datetime

            click.echo(json.dumps({"generated_at": datetime.now(UTC).isoformat(), "accounts": []}))
        click.echo(NO_ACCOUNTS_HELP, err=True)
        return EXIT_UNKNOWN

    async def run() -> tuple[list[AccountView], Any]:
        async with _monitor(config) as monitor:
            views = await monitor.views(list(names), refresh=refresh)
            await monitor.prune()
            return views, monitor.clock()

    try:
        views, now = asyncio.run(run())
    except CliFailure as exc:
        if exc.exit_code != EX_CONFIG:
            exc.exit_code = EXIT_UNKNOWN
        raise
    if as_json:
        click.echo(json.dumps(check_document(views, now), indent=2))
    else:
        _print_check_table(views, now)
    return exit_status(views)


def _money(value: Money | None) -> str:
    return "—" if value is None else value.format()


def _balance_text(view: AccountView) -> str:
    from bot.models import BalanceSource

    if view.balance is None:
        return "—"
    suffix = {BalanceSource.ESTIMATED: " (est.)", BalanceSource.KEY_LIMIT: " (key limit)"}.get(
        view.balance_source or BalanceSource.REPORTED, ""
    )
    others = [m.format() for m in view.balances if m.currency != view.balance.currency]
    return view.balance.format() + suffix + (f" + {', '.join(others)}" if others else "")


def _days(value: Decimal | None) -> str:
    if value is None:
        return "—"
    return "∞" if value > 9999 else f"{value:.1f}"


STATUS_STYLE = {"critical": "bold red", "warning": "yellow", "error": "magenta", "ok": "green"}


def _print_check_table(views: Sequence[AccountView], now: Any) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 250, highlight=False)
    table = Table(title=f"LLM credits as of {now:%Y-%m-%d %H:%M} UTC", title_justify="left")
    for column in (
        "account",
        "provider",
        "balance",
        "today",
        "month to date",
        "budget",
        "burn/day",
        "days left",
        "status",
        "age",
    ):
        table.add_column(
            column, justify="right" if column not in ("account", "provider", "status") else "left", no_wrap=True
        )
    for view in views:
        age = view.age(now)
        age_text = "—" if age is None else f"{int(age.total_seconds() // 60)} min"
        status = view.status.value + (" (stale)" if view.stale else "")
        table.add_row(
            view.name,
            view.account.provider,
            _balance_text(view),
            _money(view.spent_today),
            _money(view.spent_month),
            _money(view.monthly_budget),
            _money(view.burn_rate),
            _days(view.days_left),
            f"[{STATUS_STYLE[view.status.value]}]{status}[/]",
            age_text,
        )
    console.print(table)
    for view in views:
        if view.error:
            console.print(f"[magenta]{escape(view.name)}[/]: {escape(view.error)}", markup=True, highlight=False)
        for note in view.report.notes if view.report else ():
            console.print(f"{view.name}: {note}", markup=False)


@cli.command()
def accounts() -> int:
    """List configured accounts, where each came from and their effective thresholds."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from bot.monitor import effective_thresholds

    config = _config()
    if not config.accounts:
        click.echo(NO_ACCOUNTS_HELP)
        return 0

    async def load_overrides() -> dict[str, Any]:
        async with _monitor(config) as monitor:
            return dict(await monitor.store.threshold_overrides())

    overrides = asyncio.run(load_overrides())
    console = Console(width=None if sys.stdout.isatty() else 250, highlight=False)
    table = Table(title=f"Accounts (from {config.source})", title_justify="left")
    for column in (
        "account",
        "provider",
        "from",
        "base url",
        "key",
        "warn below",
        "critical below",
        "monthly budget",
        "prepaid",
    ):
        table.add_column(column, no_wrap=True)
    for account in config.accounts:
        thresholds = effective_thresholds(account, overrides.get(account.name))

        def cell(name: str, value: Decimal | None, origin: dict[str, str] = thresholds.origin) -> str:
            return "—" if value is None else f"{value} ({origin.get(name, 'default')})"

        prepaid = (
            f"{account.prepaid_credit.format()} since {account.prepaid_since}" if account.prepaid_credit else "—"
        )
        provider = account.provider + (" (experimental)" if account.provider == "openai-legacy" else "")
        table.add_row(
            account.name,
            provider,
            escape(account.origin),
            escape(account.base_url),
            account.masked_key(),
            cell("warn_below", thresholds.warn_below),
            cell("critical_below", thresholds.critical_below),
            cell("monthly_budget", thresholds.monthly_budget),
            prepaid,
        )
    console.print(table, markup=False)
    return 0


@cli.command()
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("amount_text", metavar="AMOUNT")
@click.option("--on", "on_day", metavar="YYYY-MM-DD", help="Day the credit was bought (UTC); default today.")
def topup(account_name: str, amount_text: str, on_day: str | None) -> int:
    """Record credit bought for a spend-only account (OpenAI, Anthropic)."""
    from bot.money import AmountError, Money, parse_amount

    config = _config()
    _unknown_accounts(config, [account_name])
    account = config.account(account_name)
    assert account is not None
    if not account.spend_only:
        raise click.UsageError(
            f"{account.name} ({account.provider}) reports its own balance; "
            "top-ups are only recorded for spend-only accounts (openai, anthropic)"
        )
    try:
        value = parse_amount(amount_text.strip().lstrip("$"), what="AMOUNT")
    except AmountError as exc:
        raise click.UsageError(f"{exc}; write it like 50 or 50.00") from None
    if value <= 0:
        raise click.UsageError("AMOUNT must be more than zero")

    async def run() -> str:
        async with _monitor(config) as monitor:
            today = monitor.clock().date()
            try:
                day = date.fromisoformat(on_day) if on_day else today
            except ValueError:
                raise click.UsageError(
                    f"--on {on_day!r} is not a date; write it like {today.isoformat()}"
                ) from None
            if day > today:
                raise click.UsageError(f"--on {day} is in the future")
            money = Money(value, account.currency or "USD")
            await monitor.record_topup(account, money, day, "cli")
            entries = (await monitor.ledger([account]))[account.name]
            total = sum((e.amount.amount for e in entries if e.amount.currency == money.currency), Decimal(0))
            return (
                f"Recorded a top-up of {money.format()} for {account.name} on {day}. "
                f"Credit recorded in all: {Money(total, money.currency).format()} in {len(entries)} entries."
            )

    click.echo(asyncio.run(run()))
    return 0


@cli.command()
def run() -> int:
    """Run the bot: polling, alerts, daily summaries, chat adapters and /healthz."""
    from bot.config import DEMO_BANNER, demo_config

    config = _config()
    if not config.accounts and not config.settings.slack_enabled and not config.settings.discord_enabled:
        config = demo_config(config)
        click.echo(DEMO_BANNER, err=True)
    return asyncio.run(_run(config))


async def _run(config: AppConfig) -> int:
    import signal

    from adapters.console import ConsoleAdapter
    from bot.chart_data import make_chart
    from bot.runtime import Runtime, settle_heap

    settings = config.settings
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with _monitor(config) as monitor:
        adapters: list[Any] = [ConsoleAdapter(chart_dir=settings.chart_dir)]
        routes: list[Any] = []
        if settings.slack_enabled:
            from adapters.slack.adapter import SlackAdapter

            slack = SlackAdapter(settings)
            adapters.append(slack)
            routes += slack.http_routes()
            if routes and not settings.http_enabled:
                raise CliFailure(
                    "Slack HTTP mode needs the HTTP listener: set CREDITBOT_HTTP=true, or SLACK_APP_TOKEN "
                    "for Socket Mode",
                    EX_CONFIG,
                )
            if routes and settings.slack_signing_secret is None:
                raise CliFailure(
                    "Slack HTTP mode needs SLACK_SIGNING_SECRET (Basic Information > App Credentials)", EX_CONFIG
                )

        if settings.discord_enabled:
            from adapters.discord.adapter import DiscordAdapter

            adapters.append(DiscordAdapter(settings))

        async def charts(views: Sequence[AccountView]) -> bytes | None:
            return await make_chart(runtime.monitor, views)

        from bot.leader import AnotherRunError, leadership_for

        leadership = leadership_for(settings.database_url)
        runtime = Runtime(config, monitor.store, monitor.http, adapters, charts=charts, leadership=leadership)
        web = None
        if settings.http_enabled:
            from bot.web import start_http

            try:
                web = await start_http(settings.port, [*routes, *runtime.http_routes()])
            except OSError as exc:
                raise CliFailure(f"cannot listen on port {settings.port} (PORT): {exc.strerror}") from None
        try:
            await runtime.start()
        except AnotherRunError as exc:
            if web is not None:
                await web.cleanup()
            raise CliFailure(str(exc)) from None
        if config.demo:
            # The demo shows its summary at once rather than at the next summary time.
            for channel in config.channels:
                if channel.source == "demo":
                    await runtime.send_summary(channel)
        settle_heap()
        import logging

        logging.getLogger("bot").info(
            "creditbot running: %d accounts, %d channels, polling every %gs%s",
            len(config.accounts),
            len(await runtime.channels()),
            settings.poll_seconds,
            f", health on :{settings.port}/healthz" if web else "",
        )
        await stop.wait()
        logging.getLogger("bot").info("stopping")
        await runtime.stop()
        if web is not None:
            await web.cleanup()
    return 0


def _demo_or_config() -> AppConfig:
    from bot.config import demo_config

    config = _config()
    return demo_config(config) if not config.accounts else config


@cli.command()
@click.option("--send", is_flag=True, help="Send it to the channels instead of printing it.")
@click.option("--channel", "channel_ids", multiple=True, metavar="ID", help="Only this channel (repeatable).")
def summary(send: bool, channel_ids: tuple[str, ...]) -> int:
    """Print the daily summary now, or send it to the configured channels."""
    config = _demo_or_config()

    async def go() -> int:
        from bot.chart_data import make_chart
        from bot.messages import render_text
        from bot.runtime import Runtime

        async with _monitor(config) as monitor:

            async def charts(views: Sequence[AccountView]) -> bytes | None:
                return await make_chart(monitor, views)

            runtime = Runtime(config, monitor.store, monitor.http, _delivery_adapters(config), charts=charts)
            channels = await runtime.channels()
            if channel_ids:
                unknown = [c for c in channel_ids if c not in {ch.id for ch in channels}]
                if unknown:
                    raise click.UsageError(
                        f"unknown channel {', '.join(unknown)}; known: "
                        f"{', '.join(ch.id for ch in channels) or 'none'}"
                    )
                channels = [c for c in channels if c.id in channel_ids]
            if not send:
                message, _values = await runtime.summary_message(channels[0] if len(channels) == 1 else None)
                click.echo(render_text(message))
                return 0
            if not channels:
                raise CliFailure("no channels are configured: add [[channels]] to creditbot.toml (see README)")
            await monitor.refresh()
            failures = 0
            for channel in channels:
                day = f"manual-{monitor.clock().isoformat()}"
                await runtime.send_summary(channel, day=day)
                item = next(
                    i
                    for i in reversed(await monitor.store.outbox_items("summary"))
                    if i.key == f"summary:{channel.key}:{day}"
                )
                if item.status != "sent":
                    failures += 1
                    click.echo(f"{channel.key}: not delivered ({item.last_error})", err=True)
                else:
                    click.echo(f"{channel.key}: summary sent", err=True)
            return 1 if failures else 0

    return asyncio.run(go())


@cli.command(name="alerts")
def alerts_command() -> int:
    """List the state of every alert rule that has fired."""
    config = _demo_or_config()

    async def go() -> list[dict[str, Any]]:
        async with _monitor(config) as monitor:
            return await monitor.store.alert_states()

    rows = asyncio.run(go())
    active = [r for r in rows if r["level"] > 0]
    if not active:
        click.echo("No open alerts.")
    for row in sorted(active, key=lambda r: (r["account"], r["rule"])):
        since = row["since"].strftime("%Y-%m-%d %H:%M UTC") if row["since"] else "?"
        click.echo(f"{row['account']}: {row['rule']} level {row['level']} since {since}: {row['detail'] or ''}")
    return 0


@cli.command(name="notify-test")
@click.option("--channel", "channel_ids", multiple=True, metavar="ID", help="Only this channel (repeatable).")
def notify_test(channel_ids: tuple[str, ...]) -> int:
    """Send a test message to the configured channels to check delivery."""
    config = _demo_or_config()

    async def go() -> int:
        from bot.runtime import Runtime

        async with _monitor(config) as monitor:
            runtime = Runtime(config, monitor.store, monitor.http, _delivery_adapters(config))
            channels = [c for c in await runtime.channels() if not channel_ids or c.id in channel_ids]
            if not channels:
                raise CliFailure("no matching channels are configured")
            keys = {await runtime.notify_test(channel) for channel in channels}
            failed = [i for i in await monitor.store.outbox_items("test") if i.key in keys and i.status != "sent"]
            for item in failed:
                click.echo(f"{item.platform}:{item.channel}: not delivered ({item.last_error})", err=True)
            return 1 if failed else 0

    return asyncio.run(go())


def _delivery_adapters(config: AppConfig) -> list[Any]:
    """Adapters that can deliver messages from a one-off command (no listeners started)."""
    from adapters.console import ConsoleAdapter

    adapters: list[Any] = [ConsoleAdapter(chart_dir=config.settings.chart_dir, interactive=False)]
    if config.settings.slack_enabled:
        from adapters.slack.adapter import SlackAdapter

        adapters.append(SlackAdapter(config.settings))
    return adapters


@cli.command()
def doctor() -> int:
    """Check the configuration, the database, every account's key and endpoint, and the chat platforms."""
    config = _config()
    settings = config.settings
    click.echo(
        f"configuration: {len(config.accounts)} accounts from {config.source}, "
        f"{len(config.channels)} channels in the TOML file"
    )
    if not config.accounts:
        click.echo(f"  ! {NO_ACCOUNTS_HELP}")

    async def go() -> int:
        found = 0
        async with _monitor(config) as monitor:
            click.echo("database: ok")
            for reading in await monitor.refresh():
                click.echo(f"account {reading.account}: " + ("ok" if reading.ok else f"! {reading.error}"))
                found += 0 if reading.ok else 1
            subscribed = await monitor.store.subscriptions()
            platforms = {c.platform for c in config.channels} | {s.platform for s in subscribed}
        if settings.slack_enabled:
            found += await _check_slack(config)
        elif "slack" in platforms:
            found += 1
            click.echo("slack: ! channels are configured for Slack but SLACK_BOT_TOKEN is not set")
        if settings.discord_enabled:
            from adapters.discord.adapter import application_id_from_token, invite_url

            assert settings.discord_token is not None
            app_id = application_id_from_token(settings.discord_token.get_secret_value())
            if app_id is None:
                found += 1
                click.echo(
                    "discord: ! DISCORD_TOKEN does not look like a bot token (Developer Portal > Bot > Token)"
                )
            else:
                click.echo(f"discord: invite the bot with {invite_url(app_id)}")
        elif "discord" in platforms:
            found += 1
            click.echo("discord: ! channels are configured for Discord but DISCORD_TOKEN is not set")
        return found

    problems = asyncio.run(go())
    click.echo("all good" if problems == 0 else f"{problems} problem(s) to fix")
    return 1 if problems else 0


async def _check_slack(config: AppConfig) -> int:
    from adapters.slack.adapter import check_slack

    problems = await check_slack(config.settings)
    for line in problems or ["ok"]:
        click.echo(f"slack: {line}")
    return len([p for p in problems if p.startswith("!")])


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: maps errors to exit statuses (64 usage, 78 configuration) without tracebacks."""
    from bot.errors import ConfigError

    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        click.echo(cli.get_help(click.Context(cli, info_name="creditbot")))
        sys.exit(0)
    try:
        code = cli.main(args=args, prog_name="creditbot", standalone_mode=False)
    except click.UsageError as exc:
        exc.show()
        sys.exit(EX_USAGE)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"configuration error: {problem}", err=True)
        sys.exit(EX_CONFIG)
    except CliFailure as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
