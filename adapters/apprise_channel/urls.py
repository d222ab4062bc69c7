"""Apprise URLs are secrets (they carry tokens, passwords and webhook signatures): checked without being
shown, described by scheme and host alone, and kept out of Apprise's own log records."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

import apprise
from apprise.apprise import N_MGR

# urllib3 (under requests) logs request paths at DEBUG, on child loggers: a parent's filters never see those
APPRISE_LOGGERS = ("apprise", "urllib3", "urllib3.connectionpool", "urllib3.util.retry")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}")
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]")
_ANY_URL = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]{0,31})://\S+")
SHORTEST_FRAGMENT = 6  # shorter parts of a URL ("hook", "443") are too common to scrub from text


def plugin_for(url: str) -> type[apprise.NotifyBase] | None:
    """The Apprise service class of a URL's scheme, or None when Apprise knows no such scheme."""
    scheme, sep, _ = url.strip().partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):
        return None
    manager: Any = N_MGR  # Apprise's plugin registry (untyped): schemes to service classes
    if scheme.lower() not in manager:
        return None
    return cast(type[apprise.NotifyBase], manager[scheme.lower()])


def describe_url(url: str) -> str:
    """What `doctor` may show of an Apprise URL: `scheme://host` (`json://hooks.example.com`), the host only
    for services whose every URL form puts a host name there (JSON, form, e-mail, Teams workflows, Gotify,
    ...), since others put a token or a topic there (`tgram://TOKEN/...`, `ntfy://topic`): those show
    `scheme://` alone. Never a user, password, port, path or query."""
    scheme, sep, _ = url.strip().partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):
        return "(not an Apprise URL)"
    scheme = scheme.lower()
    plugin = plugin_for(url)
    templates: tuple[str, ...] = getattr(plugin, "templates", ())
    if not templates or not all("{host}" in t for t in templates):
        return f"{scheme}://"
    try:
        host = urlsplit(url.strip()).hostname or ""
    except ValueError:
        host = ""
    if not _HOST.fullmatch(host) and not _HOST.fullmatch(f"[{host}]"):
        return f"{scheme}://"
    return f"{scheme}://{f'[{host}]' if ':' in host else host.lower()}"


def url_fragments(url: str) -> set[str]:
    """The parts of a URL that may be secret on their own (user, password, host, path segments, query
    values), long enough to be scrubbed from text without mangling it."""
    parts = {url}
    try:
        split = urlsplit(url)
        parts |= {split.username or "", split.password or "", split.hostname or "", split.netloc}
        parts |= set(split.path.split("/")) | {value for _, value in parse_qsl(split.query)}
    except ValueError:
        parts |= set(re.split(r"[/:@?&=#]+", url.partition("://")[2]))
    return {part for part in parts if len(part) >= SHORTEST_FRAGMENT}


class ScrubUrls(logging.Filter):
    """Rewrites Apprise's log records: every `scheme://...` and every known fragment of a channel URL is
    replaced by `…`, and a traceback is reduced to its exception type (its text can quote a URL). Apprise
    logs a URL it cannot parse whole, at ERROR."""

    def __init__(self) -> None:
        super().__init__()
        self.fragments: list[str] = []

    def add(self, urls: Iterable[str]) -> None:
        """Scrub these URLs' fragments too."""
        known = set(self.fragments)
        for url in urls:
            known |= url_fragments(url)
        self.fragments = sorted(known, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """The text without URLs or URL fragments."""
        text = _ANY_URL.sub(r"\1://…", text)
        for fragment in self.fragments:
            text = text.replace(fragment, "…")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Freeze the record's message, scrubbed."""
        record.msg, record.args = self.scrub(record.getMessage()), None
        if record.exc_info and record.exc_info[0] is not None:
            record.msg += f" ({record.exc_info[0].__name__})"
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


SCRUB = ScrubUrls()


def guard_logs(urls: Iterable[str]) -> None:
    """Keep Apprise's loggers (and urllib3's) at WARNING at least, and scrub URLs from what they log."""
    SCRUB.add(urls)
    for name in APPRISE_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:  # NOTSET (0) included: inheriting DEBUG from the root is not kept
            logger.setLevel(logging.WARNING)
        if SCRUB not in logger.filters:
            logger.addFilter(SCRUB)
