"""Runs N loopback fake provider hosts in their own process (so the fakes do not share the benchmark's GIL).

Prints one base URL per line, then serves until stdin closes.
"""

from __future__ import annotations

import sys

from tests.fakes import FakeProviders, FakeProviderServer


def main() -> None:
    """Start the hosts, print their URLs, and stop when stdin closes."""
    count, latency = int(sys.argv[1]), float(sys.argv[2])
    servers = [FakeProviderServer(FakeProviders(latency=latency)).__enter__() for _ in range(count)]
    for server in servers:
        print(server.url, flush=True)
    sys.stdin.read()
    for server in servers:
        server.__exit__(None, None, None)


if __name__ == "__main__":
    main()
