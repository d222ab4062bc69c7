"""The port that every delivery and chat adapter implements (console, Slack, Discord, ...); the core sees
only this."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol

from bot.messages import Message
from bot.web import Route

if TYPE_CHECKING:
    from bot.handler import CommandHandler

__all__ = ["Adapter", "AdapterConfigError", "AdapterUnavailable", "BaseAdapter", "DeliveryError", "Route"]


class DeliveryError(Exception):
    """A message could not be delivered; `retry_after` says when the platform wants us back."""

    def __init__(self, message: str, *, retry_after: float | None = None, permanent: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent  # e.g. unknown channel: retrying will not help


class AdapterConfigError(ValueError):
    """An adapter's settings cannot work (a missing secret, a mode that needs the listener); the message names
    the setting to fix."""


class AdapterUnavailable(Exception):
    """An adapter could not start; the message says why. The rest of the bot keeps running without it."""


class Adapter(Protocol):
    """A platform: receives commands (chat platforms), renders and sends core messages."""

    @property
    def platform(self) -> str:
        """The name `[[channels]]` tables use."""
        ...

    @property
    def leader_only(self) -> bool:
        """True when only the leading replica may run it (e.g. a gateway that allows one session)."""
        ...

    def http_routes(self) -> list[Route]:
        """Routes this adapter serves on the bot's HTTP listener (empty for most)."""
        ...

    async def start(self, handler: CommandHandler) -> None:
        """Connect and start forwarding commands to the handler; AdapterUnavailable when it cannot."""
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


class BaseAdapter:
    """Defaults for the port: no routes, runs on every replica, nothing to connect; subclasses set
    `platform` and implement `send`."""

    platform: ClassVar[str] = ""
    leader_only: ClassVar[bool] = False

    def __init__(self) -> None:
        self.handler: CommandHandler | None = None  # set by `start`: commands are served once it is

    def http_routes(self) -> list[Route]:
        """No routes."""
        return []

    async def start(self, handler: CommandHandler) -> None:
        """Remember the handler."""
        self.handler = handler

    async def stop(self) -> None:
        """Nothing to disconnect."""

    async def send(self, channel_id: str, message: Message, *, key: str | None = None) -> None:
        """Deliver a message (subclasses implement this)."""
        raise NotImplementedError

    def connected(self) -> bool:
        """Always able to deliver."""
        return True
