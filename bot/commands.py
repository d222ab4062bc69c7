"""The chat command language, parsed once here for every adapter: `credits [sub-command] [arguments]`."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import time, timedelta
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.durations import DurationError, parse_duration
from bot.money import AmountError, parse_amount
from bot.text import shown as _shown

MAX_SNOOZE = timedelta(days=90)
MAX_BREAKDOWN_DAYS = 90
DEFAULT_BREAKDOWN_DAYS = 7
MODELS_WORD = "models"  # `credits chart [account] models`: spend stacked by model
_TIME_OF_DAY = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_NUMBER = re.compile(r"[+-]?[0-9]{1,12}(?:[.,][0-9]*)?")  # ASCII digits only: int() would take others


class Verb(StrEnum):
    """What a command asks for."""

    CREDITS = "credits"
    SHARE = "share"
    CHART = "chart"
    BREAKDOWN = "breakdown"
    ALERTS = "alerts"
    SNOOZE = "snooze"
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    THRESHOLD = "threshold"
    TOPUP = "topup"
    HELP = "help"


ADMIN_VERBS = frozenset({Verb.SNOOZE, Verb.SUBSCRIBE, Verb.UNSUBSCRIBE, Verb.THRESHOLD, Verb.TOPUP})

USAGE = {
    Verb.CREDITS: "credits [account]",
    Verb.SHARE: "credits share [account]",
    Verb.CHART: "credits chart [account] [models]",
    Verb.BREAKDOWN: "credits breakdown [account] [days 1-90]",
    Verb.ALERTS: "credits alerts",
    Verb.SNOOZE: "credits snooze <account> <duration such as 30m, 24h or 7d>",
    Verb.SUBSCRIBE: "credits subscribe [HH:MM] [timezone such as Europe/Paris]",
    Verb.UNSUBSCRIBE: "credits unsubscribe",
    Verb.THRESHOLD: "credits threshold <account> <warn> [critical]",
    Verb.TOPUP: "credits topup <account> <amount>",
    Verb.HELP: "credits help",
}


class CommandError(ValueError):
    """Input that is not a valid command; the message says what is wrong and shows the usage."""


@dataclass(frozen=True)
class Command:
    """A parsed command with its validated arguments."""

    verb: Verb
    account: str | None = None
    duration: timedelta | None = None
    at: time | None = None
    timezone: str | None = None
    warn_below: Decimal | None = None
    critical_below: Decimal | None = None
    amount: Decimal | None = None
    refresh: bool = False  # fetch again now rather than show what is cached (the Refresh button)
    days: int | None = None  # breakdown: the last N complete days
    by_model: bool = False  # chart: spend stacked by model rather than balances

    @property
    def changes_settings(self) -> bool:
        """True for commands only admins may run (and which are audited)."""
        return self.verb in ADMIN_VERBS


PURPOSE = {
    Verb.CREDITS: "balances, spend and runway, privately",
    Verb.SHARE: "the same, posted in the channel",
    Verb.CHART: "balances with a chart of the last 30 days; with `models`, spend stacked by the top 5 models",
    Verb.BREAKDOWN: "where the money went: spend by model over the last days (7 unless given)",
    Verb.ALERTS: "open alerts and snoozes",
    Verb.SNOOZE: "silence an account's alerts for a while (admins)",
    Verb.SUBSCRIBE: "daily summary and alerts in this channel (admins)",
    Verb.UNSUBSCRIBE: "stop them (admins)",
    Verb.THRESHOLD: "set an account's warning and critical balance (admins)",
    Verb.TOPUP: "record credit bought for a spend-only account (admins)",
    Verb.HELP: "this list",
}


def help_text() -> str:
    """Every command with its usage and what it does, one per line."""
    return "\n".join(f"{USAGE[verb]}: {PURPOSE[verb]}" for verb in USAGE)


def known_timezone(name: str) -> bool:
    """True for an IANA timezone name; never raises (a directory such as America/Argentina, or an
    over-long name, makes ZoneInfo raise OSError)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _fail(verb: Verb, problem: str) -> CommandError:
    return CommandError(f"{problem}. Usage: {USAGE[verb]}")


def _account(verb: Verb, token: str, accounts: Collection[str]) -> str:
    if token in accounts:
        return token
    known = ", ".join(sorted(accounts)) or "none configured"
    raise _fail(verb, f"unknown account '{_shown(token)}' (known: {known})")


def parse_duration_word(verb: Verb, token: str) -> timedelta:
    """`30m`, `24h` or `7d` (at most four digits, no decimals), at most 90 days."""
    try:
        return parse_duration(token.lower(), units="mhd", longest=MAX_SNOOZE, max_digits=4)
    except DurationError as exc:
        problem = (
            "a snooze lasts at most 90 days" if exc.problem == "long" else f"'{_shown(token)}' is not a duration"
        )
    raise _fail(verb, problem)


def _amount(verb: Verb, token: str, what: str) -> Decimal:
    try:
        value = parse_amount(token.lstrip("$"), what=what)
    except AmountError:
        raise _fail(verb, f"{what} '{_shown(token)}' is not a number") from None
    if value < 0:
        raise _fail(verb, f"{what} must not be negative")
    return value


def parse_command(text: str, accounts: Collection[str]) -> Command:
    """Parse `[/]credits ...` or just the words after it; raise CommandError with usage when malformed."""
    words = text.split()
    if words and words[0].lower().lstrip("/") == "credits":
        words = words[1:]
    if not words:
        return Command(Verb.CREDITS)
    head, args = words[0], words[1:]
    try:
        verb = Verb(head.lower())
    except ValueError:
        if head in accounts and not args:
            return Command(Verb.CREDITS, account=head)
        raise CommandError(f"unknown command or account '{_shown(head)}'. Commands:\n{help_text()}") from None
    if verb is Verb.CREDITS:
        raise CommandError(f"'credits' is the command itself. Commands:\n{help_text()}")
    return _PARSERS[verb](verb, args, accounts)


def command_from_words(verb: Verb, words: list[str], accounts: Collection[str]) -> Command:
    """A command from its verb and argument words (typed options), validated as a typed line would be."""
    if verb is Verb.CREDITS:
        return _optional_account(verb, words, accounts)
    if verb is Verb.BREAKDOWN:
        # Typed options come by name and the account has its own: the word here is always the days, even when
        # an account is named like a number.
        return _breakdown_days(verb, words)
    return _PARSERS[verb](verb, words, accounts)


ACCOUNT_OPTION_VERBS = frozenset({Verb.CREDITS, Verb.SHARE, Verb.CHART, Verb.BREAKDOWN})


def with_account_option(command: Command, account: str, accounts: Collection[str]) -> Command:
    """Apply a slash command's separate `account` option: always an account name, never a command word."""
    if command.verb not in ACCOUNT_OPTION_VERBS or command.account is not None:
        raise _fail(command.verb, "give the account once")
    return replace(command, account=_account(command.verb, account, accounts))


def _optional_account(verb: Verb, args: list[str], accounts: Collection[str]) -> Command:
    if len(args) > 1:
        raise _fail(verb, "too many arguments")
    return Command(verb, account=_account(verb, args[0], accounts) if args else None)


def _chart(verb: Verb, args: list[str], accounts: Collection[str]) -> Command:
    """`[account] [models]` in either order; an account called `models` is taken as the account first."""
    account, by_model = None, False
    for token in args:
        if token.lower() == MODELS_WORD and not by_model and not (account is None and token in accounts):
            by_model = True
        elif account is None:
            account = _account(verb, token, accounts)
        else:
            raise _fail(verb, "too many arguments")
    return Command(verb, account=account, by_model=by_model)


def _breakdown(verb: Verb, args: list[str], accounts: Collection[str]) -> Command:
    """`[account] [days]` in either order; a number is the days unless an account has that name."""
    if len(args) > 2:
        raise _fail(verb, "too many arguments")
    if len(args) == 2:
        first, second = args
        # The likelier account goes first: a known name before an unknown one, then a word before a number, so
        # `30 oa` reads as `oa 30` while an account named `30` still works as written.
        if _account_likeness(second, accounts) > _account_likeness(first, accounts):
            first, second = second, first
        return Command(verb, account=_account(verb, first, accounts), days=_days(verb, second))
    if args and (args[0] in accounts or not _NUMBER.fullmatch(args[0])):
        return Command(verb, account=_account(verb, args[0], accounts), days=DEFAULT_BREAKDOWN_DAYS)
    return _breakdown_days(verb, args)


def _breakdown_days(verb: Verb, args: list[str]) -> Command:
    """`[days]` alone: a slash command's `days` option, the account being an option of its own."""
    if len(args) > 1:
        raise _fail(verb, "too many arguments")
    return Command(verb, days=_days(verb, args[0]) if args else DEFAULT_BREAKDOWN_DAYS)


def _account_likeness(token: str, accounts: Collection[str]) -> tuple[bool, bool]:
    return token in accounts, not _NUMBER.fullmatch(token)


def _days(verb: Verb, token: str) -> int:
    if not _NUMBER.fullmatch(token):
        raise _fail(verb, f"'{_shown(token)}' is not a number of days")
    if not (token.isdigit() and 1 <= int(token) <= MAX_BREAKDOWN_DAYS):
        raise _fail(verb, f"days must be a whole number from 1 to {MAX_BREAKDOWN_DAYS}, not {_shown(token)}")
    return int(token)


def _no_arguments(verb: Verb, args: list[str], accounts: Collection[str]) -> Command:
    if args:
        raise _fail(verb, "this command takes no arguments")
    return Command(verb)


def _snooze(verb: Verb, args: list[str], accounts: Collection[str]) -> Command:
    if len(args) != 2:
        raise _fail(verb, "give an account and a duration")
    return Command(verb, account=_account(verb, args[0], accounts), duration=parse_duration_word(verb, args[1]))


def _subscribe(verb: Verb, args: list[str], accounts: Collection[str]) -> Command:
    if len(args) > 2:
        raise _fail(verb, "too many arguments")
    at: time | None = None
    zone: str | None = None
    for token in args:
        match = _TIME_OF_DAY.match(token)
        if match and at is None:
            at = time(int(match.group(1)), int(match.group(2)))
            continue
        if zone is None and ("/" in token or token.upper() == "UTC"):
            if not known_timezone(token):
                raise _fail(verb, f"'{_shown(token)}' is not a known timezone")
            zone = token
            continue
        raise _fail(verb, f"'{_shown(token)}' is neither a time (HH:MM) nor a timezone")
    return Command(verb, at=at, timezone=zone)


def _threshold(verb: Verb, args: list[str], accounts: Collection[str]) -> Command:
    if len(args) not in (2, 3):
        raise _fail(verb, "give an account, a warning level and optionally a critical level")
    account = _account(verb, args[0], accounts)
    warn = _amount(verb, args[1], "warning level")
    critical = _amount(verb, args[2], "critical level") if len(args) == 3 else None
    if critical is not None and critical > warn:
        raise _fail(verb, "the critical level must not be above the warning level")
    return Command(verb, account=account, warn_below=warn, critical_below=critical)


def _topup(verb: Verb, args: list[str], accounts: Collection[str]) -> Command:
    if len(args) != 2:
        raise _fail(verb, "give an account and an amount")
    amount = _amount(verb, args[1], "amount")
    if amount == 0:
        raise _fail(verb, "amount must be more than zero")
    return Command(verb, account=_account(verb, args[0], accounts), amount=amount)


_PARSERS = {
    Verb.SHARE: _optional_account,
    Verb.CHART: _chart,
    Verb.BREAKDOWN: _breakdown,
    Verb.ALERTS: _no_arguments,
    Verb.SNOOZE: _snooze,
    Verb.SUBSCRIBE: _subscribe,
    Verb.UNSUBSCRIBE: _no_arguments,
    Verb.THRESHOLD: _threshold,
    Verb.TOPUP: _topup,
    Verb.HELP: _no_arguments,
}
