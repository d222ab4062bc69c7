"""The errors of a fetch, each safe to show to a person, and how network failures are worded."""

from __future__ import annotations

import socket
from typing import ClassVar
from urllib.parse import urlsplit

import httpx

from bot.models import ErrorKind

__all__ = [
    "AuthError",
    "BadResponseError",
    "ProviderError",
    "RateLimitedError",
    "UnavailableError",
    "transport_error",
]


class ProviderError(Exception):
    """A fetch failed; the message is safe to show to a person (no secrets)."""

    kind: ClassVar[ErrorKind] = ErrorKind.BAD_RESPONSE

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class AuthError(ProviderError):
    """The key was refused (401/403) or lacks a permission; retrying will not help."""

    kind = ErrorKind.AUTH


class RateLimitedError(ProviderError):
    """The provider kept answering 429."""

    kind = ErrorKind.RATE_LIMITED


class UnavailableError(ProviderError):
    """Network trouble, a timeout or a 5xx."""

    kind = ErrorKind.UNAVAILABLE


class BadResponseError(ProviderError):
    """An answer that cannot be read as the expected data, or an error inside a 200."""

    kind = ErrorKind.BAD_RESPONSE


# How resolvers word a name that does not exist (glibc, musl, macOS), for when only the text is left.
_DNS_WORDS = ("name or service not known", "nodename nor servname", "name resolution", "no address associated")


def transport_error(exc: httpx.TransportError, provider: str, url: str) -> UnavailableError:
    """What went wrong on the network, naming the host: a name that does not resolve, a refused connection
    and a timeout call for different fixes (the base_url, the service or proxy, the network)."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1] or provider
    if isinstance(exc, httpx.ConnectTimeout):
        return UnavailableError(f"could not reach {provider}: {host} did not accept a connection in time")
    if isinstance(exc, httpx.TimeoutException):
        return UnavailableError(f"{provider} did not answer in time ({host})")
    if isinstance(exc, httpx.ConnectError):
        causes = _causes(exc)
        text = " ".join(str(cause).lower() for cause in causes)
        if any(isinstance(c, socket.gaierror) for c in causes) or any(w in text for w in _DNS_WORDS):
            reason = f"the host name {parts.hostname} does not resolve (DNS); check base_url and the network"
        elif any(isinstance(c, ConnectionRefusedError) for c in causes) or "refused" in text:
            reason = f"{host} refused the connection; is the service (or proxy) at that address running?"
        else:
            reason = f"could not connect to {host}"
        return UnavailableError(f"could not reach {provider}: {reason}")
    if isinstance(exc, httpx.RemoteProtocolError):
        return UnavailableError(f"could not reach {provider}: the connection to {host} broke off mid-answer")
    return UnavailableError(f"could not reach {provider}: {type(exc).__name__} talking to {host}")


def _causes(exc: BaseException) -> list[BaseException]:
    # httpx wraps httpcore, which wraps the OS error (anyio adds one more layer when it tried several addresses).
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain
