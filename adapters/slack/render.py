"""Core messages as Block Kit payloads, split to stay inside Slack's limits (never a rejected payload)."""

from __future__ import annotations

import re
from typing import Any

from bot.messages import Action, Message, Section
from bot.text import cut, printable

MAX_BLOCKS = 50
MAX_HOME_BLOCKS = 100
MAX_TEXT = 3000
MAX_FIELD = 2000
MAX_FIELDS = 10
MAX_HEADER = 150
MAX_FALLBACK = 3000
STATUS_EMOJI = {
    "ok": ":large_green_circle:",
    "warning": ":large_yellow_circle:",
    "critical": ":red_circle:",
    "error": ":warning:",
}
SEVERITY_EMOJI = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":information_source:"}
# Plain-text broadcast words that Slack's automatic parsing may turn into mentions.
_BROADCAST = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)


def escape(text: str) -> str:
    """Data made inert for mrkdwn: Slack's three control characters escaped (no `<!channel>`, `<@U1>` or
    `<http://x|link>`), a word joiner after the @ of @channel/@here/@everyone, and no control characters."""
    text = printable(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _BROADCAST.sub("@\u2060\\1", text)


def _mrkdwn(text: str) -> dict[str, Any]:
    # verbatim: Slack adds no links or mentions of its own to text that is already escaped.
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": cut(printable(text), limit), "emoji": True}


def _chunks(text: str, limit: int = MAX_TEXT) -> list[str]:
    lines, chunks, current = text.splitlines() or [""], [], ""
    for line in lines:
        line = cut(line, limit)
        if current and len(current) + 1 + len(line) > limit:
            chunks.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    chunks.append(current)
    return chunks


def section_blocks(item: Section) -> list[dict[str, Any]]:
    """A section for one account: headline, up to ten fields, and its note."""
    emoji = STATUS_EMOJI.get(item.status, "")
    title = f"{emoji} *{escape(item.account)}* ({escape(item.provider)}) · {escape(item.status)}"
    text = f"{title}\n{escape(item.headline)}"
    fields = [f for f in item.fields if f.label not in ("Balance", "Spend", "Status")][:MAX_FIELDS]
    block: dict[str, Any] = {"type": "section", "text": _mrkdwn(cut(text, MAX_TEXT))}
    if fields:
        block["fields"] = [_mrkdwn(cut(f"*{escape(f.label)}*\n{escape(f.value)}", MAX_FIELD)) for f in fields]
    blocks = [block]
    if item.note:
        blocks.append({"type": "context", "elements": [_mrkdwn(cut(escape(item.note), MAX_TEXT))]})
    return blocks


def action_value(action: Action) -> str:
    """The button value that carries an action's account and duration."""
    return f"{action.account or ''}|{action.duration or ''}"


def parse_action_value(value: str) -> tuple[str | None, str | None]:
    """Account and duration back from a button value."""
    account, _, duration = value.partition("|")
    return account or None, duration or None


def _actions(actions: tuple[Action, ...]) -> dict[str, Any] | None:
    if not actions:
        return None
    elements: list[dict[str, Any]] = []
    for action in actions[:25]:
        element: dict[str, Any] = {
            "type": "button",
            "text": {"type": "plain_text", "text": cut(printable(action.label), 75)},
            "action_id": f"credits_{action.kind}" + (f"_{len(elements)}" if action.kind == "snooze" else ""),
            "value": action_value(action),
        }
        if action.kind == "snooze":
            element["confirm"] = {
                "title": {"type": "plain_text", "text": "Snooze alerts?"},
                "text": {
                    "type": "plain_text",
                    "text": cut(printable(f"No alerts for {action.account} for {action.duration}."), 300),
                },
                "confirm": {"type": "plain_text", "text": "Snooze"},
                "deny": {"type": "plain_text", "text": "Cancel"},
            }
        elements.append(element)
    return {"type": "actions", "elements": elements}


# Mentions already in Slack's syntax: a broadcast, a user, a user group.
_SPECIAL = re.compile(
    r"<!(?:here|channel|everyone)(?:\|[^<>]*)?>|<@[UW][A-Z0-9]{2,20}>|<!subteam\^S[A-Z0-9]{2,20}(?:\|[^<>]*)?>"
)


def mention(configured: str) -> str:
    """A channel's configured mention as Slack writes it: @here, @channel and @everyone as `<!here>` ...,
    a user id (U.../W...) as `<@U...>`, a user group id (S...) as `<!subteam^S...>`; Slack's own syntax is
    kept, and anything else is shown as inert text (it cannot ping)."""
    text = configured.strip()
    if text.lower() in ("@here", "@channel", "@everyone"):
        return f"<!{text[1:].lower()}>"
    if re.fullmatch(r"[UW][A-Z0-9]{2,20}", text):
        return f"<@{text}>"
    if re.fullmatch(r"S[A-Z0-9]{2,20}", text):
        return f"<!subteam^{text}>"
    return text if _SPECIAL.fullmatch(text) else escape(text)


def fallback_text(message: Message) -> str:
    """The notification and accessibility text: the configured mentions, then the title and the summary
    (once, when the summary only repeats the title)."""
    mentions = " ".join(mention(m) for m in message.mentions)
    icon = SEVERITY_EMOJI.get(message.severity.value, "") if message.severity.value != "info" else ""
    title, summary = escape(message.title), escape(message.summary)
    said = summary if summary.startswith(title) else f"{title}: {summary}" if summary else title
    text = f"{icon} {said}".strip()
    return cut(f"{mentions} {text}" if mentions else text, MAX_FALLBACK)


def render(message: Message, *, max_blocks: int = MAX_BLOCKS, with_actions: bool = True) -> list[dict[str, Any]]:
    """One or more `{"text", "blocks"}` payloads; many accounts are split over several messages."""
    body: list[dict[str, Any]] = []
    if message.mentions:
        # In the message itself, not only in the notification text: people see who was called.
        mentions = " ".join(mention(m) for m in message.mentions)
        body.append({"type": "section", "text": {"type": "mrkdwn", "text": cut(mentions, MAX_TEXT)}})
    if message.text:
        body += [{"type": "section", "text": _mrkdwn(chunk)} for chunk in _chunks(escape(message.text))]
    for item in message.sections:
        body += section_blocks(item)
    tail: list[dict[str, Any]] = []
    if message.footer:
        tail.append({"type": "context", "elements": [_mrkdwn(cut(escape(message.footer), MAX_TEXT))]})
    actions = _actions(message.actions) if with_actions else None
    if actions:
        tail.append(actions)
    header = {"type": "header", "text": _plain(message.title, MAX_HEADER)}
    room = max_blocks - 1 - len(tail)
    pages: list[list[dict[str, Any]]] = []
    while body or not pages:
        take = body[:room]
        # Keep an account's section and its note together.
        if len(body) > room and take and take[-1]["type"] == "section" and body[room]["type"] == "context":
            take = take[:-1]
        pages.append(take)
        body = body[len(take) :]
    payloads = []
    for index, page in enumerate(pages):
        blocks = ([header] if index == 0 else []) + page + (tail if index == len(pages) - 1 else [])
        text = fallback_text(message) if index == 0 else f"{escape(message.title)} (continued)"
        payloads.append({"text": text, "blocks": blocks})
    return payloads


def note_payload(text: str) -> dict[str, Any]:
    """A one-line follow-up (e.g. a hint), shown small under the message it follows."""
    line = cut(escape(text), MAX_TEXT)
    return {"text": line, "blocks": [{"type": "context", "elements": [_mrkdwn(line)]}]}


def render_home(message: Message) -> dict[str, Any]:
    """The App Home tab view: the dashboard in one view (up to 100 blocks, no buttons: presses from a view
    have no response URL)."""
    pages = render(message, max_blocks=MAX_HOME_BLOCKS - 1, with_actions=False)
    blocks = list(pages[0]["blocks"])
    if len(pages) > 1:
        hidden = sum(1 for page in pages[1:] for block in page["blocks"] if block["type"] == "section")
        note = f"{hidden} more accounts are not shown here; use /credits to see them."
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    return {"type": "home", "blocks": blocks}
