"""Runs the loopback fake Slack Web API with Slack's pacing in its own process (away from the benchmark's GIL).

Arguments: seconds between messages per channel, Web API calls per second in all (0: no limit). Prints the
API base URL, then serves until stdin closes; `GET /_stats` reports messages accepted per channel and 429s
answered, `GET /_arrival/<name>` when the post to `/webhook/<name>` arrived (time.monotonic, system-wide).
"""

from __future__ import annotations

import sys

from tests.fake_slack import FakeSlack


def main() -> None:
    """Start the fake, print its API URL, and stop when stdin closes."""
    slack = FakeSlack().__enter__()
    slack.state.channel_interval = float(sys.argv[1]) or None
    slack.state.workspace_per_second = int(sys.argv[2]) or None
    print(slack.api_url, flush=True)
    sys.stdin.read()
    slack.__exit__(None, None, None)


if __name__ == "__main__":
    main()
