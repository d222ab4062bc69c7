"""A message as plain text, for the console and the CLI."""

from __future__ import annotations

from bot.messages import Message
from bot.models import Severity
from bot.text import printable


def render_text(message: Message) -> str:
    """Plain text rendering, for the console and the CLI."""
    lines = []
    if message.mentions:
        lines.append(" ".join(message.mentions))
    marker = {Severity.CRITICAL: "[CRITICAL] ", Severity.WARNING: "[WARNING] "}.get(message.severity, "")
    lines.append(f"{marker}{message.title}")
    lines.append("=" * len(lines[-1]))
    if message.text:
        lines.append(message.text)
    for item in message.sections:
        lines.append(f"{item.account} ({item.provider}): {item.headline} [{item.status}]")
        details = [f"{f.label}: {f.value}" for f in item.fields if f.label not in ("Balance", "Spend", "Status")]
        if details:
            lines.append("  " + " · ".join(details))
        if item.note:
            lines.append(f"  {item.note}")
    if message.footer:
        lines.append(message.footer)
    # The console is a terminal: no escape sequence or bidi override from data may reach it.
    return printable("\n".join(lines))
