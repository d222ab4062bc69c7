"""The `creditbot` command line: parses arguments, calls the core through `bot.app`, prints."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from bot import __version__

if TYPE_CHECKING:
    from bot.config import AppConfig

T = TypeVar("T")
MAX_BREAKDOWN_DAYS = 366  # a year against the year before; the retention (400 days by default) may keep less

# Commands import the core lazily so that `creditbot --help` starts fast.

NO_ACCOUNTS_HELP = (
    "No accounts are configured. Set a provider's key variable such as OPENAI_ADMIN_KEY, ANTHROPIC_ADMIN_KEY, "
    "OPENROUTER_API_KEY or DEEPSEEK_API_KEY (in the environment or .env; `creditbot providers` lists them all), "
    "or list [[accounts]] in creditbot.toml. See README.md > Configuration."
)


def _config(*, one_off: bool = True) -> AppConfig:
    from bot import app
    from bot.logs import leave_terminal_to_command

    config = app.load()
    if one_off:
        leave_terminal_to_command()
    return config


def _demo_or_config() -> AppConfig:
    from bot.config import demo_config

    config = _config()
    return demo_config(config) if not config.accounts else config


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run a command's work; a wrong argument found by the core is a usage error, shown with the usage."""
    from bot.errors import CommandFailure

    try:
        return asyncio.run(work)
    except CommandFailure as exc:
        if exc.usage:
            raise click.UsageError(str(exc)) from None
        raise


def _unknown_accounts(config: AppConfig, names: Sequence[str]) -> None:
    unknown = [n for n in names if config.account(n) is None]
    if unknown:
        known = ", ".join(a.name for a in config.accounts) or "none configured"
        raise click.UsageError(f"unknown account {', '.join(repr(n) for n in unknown)}; known accounts: {known}")


def _no_accounts(as_json: bool) -> int:
    """What `check` and `breakdown` say without accounts: an empty document for --json, the help on stderr."""
    from datetime import UTC, datetime

    from bot.report import EXIT_UNKNOWN

    if as_json:
        click.echo(json.dumps({"generated_at": datetime.now(UTC).isoformat(), "accounts": []}))
    click.echo(NO_ACCOUNTS_HELP, err=True)
    return EXIT_UNKNOWN


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
    from bot import oneoff
    from bot.errors import EX_CONFIG, CommandFailure
    from bot.report import EXIT_UNKNOWN, check_document, exit_status

    config = _config()
    _unknown_accounts(config, names)
    if not config.accounts:
        return _no_accounts(as_json)

    try:
        views, now = asyncio.run(oneoff.current_views(config, names, refresh=refresh))
    except CommandFailure as exc:
        if exc.exit_code != EX_CONFIG:
            exc.exit_code = EXIT_UNKNOWN
        raise
    if as_json:
        click.echo(json.dumps(check_document(views, now), indent=2))
    else:
        from bot.tables import print_check

        print_check(views, now)
    return exit_status(views)


@cli.command()
@click.argument("account_name", metavar="[ACCOUNT]", required=False)
@click.option(
    "--by",
    type=click.Choice(["model", "project", "line_item", "key"]),
    default="model",
    show_default=True,
    help="What to group the spend by.",
)
@click.option(
    "--days",
    type=click.IntRange(1, MAX_BREAKDOWN_DAYS),
    default=7,
    show_default=True,
    help="The last N complete UTC days, ending yesterday.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def breakdown(account_name: str | None, by: str, days: int, as_json: bool) -> int:
    """Where the money went: spend and tokens by model, project, line item or API key."""
    from bot import oneoff

    config = _config()
    names = [account_name] if account_name else []
    _unknown_accounts(config, names)
    if not config.accounts:
        return _no_accounts(as_json)
    items, now = _run(oneoff.breakdowns(config, names, by, days))
    if as_json:
        from bot.breakdown_report import breakdown_document

        click.echo(json.dumps(breakdown_document(items, now), indent=2))
    else:
        from bot.breakdown_tables import print_breakdowns

        print_breakdowns(items)
    return 0


@cli.command()
def accounts() -> int:
    """List configured accounts, where each came from and their effective thresholds."""
    from bot import oneoff
    from bot.tables import print_accounts

    config = _config()
    if not config.accounts:
        click.echo(NO_ACCOUNTS_HELP)
        return 0

    print_accounts(config, asyncio.run(oneoff.threshold_overrides(config)))
    return 0


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def providers(as_json: bool) -> int:
    """List every provider: what it reports, the key it needs, its zero-config variable."""
    from bot.tables import print_providers, provider_rows

    if as_json:
        click.echo(json.dumps({"providers": provider_rows()}, indent=2))
    else:
        print_providers()
    return 0


@cli.command()
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("amount_text", metavar="AMOUNT")
@click.option("--on", "on_day", metavar="YYYY-MM-DD", help="Day the credit was bought (UTC); default today.")
def topup(account_name: str, amount_text: str, on_day: str | None) -> int:
    """Record credit bought for a spend-only account (OpenAI, Anthropic)."""
    from bot import oneoff
    from bot.money import AmountError, parse_amount

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

    click.echo(_run(oneoff.record_topup(config, account, value, on_day)))
    return 0


@cli.command()
def run() -> int:
    """Run the bot: polling, alerts, daily summaries, chat adapters and /healthz."""
    from bot import app
    from bot.config import DEMO_BANNER, demo_config

    config = _config(one_off=False)
    if not config.accounts and not config.settings.slack_enabled and not config.settings.discord_enabled:
        config = demo_config(config)
        click.echo(DEMO_BANNER, err=True)
    return app.run(config)


@cli.command()
@click.option("--send", is_flag=True, help="Send it to the channels instead of printing it.")
@click.option("--channel", "channel_ids", multiple=True, metavar="ID", help="Only this channel (repeatable).")
def summary(send: bool, channel_ids: tuple[str, ...]) -> int:
    """Print the daily summary now, or send it to the configured channels."""
    from bot import app

    config = _demo_or_config()
    if not send:
        click.echo(_run(app.summary_text(config, channel_ids)))
        return 0
    outcomes = _run(app.send_summaries(config, channel_ids))
    for channel, item in outcomes.items():
        if item is not None and item.status == "sent":
            click.echo(f"{channel}: summary sent", err=True)
        elif item is None:
            click.echo(f"{channel}: not delivered (it could not be built; see the log)", err=True)
        else:
            click.echo(f"{channel}: {_undelivered(item)}", err=True)
    return 1 if any(item is None or item.status != "sent" for item in outcomes.values()) else 0


@cli.command(name="alerts")
def alerts_command() -> int:
    """List the state of every alert rule that has fired."""
    from bot import oneoff
    from bot.alerts import severity
    from bot.formatting import time_text

    config = _demo_or_config()

    states, undelivered = asyncio.run(oneoff.alert_states(config))
    active = [s for s in states if s.level > 0]
    if not active:
        click.echo("No open alerts.")
    for state in sorted(active, key=lambda s: (s.account, s.rule.value)):
        since = time_text(state.since) if state.since else "?"
        loudness = severity(state.rule, state.level).value
        click.echo(f"{state.account}: {state.rule.value} {loudness} since {since}: {state.detail or ''}")
    if undelivered:
        click.echo("\nUndelivered:")
    for item in undelivered:
        when = item.claimed_at or item.created_at
        state = "failed" if item.status == "failed" else f"retrying (attempt {item.attempts})"
        shown = time_text(when) if when else "?"
        click.echo(f"{item.platform}:{item.channel}: {item.key}: {state} at {shown}: {item.last_error or ''}")
    return 0


@cli.command(name="notify-test")
@click.option("--channel", "channel_ids", multiple=True, metavar="ID", help="Only this channel (repeatable).")
def notify_test(channel_ids: tuple[str, ...]) -> int:
    """Send a test message to the configured channels to check delivery."""
    from bot import app

    items = asyncio.run(app.notify_test(_demo_or_config(), channel_ids))
    failed = [item for item in items if item.status != "sent"]
    for item in failed:
        click.echo(f"{item.platform}:{item.channel}: {_undelivered(item)}", err=True)
    return 1 if failed else 0


def _undelivered(item: Any) -> str:
    """Why an outbox row was not sent, and whether `creditbot run` will try again."""
    if item.status == "pending":
        return f"not delivered yet ({item.last_error}); it stays queued and `creditbot run` tries again"
    return f"not delivered ({item.last_error})"


@cli.command()
def doctor() -> int:
    """Check the configuration, the database, every account's key and endpoint, and the chat platforms."""
    from bot import oneoff
    from bot.text import counted

    config = _config()

    async def go() -> int:
        problems = 0
        async for check in oneoff.doctor(config, NO_ACCOUNTS_HELP):
            click.echo(check.line)
            problems += check.problem
        return problems

    problems = asyncio.run(go())
    click.echo("all good" if problems == 0 else f"{counted(problems, 'problem')} to fix")
    return 1 if problems else 0


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: maps errors to exit statuses (64 usage, 78 configuration) without tracebacks."""
    from bot.errors import EX_CONFIG, EX_USAGE, CommandFailure, ConfigError

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
    except CommandFailure as exc:
        if exc.usage:
            click.UsageError(str(exc)).show()
        else:
            click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
