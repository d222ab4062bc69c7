"""The one Retry-After parser, and the Slack pacing policy on top of it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.slack.pacing import RETRY_AFTER_CAP, retry_after_seconds
from bot.retry_after import parse_retry_after

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7", 7.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("Wed, 25 Nov 2026 09:00:30 GMT", 30.0),
        ("Wed, 25 Nov 2026 08:59:00 GMT", 0.0),
        ("Tue, 24 Nov 2026 09:00:00 +0000", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("Wed, 25 Nov 99999 09:00:30 GMT", None),
        ("nan", None),
        ("inf", None),
        ("-inf", None),
        ("1e400", None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


def test_parse_retry_after_without_now_uses_the_clock() -> None:
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT") == 0.0
    future = parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT")
    assert future is not None
    assert future > 0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        (None, 1.0),
        ("", 1.0),
        ("soon", 1.0),
        ("nan", 1.0),
        ("inf", 1.0),
        ("-2", 0.0),
        ("99999", 3600.0),
    ],
)
def test_slack_pacing_reads_retry_after_with_its_own_defaults(value: str | None, seconds: float) -> None:
    assert retry_after_seconds(value) == seconds
    assert retry_after_seconds(value) <= RETRY_AFTER_CAP
