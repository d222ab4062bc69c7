"""The port that chat adapters implement (Discord, Slack, console); the core only sees this."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from bot.messages import Message

if TYPE_CHECKING:
    from bot.handler import CommandHandler


class DeliveryError(Exception):
    """A message could not be delivered; `retry_after` says when the platform wants us back."""

    def __init__(self, message: str, *, retry_after: float | None = None, permanent: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent  # e.g. unknown channel: retrying will not help


class Adapter(Protocol):
    """A chat platform: receives commands, renders and sends core messages."""

    platform: str

    async def start(self, handler: CommandHandler) -> None:
        """Connect and start forwarding commands to the handler."""
        ...

    async def stop(self) -> None:
        """Disconnect, letting in-flight sends finish."""
        ...

    async def send(self, channel_id: str, message: Message, *, key: str | None = None) -> None:
        """Deliver a message to a channel or raise DeliveryError; a retry with the same `key` resumes where
        the failed attempt stopped (pages and chart already posted are not posted again)."""
        ...

    def connected(self) -> bool:
        """True while the adapter can deliver."""
        ...
