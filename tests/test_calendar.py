"""Days are calendar days in the channel's zone: a summary's last due time across DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from bot.channels import Channel


@pytest.mark.parametrize(
    ("zone", "at", "now_utc", "expected_utc"),
    [
        # London springs forward on 30 March 2025 at 01:00 UTC. Restarted at 00:15 BST on the 31st, the last
        # 00:30 summary was the 30th's (00:30 GMT), not the 29th's.
        ("Europe/London", time(0, 30), "2025-03-30T23:15", "2025-03-30T00:30"),
        # London falls back on 26 October 2025 at 01:00 UTC. At 23:30 GMT that day, the last 23:50 summary was
        # the 25th's (22:50 UTC); the 26th's is still ahead.
        ("Europe/London", time(23, 50), "2025-10-26T23:30", "2025-10-25T22:50"),
        # New York, 9 March 2025 (spring forward at 07:00 UTC): at 00:02 EDT on the 10th, the last 00:05 summary
        # was the 9th's (00:05 EST).
        ("America/New_York", time(0, 5), "2025-03-10T04:02", "2025-03-09T05:05"),
        # Lord Howe moves by half an hour (6 April 2025, 02:00 local +11 -> 01:30 +10:30).
        ("Australia/Lord_Howe", time(0, 15), "2025-04-06T13:40", "2025-04-05T13:15"),
        # An ordinary day: today's summary is past.
        ("Europe/Paris", time(9, 0), "2025-06-02T08:00", "2025-06-02T07:00"),
    ],
)
def test_last_due_counts_local_calendar_days(zone: str, at: time, now_utc: str, expected_utc: str) -> None:
    channel = Channel("console", "c", daily_summary=at, timezone=zone)
    now = datetime.fromisoformat(now_utc).replace(tzinfo=UTC)
    due = channel.last_due(now)
    assert due is not None
    assert due <= now
    assert due == datetime.fromisoformat(expected_utc).replace(tzinfo=UTC)
