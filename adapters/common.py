"""What the chat adapters share: resuming a multi-part send by its outbox key, the guard that serves a request
only once started and allowed, and the back-off between attempts to reach a platform."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence

from bot.adapter import BaseAdapter
from bot.handler import CommandHandler

Step = tuple[str, Callable[[], Awaitable[object]]]


def backoff(attempt: int, delays: Sequence[float]) -> float:
    """The wait before retry number `attempt` (0 first) to reach a platform: the delays in turn, then the last
    one again, with a little jitter so that replicas do not all come back at the same moment."""
    return delays[min(attempt, len(delays) - 1)] * random.uniform(1.0, 1.1)  # noqa: S311 - jitter, not a secret


class SendProgress:
    """The parts of each message already posted, by outbox key: a retry of the same delivery resumes where the
    failed attempt stopped, so pages and charts already in the channel are not posted again."""

    def __init__(self) -> None:
        self._done: dict[str, set[str]] = {}

    async def run(self, key: str | None, steps: Sequence[Step]) -> None:
        """Run each named step not done yet for this key; forget the key once all are done."""
        done = self._done.setdefault(key, set()) if key else set()
        for name, step in steps:
            if name in done:
                continue
            await step()
            done.add(name)
        if key:
            self._done.pop(key, None)


class ChatAdapter(BaseAdapter):
    """A platform people type commands on: the port's defaults plus resumable sends and the refusal guard."""

    def __init__(self) -> None:
        super().__init__()
        self.progress = SendProgress()

    def serving(self, allowed: bool) -> CommandHandler | None:
        """The handler, when a request may be served: the adapter is started and the requester allowed."""
        return self.handler if allowed else None
