"""The runtime's HTTP listener (aiohttp): `GET /healthz` now, Slack's HTTP mode and metrics later."""

from __future__ import annotations

from typing import Any


async def start_http(port: int, host: str = "0.0.0.0") -> Any:  # noqa: S104 - a service listens on all interfaces
    """Serve the health endpoint; returns the aiohttp AppRunner to clean up on stop."""
    from aiohttp import web

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner
