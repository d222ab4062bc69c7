"""The HTTP client every provider request goes through, sized to the configured concurrency."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from bot import __version__

if TYPE_CHECKING:
    from bot.config import Settings

USER_AGENT = f"creditbot/{__version__} (+https://github.com/creditbot/creditbot)"


def provider_client(settings: Settings) -> httpx.AsyncClient:
    """An AsyncClient with the fetch timeout, our User-Agent, and room to keep alive a connection per request
    slot of every host (httpx keeps 20 by default, so a poll across many hosts would keep reconnecting)."""
    timeout = httpx.Timeout(settings.fetch_timeout.total_seconds(), connect=5.0)
    # The monitor's semaphores bound what is in flight; the pool only has to keep those connections.
    connections = settings.concurrency * settings.per_host_concurrency
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(timeout=timeout, limits=limits, headers={"User-Agent": USER_AGENT})
