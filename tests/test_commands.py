"""The chat command language, as a table of inputs and outcomes."""

from __future__ import annotations

from datetime import time, timedelta
from decimal import Decimal

import pytest

from bot.commands import Command, CommandError, Verb, help_text, parse_command
from bot.config import RESERVED_NAMES

ACCOUNTS = {"openai-main", "ds"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Command(Verb.CREDITS)),
        ("/credits", Command(Verb.CREDITS)),
        ("credits ds", Command(Verb.CREDITS, account="ds")),
        ("ds", Command(Verb.CREDITS, account="ds")),
        ("share", Command(Verb.SHARE)),
        ("share openai-main", Command(Verb.SHARE, account="openai-main")),
        ("chart ds", Command(Verb.CHART, account="ds")),
        ("ALERTS", Command(Verb.ALERTS)),
        ("snooze ds 30m", Command(Verb.SNOOZE, account="ds", duration=timedelta(minutes=30))),
        ("snooze ds 7d", Command(Verb.SNOOZE, account="ds", duration=timedelta(days=7))),
        ("subscribe", Command(Verb.SUBSCRIBE)),
        ("subscribe 08:30 Europe/Paris", Command(Verb.SUBSCRIBE, at=time(8, 30), timezone="Europe/Paris")),
        ("subscribe America/New_York", Command(Verb.SUBSCRIBE, timezone="America/New_York")),
        ("unsubscribe", Command(Verb.UNSUBSCRIBE)),
        ("threshold ds 20", Command(Verb.THRESHOLD, account="ds", warn_below=Decimal(20))),
        (
            "threshold ds 20 5.5",
            Command(Verb.THRESHOLD, account="ds", warn_below=Decimal(20), critical_below=Decimal("5.5")),
        ),
        ("topup openai-main $50", Command(Verb.TOPUP, account="openai-main", amount=Decimal(50))),
        ("help", Command(Verb.HELP)),
    ],
)
def test_valid_commands(text: str, expected: Command) -> None:
    assert parse_command(text, ACCOUNTS) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("frobnicate", "unknown command or account 'frobnicate'"),
        ("snooze ds", "give an account and a duration"),
        ("snooze ds forever", "'forever' is not a duration"),
        ("snooze ds 100d", "at most 90 days"),
        ("snooze nope 1h", "unknown account 'nope'"),
        ("subscribe 25:00", "neither a time"),
        ("subscribe 09:00 Mars/Olympus", "not a known timezone"),
        ("threshold ds 5 20", "must not be above"),
        ("threshold ds -1", "must not be negative"),
        ("threshold ds lots", "is not a number"),
        ("topup ds 0", "more than zero"),
        ("alerts now", "takes no arguments"),
        ("share ds openai-main", "too many arguments"),
        ("credits credits", "is the command itself"),
    ],
)
def test_malformed_commands_get_usage(text: str, message: str) -> None:
    with pytest.raises(CommandError) as caught:
        parse_command(text, ACCOUNTS)
    assert message in str(caught.value)
    assert "Usage: credits" in str(caught.value) or "Commands:" in str(caught.value)


def test_echoed_input_is_neutralised() -> None:
    hostile = "<!channel>\u202e\x00" + "x" * 500
    with pytest.raises(CommandError) as caught:
        parse_command(hostile, ACCOUNTS)
    text = str(caught.value)
    assert "\u202e" not in text
    assert "\x00" not in text
    assert "x" * 100 not in text


def test_admin_verbs_and_reserved_names() -> None:
    assert parse_command("snooze ds 1h", ACCOUNTS).changes_settings
    assert not parse_command("share", ACCOUNTS).changes_settings
    assert {v.value for v in Verb} == RESERVED_NAMES
    assert all(v.value in help_text() for v in Verb)
