"""Core messages as Discord embeds (plain dicts), split to stay inside Discord's limits."""

from __future__ import annotations

import re
from typing import Any

from bot.messages import Message, Section
from bot.text import cut, printable

MAX_EMBEDS = 10
MAX_TOTAL = 6000
MAX_FIELDS = 25
MAX_TITLE = 256
MAX_DESCRIPTION = 4096
MAX_FIELD_NAME = 256
MAX_FIELD_VALUE = 1024
MAX_FOOTER = 2048
MAX_CONTENT = 2000
# Colour-blind-safe (Okabe-Ito) colours per status and severity.
COLOURS = {"critical": 0xD55E00, "warning": 0xE69F00, "error": 0xCC79A7, "ok": 0x009E73, "info": 0x0072B2}
_MENTION = re.compile(r"<@[!&]?\d+|@everyone|@here")
_HEADING = re.compile(r"(?m)^(\s*)(-?#)")


def neutralise(text: str) -> str:
    """Data shown in a message can never ping anyone, link or start markdown: control characters are
    dropped, markup (`*_`~|>`, masked links `[x](url)`, `<@1>`/`<#1>`/`<t:1>` syntax, headings) is
    escaped, and @everyone/@here are broken with a zero-width space."""
    text = printable(text).replace("\\", "\\\\")
    for char in "*_`~|<>[]":
        text = text.replace(char, f"\\{char}")
    text = _HEADING.sub(lambda m: f"{m.group(1)}\\{m.group(2)}", text)
    return _MENTION.sub(lambda m: m.group(0).replace("@", "@\u200b"), text)


def _plain(text: str, limit: int) -> str:
    # Our own wording (titles, labels, footers): no markup to escape, but never a control character.
    return cut(printable(text), limit)


def _size(embed: dict[str, Any]) -> int:
    total = len(embed.get("title", "")) + len(embed.get("description", ""))
    total += len(embed.get("footer", {}).get("text", ""))
    total += sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))
    return total


def section_embed(item: Section, footer: str) -> dict[str, Any]:
    """One account: title, headline, inline fields, colour by status."""
    fields = [f for f in item.fields if f.label not in ("Balance", "Spend")][:MAX_FIELDS]
    embed: dict[str, Any] = {
        "title": _plain(f"{item.account} ({item.provider})", MAX_TITLE),
        "description": cut(
            neutralise(item.headline) + (f"\n{neutralise(item.note)}" if item.note else ""), MAX_DESCRIPTION
        ),
        "color": COLOURS.get(item.status, COLOURS["info"]),
        "fields": [
            {
                "name": _plain(f.label, MAX_FIELD_NAME),
                "value": cut(neutralise(f.value) or "—", MAX_FIELD_VALUE),
                "inline": True,
            }
            for f in fields
        ],
    }
    if footer:
        embed["footer"] = {"text": _plain(footer, MAX_FOOTER)}
    while _size(embed) > MAX_TOTAL and embed["fields"]:
        embed["fields"].pop()  # the least important fields come last
    if _size(embed) > MAX_TOTAL:
        embed["description"] = cut(
            embed["description"], max(1, len(embed["description"]) - (_size(embed) - MAX_TOTAL))
        )
    return embed


def render(message: Message, *, chart_name: str | None = None) -> list[dict[str, Any]]:
    """`[{"content", "embeds"}, ...]`: the title (after any mentions) as the first message's content, the text
    and one embed per account split into messages within the limits, the footer once at the very end."""
    embeds: list[dict[str, Any]] = []
    colour = COLOURS.get(message.severity.value, COLOURS["info"])
    text = neutralise(message.text) if message.text else ""
    # The title is said once, in the content above the embeds (where notifications read it).
    chunks = [text[i : i + MAX_DESCRIPTION] for i in range(0, len(text), MAX_DESCRIPTION)]
    embeds += [{"description": chunk, "color": colour} for chunk in chunks]
    last = len(message.sections) - 1
    embeds += [
        section_embed(item, message.footer if index == last else "") for index, item in enumerate(message.sections)
    ]
    if not embeds and (message.footer or chart_name):
        embeds.append({"color": colour})  # somewhere to put the footer and the chart
    if not message.sections and message.footer:
        embeds[-1]["footer"] = {"text": _plain(message.footer, MAX_FOOTER)}
    if chart_name:
        embeds[-1]["image"] = {"url": f"attachment://{chart_name}"}
    pages: list[list[dict[str, Any]]] = [[]]
    for embed in embeds:
        page = pages[-1]
        if page and (len(page) >= MAX_EMBEDS or sum(map(_size, page)) + _size(embed) > MAX_TOTAL):
            pages.append([])
        pages[-1].append(embed)
    mentions = " ".join(m for m in map(mention, message.mentions) if m)
    title = f"**{neutralise(cut(printable(message.title), MAX_TITLE))}**"
    content = cut(f"{mentions} {title}" if mentions else title, MAX_CONTENT)
    return [{"content": content if index == 0 else "", "embeds": page} for index, page in enumerate(pages)]


_ROLE = re.compile(r"<@&(\d{1,20})>")
_USER = re.compile(r"<@!?(\d{1,20})>")


def mention(configured: str) -> str:
    """A channel's configured mention as Discord writes it: @here, @everyone, a role `<@&id>` or a user
    `<@id>`; anything else is shown as inert text (it cannot ping)."""
    text = configured.strip()
    if text.lower() in ("@here", "@everyone"):
        return text.lower()
    if _ROLE.fullmatch(text) or _USER.fullmatch(text):
        return text.replace("<@!", "<@")
    return neutralise(text)


def allowed_mentions_for(mentions: tuple[str, ...]) -> dict[str, Any]:
    """Exactly the configured mentions may ping: @here/@everyone, given roles and given users."""
    written = [mention(m) for m in mentions]
    return {
        "everyone": any(m in ("@here", "@everyone") for m in written),
        "roles": [match[1] for m in written if (match := _ROLE.fullmatch(m))],
        "users": [match[1] for m in written if (match := _USER.fullmatch(m))],
    }
