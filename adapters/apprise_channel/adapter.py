"""The `apprise` adapter: each `[[channels]]` table of the platform is one Apprise URL, checked when the adapter
is built; a message is one `notify()` call, run in a thread (Apprise's I/O blocks) under a time limit."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import apprise

from adapters.apprise_channel.render import markdown_body, notify_type, plain_body, title
from adapters.apprise_channel.urls import guard_logs
from bot.adapter import AdapterConfigError, BaseAdapter, DeliveryError
from bot.channels import Channel
from bot.messages import Message
from bot.text import safe_file_name

SEND_TIMEOUT = 60.0  # seconds for one notification; Apprise's own connect and read timeouts are 4 s each
# Services whose body Apprise takes (or converts from) Markdown; the rest show text as it is.
RICH_FORMATS = (apprise.NotifyFormat.MARKDOWN, apprise.NotifyFormat.HTML)


@dataclass(frozen=True)
class Target:
    """One channel's Apprise service."""

    label: str  # "apprise channel <id>": what errors say, never the URL
    service: apprise.Apprise
    markdown: bool  # the service shows Markdown, or HTML converted from it
    attachments: bool


def target(channel: Channel) -> Target:
    """The channel's URL as an Apprise service, or AdapterConfigError naming the channel (not the URL)."""
    label = f"apprise channel {channel.id}"
    url = channel.url.get_secret_value().strip() if channel.url is not None else ""
    if not url:
        raise AdapterConfigError(f"{label}: url is required (an Apprise URL such as json://host/path)")
    service = apprise.Apprise(asset=apprise.AppriseAsset(storage_mode="memory"))
    if not service.add(url):
        raise AdapterConfigError(
            f"{label}: url is not one Apprise can use (an unknown scheme, or a part its service needs is "
            "missing or malformed); see Apprise's list of services"
        )
    if len(service) != 1:
        raise AdapterConfigError(f"{label}: url must be one Apprise URL, not {len(service)}: use one channel each")
    plugin = service[0]
    return Target(label, service, plugin.notify_format in RICH_FORMATS, bool(plugin.attachment_support))


class AppriseAdapter(BaseAdapter):
    """The `apprise` platform: delivery only, to the URL of each channel."""

    platform = "apprise"

    def __init__(self, channels: Sequence[Channel], *, timeout: float = SEND_TIMEOUT) -> None:
        super().__init__()
        chosen = [c for c in channels if c.platform == self.platform]
        # Before the first URL is parsed: Apprise logs one it cannot parse in full.
        guard_logs(c.url.get_secret_value() for c in chosen if c.url is not None)
        self.targets = {channel.id: target(channel) for channel in chosen}
        self.timeout = timeout

    async def send(self, channel_id: str, message: Message, *, key: str | None = None) -> None:
        """One notification; a refusal, an error or no answer in time is a DeliveryError the outbox retries."""
        found = self.targets.get(channel_id)
        if found is None:
            raise DeliveryError(f"apprise channel {channel_id} is not configured", permanent=True)
        try:
            async with asyncio.timeout(self.timeout):
                delivered = await asyncio.to_thread(_notify, found, message)
        except TimeoutError:
            raise DeliveryError(f"{found.label}: no answer within {self.timeout:g} s") from None
        except Exception as exc:  # its text may quote the URL: the type alone
            raise DeliveryError(f"{found.label}: sending failed ({type(exc).__name__})") from None
        if not delivered:
            raise DeliveryError(
                f"{found.label}: the service did not accept the notification (see Apprise's warning)"
            )


def _notify(found: Target, message: Message) -> bool:
    """Send in this (worker) thread; the chart's temporary file is removed here, after Apprise is done with it
    (also when the caller stopped waiting)."""
    body = markdown_body(message) if found.markdown else plain_body(message)
    body_format = apprise.NotifyFormat.MARKDOWN if found.markdown else apprise.NotifyFormat.TEXT
    kind = apprise.NotifyType(notify_type(message))
    with tempfile.TemporaryDirectory(prefix="creditbot-apprise-") as folder:
        attach = None
        if message.chart and found.attachments:
            name = safe_file_name(message.chart_name)
            path = Path(folder) / (name if name.lower().endswith(".png") else f"{name}.png")
            path.write_bytes(message.chart)
            attach = apprise.AppriseAttachment(str(path))
        result = found.service.notify(
            body=body, title=title(message), notify_type=kind, body_format=body_format, attach=attach
        )
    return bool(result)
