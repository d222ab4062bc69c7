"""The runtime's HTTP listener (aiohttp): `GET /healthz`, plus routes that adapters add (Slack's HTTP mode)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web

Route = tuple[str, str, "Callable[[web.Request], Awaitable[web.StreamResponse]]"]
MAX_BODY = 256 * 1024  # Slack payloads are small; anything larger is refused with 413


async def start_http(port: int, routes: Sequence[Route] = (), host: str = "0.0.0.0") -> Any:  # noqa: S104
    """Serve /healthz and the given routes; returns the aiohttp AppRunner to clean up on stop."""
    from aiohttp import web

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_get("/healthz", healthz)
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner
