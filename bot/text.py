"""The text toolkit every output goes through: printable text, redaction of secrets, cutting, safe names."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

# Shapes of credentials we may meet even when we do not know the value (defence in depth). Distinctive
# prefixes match anywhere, even glued to other text (`token%3Dxoxb-...`, `Bearersk-ant-...`); a bare `sk-` or
# `sess-` only where no letter or digit comes before it (`task-1234...` is no key). A long tail is always a
# secret, even cut short by an ellipsis (a truncated key still gives part of itself away); a short tail that
# ends in an ellipsis is a hint such as `sk-ant-admin01-...`, which must stay readable. The tails are
# possessive so that a hint cannot match by giving back its last characters.
_TAIL = r"(?:{chars}{{16,}}+|{chars}{{{shortest},15}}+(?!\.\.\.|…))"
_KEY_TAIL = _TAIL.format(chars=r"[A-Za-z0-9_\-]", shortest=8)
_SLACK_TAIL = _TAIL.format(chars=r"[A-Za-z0-9\-]", shortest=10)
KEY_SHAPES = re.compile(
    rf"sk-(?:admin|proj|ant|or){_KEY_TAIL}|sk-[A-Za-z0-9]{{20,}}|sess-[A-Za-z0-9]{{16,}}"
    rf"|xox[abposr]-{_SLACK_TAIL}|xapp-{_SLACK_TAIL}"
    rf"|(?<![A-Za-z0-9])(?:sk|sess)-{_KEY_TAIL}"
)
REDACTED = "[redacted]"
SHORTEST_SECRET = 6  # shorter values would redact ordinary words
# Control, format (bidi overrides, zero-width) and surrogate characters.
CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})
_LINE_SEPARATORS = {"\u2028": "\n", "\u2029": "\n", "\t": " ", "\r": ""}
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def is_control(char: str) -> bool:
    """True for a control, format or surrogate character."""
    return unicodedata.category(char) in CONTROL_CATEGORIES


def has_control(text: str) -> bool:
    """True when the text holds any control, format or surrogate character."""
    return any(is_control(c) for c in text)


def printable(text: str) -> str:
    """Text without control, format (bidi overrides, zero-width) or surrogate characters; tabs become spaces
    and Unicode line separators newlines. Data can then neither colour a terminal (ANSI escapes), reorder
    what follows it (U+202E) nor hide characters, and always encodes as UTF-8."""
    if text.isprintable():
        return text
    kept = []
    for char in text:
        if char == "\n":
            kept.append(char)
        elif char in _LINE_SEPARATORS:
            kept.append(_LINE_SEPARATORS[char])
        elif not is_control(char):
            kept.append(char)
    return "".join(kept)


def secret_values(secrets: Iterable[str]) -> list[str]:
    """The secrets worth looking for, longest first (so a secret containing another is replaced whole)."""
    return sorted({s for s in secrets if s and len(s) >= SHORTEST_SECRET}, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """The text with every given secret and every key-shaped token replaced by `[redacted]`."""
    for secret in secret_values(secrets):
        text = text.replace(secret, REDACTED)
    return KEY_SHAPES.sub(REDACTED, text)


def cut(text: str, limit: int, ellipsis: str = "…") -> str:
    """The text, shortened to at most `limit` characters with an ellipsis when it was longer."""
    return text if len(text) <= limit else text[: max(0, limit - len(ellipsis))] + ellipsis


def one_line(text: str, limit: int = 300, secrets: Iterable[str] = ()) -> str:
    """Text from outside (a provider's message, a user's word) safe to show on one line: secrets redacted,
    control characters and runs of white space folded to one space, cut to `limit`."""
    text = redact(text, secrets)
    text = "".join(" " if is_control(c) else c for c in text)
    return cut(" ".join(text.split()), limit, "...")


def shown(word: str, limit: int = 40) -> str:
    """A word the user typed, as echoed in an error: no control character, one short line."""
    return one_line("".join(c for c in word if not is_control(c)), limit=limit)


def safe_file_name(name: str, default: str = "credits.png") -> str:
    """A bare file name of letters, digits, '.', '-' and '_' that cannot leave a directory (no '/', no
    leading dot, so no '..'), at most 100 characters; `default` when nothing usable is left."""
    base = _UNSAFE_NAME.sub("-", name.replace("\\", "/").rsplit("/", 1)[-1])[-100:].lstrip(".-")
    return base or default


def mask_secret(secret: str) -> str:
    """`sk-admin-…` style hint: a short prefix and the length, never the tail."""
    prefix_match = re.match(r"^([a-z]+(?:-[a-z0-9]+){0,2}-)", secret)
    prefix = prefix_match.group(1)[:12] if prefix_match and len(secret) > 16 else ""
    return f"{prefix}… ({len(secret)} chars)"


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """`1 account`, `2 accounts`; `plural` for nouns that do not just take an s (`entry`, `entries`)."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"
