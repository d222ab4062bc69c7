"""Runs N loopback fake provider hosts in their own process (so the fakes do not share the benchmark's GIL).

The hosts answer with the same route functions as the test fake (`tests/fakes.py`), but on one asyncio
loop (aiohttp) rather than a thread per request, so that the fake itself is never what a benchmark
measures. Prints one base URL per line, serves until stdin closes, then prints the peak number of
requests each host had in flight at once (JSON list), so that per-host limits are checked where they matter.
"""

from __future__ import annotations

import asyncio
import json
import sys
from urllib.parse import parse_qs

from aiohttp import web

from tests.fakes import ROUTES, FakeProviders


def host_app(
    latency: float, peaks: list[int], index: int, deepseek_currency: str | None = None
) -> web.Application:
    """One fake provider host: `/<provider>/<path>` answered after `latency` seconds; DeepSeek lists only
    `deepseek_currency` when one is given (the test fake's default is one CNY balance)."""
    state = FakeProviders()
    if deepseek_currency:
        state.deepseek_infos = [
            {
                "currency": deepseek_currency,
                "total_balance": "110.00",
                "granted_balance": "0.00",
                "topped_up_balance": "110.00",
            }
        ]
    in_flight = 0

    async def answer(request: web.Request) -> web.Response:
        nonlocal in_flight
        in_flight += 1
        peaks[index] = max(peaks[index], in_flight)
        try:
            await asyncio.sleep(latency)
        finally:
            in_flight -= 1
        provider, _, rest = request.path.strip("/").partition("/")
        route = ROUTES.get(provider)
        if route is None:
            return web.json_response({"error": {"message": f"no fake for {provider}"}}, status=404)
        headers = {k.lower(): v for k, v in request.headers.items()}
        status, body, extra = route(state, "/" + rest, parse_qs(request.query_string), headers)
        return web.Response(status=status, body=json.dumps(body), content_type="application/json", headers=extra)

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", answer)
    return app


async def serve(count: int, latency: float, deepseek_currency: str | None = None) -> None:
    """Start the hosts, print their URLs, and stop when stdin closes."""
    runners = []
    peaks = [0] * count
    for index in range(count):
        runner = web.AppRunner(host_app(latency, peaks, index, deepseek_currency), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        print(f"http://127.0.0.1:{port}", flush=True)
    await asyncio.to_thread(sys.stdin.read)
    for runner in runners:
        await runner.cleanup()
    print(json.dumps(peaks), flush=True)


def main() -> None:
    """Entry point: `python -m bench.fake_hosts COUNT LATENCY [DEEPSEEK_CURRENCY]`."""
    asyncio.run(serve(int(sys.argv[1]), float(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None))


if __name__ == "__main__":
    main()
