"""The `apprise` platform: push-only delivery to any of the services Apprise reaches by URL (Teams workflows,
Telegram, e-mail, ntfy, JSON and form webhooks, ...). `adapter.py` sends, `render.py` writes the body
(Markdown or plain text, no Apprise needed), `urls.py` checks, describes and keeps secret the channel URLs.

Nothing here is imported unless a `[[channels]]` table uses the platform: Apprise loads its 150-odd plugins on
first use, which `creditbot --help` and bots without such a channel never pay for."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from bot.channels import Channel

if TYPE_CHECKING:
    from adapters.apprise_channel.adapter import AppriseAdapter


def apprise_adapter(channels: Iterable[Channel]) -> AppriseAdapter | None:
    """The adapter of the apprise channels among `channels`, or None (and no Apprise import) when there is
    none."""
    mine = [channel for channel in channels if channel.platform == "apprise"]
    if not mine:
        return None
    for name in ("apprise", "urllib3"):  # before Apprise is imported: it logs as it loads (see urls.guard_logs)
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.level, logging.WARNING))
    from adapters.apprise_channel.adapter import AppriseAdapter

    return AppriseAdapter(mine)
