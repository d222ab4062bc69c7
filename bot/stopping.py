"""Stopping `creditbot run` on a signal whatever it is doing: start-up is abandoned rather than awaited, and a
watchdog ends the process if stopping takes longer than CREDITBOT_STOP_GRACE_SECONDS plus a few seconds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("bot")

# The runtime's own stop keeps to the grace (plus a couple of seconds per cut-short step); this is the backstop.
WATCHDOG_MARGIN = 4.5


def on_signal(stop: asyncio.Event, grace: float) -> None:
    """SIGINT/SIGTERM: set `stop`, and make sure the process ends within `grace` plus a few seconds even if
    stopping hangs; a second signal ends it at once."""
    if stop.is_set():  # the operator does not want to wait
        exit_now("stopping at once (second signal)")
    stop.set()
    # A thread, not the event loop: it fires even if something blocks the loop or ignores cancellation.
    late = ("stopping took too long; exiting without waiting",)
    watchdog = threading.Timer(grace + WATCHDOG_MARGIN, exit_now, late)
    watchdog.daemon = True
    watchdog.start()


def exit_now(reason: str) -> None:
    """Log why, flush, and end the process with status 1 (no clean-up can be waited for any more)."""
    log.error("%s", reason)
    logging.shutdown()
    sys.stdout.flush()
    os._exit(1)


async def unless_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Run `work` unless `stop` is set first (then cancel it); True when it finished. Its failure, if it
    finished by failing, is raised."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if not task.done():
        task.cancel()
        # Stopping: how start-up ended no longer matters.
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        return False
    task.result()
    return True
