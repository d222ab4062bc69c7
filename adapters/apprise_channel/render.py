"""A core message as an Apprise notification: title, body (Markdown or plain text) and notification type.
Pure: no Apprise import, so it is cheap to test."""

from __future__ import annotations

import re

from bot.messages import Message, Section
from bot.models import Severity
from bot.text import cut, printable

MAX_TITLE = 250  # Apprise's default title limit; services with less cut again themselves
# Apprise's NotifyType values: info, success, warning, failure.
TYPES = {Severity.INFO: "info", Severity.WARNING: "warning", Severity.CRITICAL: "failure"}
# The fields every section's headline already says.
_SAID = ("Balance", "Spend", "Status")
_MARKUP = re.compile(r"([\\`*_\[\]#|~!])")
_BULLET = re.compile(r"(?m)^(\s*)([-+])(\s)")
_NUMBERED = re.compile(r"(?m)^(\s*)(\d+)\.(\s)")


def notify_type(message: Message) -> str:
    """The Apprise notification type: a recovery is a success, otherwise the severity (critical: failure)."""
    return "success" if message.kind == "recovery" else TYPES.get(message.severity, "info")


def title(message: Message) -> str:
    """The title, one printable line."""
    return cut(" ".join(printable(message.title).split()), MAX_TITLE)


def escape(text: str) -> str:
    """Data as Markdown that says exactly what it says: no emphasis, link, heading, list or HTML (services
    that take HTML, like e-mail, get it converted from Markdown, where a raw tag would pass through)."""
    text = printable(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MARKUP.sub(r"\\\1", text)
    text = _BULLET.sub(r"\1\\\2\3", text)
    return _NUMBERED.sub(r"\1\2\\.\3", text)


def markdown_body(message: Message) -> str:
    """The body in Markdown: mentions first, then the text, one paragraph and list per account, the footer."""
    blocks = [" ".join(message.mentions)] if message.mentions else []
    if message.text:
        blocks.append(escape(message.text))
    for item in message.sections:
        blocks.append(f"**{escape(item.account)}** ({escape(item.provider)}): {escape(item.headline)}")
        details = [f"- {escape(f.label)}: {escape(f.value)}" for f in item.fields if f.label not in _SAID]
        details.append(f"- Status: {escape(_status(item))}")
        blocks.append("\n".join(details))
        if item.note:
            blocks.append(f"*{escape(item.note)}*")
    if message.footer:
        blocks.append(f"*{escape(message.footer)}*")
    return "\n\n".join(blocks) or escape(message.summary or message.title)


def plain_body(message: Message) -> str:
    """The body as plain text, for services that show text alone (JSON and form webhooks, ntfy, SMS...)."""
    lines = [" ".join(message.mentions)] if message.mentions else []
    if message.text:
        lines.append(message.text)
    for item in message.sections:
        lines.append(f"{item.account} ({item.provider}): {item.headline} [{_status(item)}]")
        details = [f"{f.label}: {f.value}" for f in item.fields if f.label not in _SAID]
        if details:
            lines.append("  " + " · ".join(details))
        if item.note:
            lines.append(f"  {item.note}")
    if message.footer:
        lines.append(message.footer)
    return printable("\n".join(lines) or message.summary or message.title)


def _status(item: Section) -> str:
    # The Status field says "(stale)" when it is.
    return next((f.value for f in item.fields if f.label == "Status"), item.status)
