"""The `webhook` platform: push-only delivery of each message as a signed JSON POST.

The body is the platform-neutral message (`docs/webhook-message.schema.json`), serialized deterministically
so that every attempt of one outbox row sends the same bytes. Each attempt is signed afresh:
`X-Creditbot-Timestamp` (Unix seconds) and `X-Creditbot-Signature: v1=<hex HMAC-SHA256 of
"<timestamp>.<body>" keyed with the channel's secret>`. A 2xx answer is a delivery; 408, 429 and 5xx answers
and network failures are retried by the outbox (honouring Retry-After); any other answer is permanent.

A channel's url is a secret too (it often carries a token): errors name the channel ("webhook pager"),
never its url or secret."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bot import __version__
from bot.adapter import AdapterConfigError, BaseAdapter, DeliveryError
from bot.channels import Channel
from bot.messages import Message
from bot.retry_after import parse_retry_after

__all__ = [
    "BODY_VERSION",
    "KINDS",
    "USER_AGENT",
    "WebhookAdapter",
    "body_bytes",
    "message_body",
    "signature",
    "webhook_adapter",
]

BODY_VERSION = 1
KINDS = ("summary", "alert", "recovery", "test")
USER_AGENT = f"creditbot/{__version__}"
TIMEOUT_SECONDS = 10.0  # a whole attempt: connect, send, answer
CONNECT_SECONDS = 5.0
LONGEST_RETRY_AFTER = 86400.0  # a receiver's Retry-After is honoured up to a day (a longer one is read as a day)
RETRYABLE = frozenset({408, 429})  # besides every 5xx


@dataclass(frozen=True)
class Endpoint:
    """Where one webhook channel delivers and the key its bodies are signed with."""

    url: str
    secret: bytes


def message_body(message: Message, key: str | None) -> dict[str, Any]:
    """The message in its platform-neutral JSON form (version 1 of `docs/webhook-message.schema.json`)."""
    return {
        "version": BODY_VERSION,
        "kind": message_kind(message, key),
        "severity": message.severity.value,
        "title": message.title,
        "summary": message.summary,
        "text": message.text,
        "footer": message.footer,
        "sections": [
            {
                "account": s.account,
                "provider": s.provider,
                "status": s.status,
                "headline": s.headline,
                "fields": [{"label": f.label, "value": f.value} for f in s.fields],
                "note": s.note,
                "values": s.values,
            }
            for s in message.sections
        ],
        "mentions": list(message.mentions),
        "as_of": message.as_of,
        "key": key,
        "has_chart": message.chart is not None,
    }


def message_kind(message: Message, key: str | None) -> str:
    """The message's kind; one queued before messages carried it is read from its outbox key (`summary:`,
    `test:`, `alert:`: a recovery when only informational), and anything else is an alert."""
    if message.kind in KINDS:
        return message.kind
    prefix = (key or "").split(":", 1)[0]
    if prefix in ("summary", "test"):
        return prefix
    if prefix == "alert" and message.severity.value == "info":
        return "recovery"
    return "alert"


def body_bytes(message: Message, key: str | None) -> bytes:
    """The POST body: sorted keys, no spaces, UTF-8; the same message and key always give the same bytes."""
    body = message_body(message, key)
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The `X-Creditbot-Signature` value: `v1=` and the hex HMAC-SHA256 of `<timestamp>.<body>`."""
    return "v1=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def check_url(channel_id: str, url: str) -> str:
    """The url when it is an http(s) address with a host, else an AdapterConfigError naming the channel (the
    url itself is not quoted: it may hold a token)."""
    problem = f"channel webhook:{channel_id}: url: must be an http:// or https:// address with a host"
    try:
        parts = urlsplit(url)
        _port = parts.port  # an unreadable port raises here rather than at the first send
    except ValueError:
        raise AdapterConfigError(problem) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        raise AdapterConfigError(problem)
    return url


def webhook_adapter(channels: Iterable[Channel], **options: Any) -> WebhookAdapter | None:
    """The adapter of the webhook channels among `channels`, or None when there is none."""
    mine = [channel for channel in channels if channel.platform == WebhookAdapter.platform]
    return WebhookAdapter.for_channels(mine, **options) if mine else None


class WebhookAdapter(BaseAdapter):
    """Posts every message to its channel's url as signed JSON; the outbox retries what fails."""

    platform = "webhook"

    def __init__(
        self,
        endpoints: Mapping[str, Endpoint],
        *,
        timeout: float = TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.endpoints = dict(endpoints)
        self.timeout = timeout
        self.clock = clock  # Unix time for the signature's timestamp
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def for_channels(cls, channels: Iterable[Channel], **options: Any) -> WebhookAdapter:
        """The adapter for the `[[channels]]` tables of platform webhook; an AdapterConfigError when a url is
        not an http(s) address or a secret is empty."""
        endpoints = {}
        for channel in channels:
            if channel.platform != cls.platform:
                continue
            if channel.url is None or channel.secret is None:
                raise AdapterConfigError(f"channel webhook:{channel.id}: url and secret are required")
            secret = channel.secret.get_secret_value()
            if not secret:
                raise AdapterConfigError(f"channel webhook:{channel.id}: secret: is empty")
            url = check_url(channel.id, channel.url.get_secret_value())
            endpoints[channel.id] = Endpoint(url, secret.encode())
        return cls(endpoints, **options)

    async def send(self, channel_id: str, message: Message, *, key: str | None = None) -> None:
        """POST the message once, signed now; a DeliveryError for anything but a 2xx answer."""
        name = f"webhook {channel_id}"
        endpoint = self.endpoints.get(channel_id)
        if endpoint is None:
            raise DeliveryError(f"{name} has no url: no [[channels]] table configures it", permanent=True)
        try:
            body = body_bytes(message, key)
        except ValueError:  # a NaN or infinity among the values: not JSON
            raise DeliveryError(f"{name}: the message is not valid JSON", permanent=True) from None
        timestamp = str(int(self.clock()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Creditbot-Timestamp": timestamp,
            "X-Creditbot-Signature": signature(endpoint.secret, timestamp, body),
        }
        try:
            # Redirects are not followed: the signed body goes where it was configured to, or nowhere.
            async with self._client().post(
                endpoint.url, data=body, headers=headers, allow_redirects=False
            ) as answer:
                status, retry_after = answer.status, answer.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            # The exception's text may quote the url: only its type is said.
            raise DeliveryError(f"{name} is unreachable: {type(exc).__name__}") from None
        if 200 <= status < 300:
            return
        if status in RETRYABLE or status >= 500:
            wait = parse_retry_after(retry_after)
            raise DeliveryError(
                f"{name} answered {status}",
                retry_after=None if wait is None else min(max(1.0, wait), LONGEST_RETRY_AFTER),
            )
        hint = " (redirects are not followed: configure the final url)" if 300 <= status < 400 else ""
        raise DeliveryError(f"{name} answered {status}{hint}", permanent=True)

    async def stop(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use: a session belongs to the event loop it was made in.
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=self.timeout, connect=CONNECT_SECONDS)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session
