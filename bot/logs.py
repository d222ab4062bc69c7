"""Logging set-up: text or JSON lines, with every known secret scrubbed from every record."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

from bot.text import redact, secret_values

NOISY_LOGGERS = (
    "httpx",
    "httpcore",
    "aiosqlite",
    "alembic",
    "asyncio",
    "apscheduler",
    "aiohttp.access",
    "matplotlib",  # "generated new fontManager" on the first chart of a new home directory
)
# Start-up notes of libraries that nobody can act on: discord.py's voice support (creditbot never joins a
# voice channel) and slack-bolt's remark that the client it is given brings its own token. Matched exactly,
# so that every other warning of those libraries still shows.
HARMLESS = (
    ("discord.client", "PyNaCl is not installed, voice will NOT be supported"),
    ("discord.client", "davey is not installed, voice will NOT be supported"),
    ("slack_bolt.", "As you gave `client` as well, `token` will be unused."),
)
# The loggers whose news one-off commands print themselves: a fetch that failed (`check`'s table and JSON,
# `doctor`'s lines), a top-up recorded (`topup`), a summary queued and a message delivered or not
# (`summary --send`, `notify-test`). Their errors still show: "could not be built; see the log".
PRINTED_BY_COMMANDS = ("bot.monitor", "bot.delivery", "bot.summaries")


class HarmlessFilter(logging.Filter):
    """Drops the library notes in HARMLESS."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a harmless note."""
        return not any(record.name.startswith(name) and record.getMessage() == text for name, text in HARMLESS)


class RedactingFilter(logging.Filter):
    """Replaces secrets in the fully formatted message of each record."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = secret_values(secrets)

    def redact(self, text: str) -> str:
        """The text with every known secret and secret-shaped token replaced (see `bot.text.redact`)."""
        return redact(text, self.secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        """Freeze the message with secrets removed."""
        message = self.redact(record.getMessage())
        record.msg, record.args = message, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and exception text)."""

    def format(self, record: logging.LogRecord) -> str:
        """Render one record."""
        document = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:
            document["exception"] = record.exc_text
        return json.dumps(document, ensure_ascii=False)


def configure_logging(level: str, fmt: str, secrets: Iterable[str] = ()) -> RedactingFilter:
    """Send logs to stderr in the chosen format, scrubbing secrets; returns the filter to add secrets to."""
    redactor = RedactingFilter(secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(HarmlessFilter())
    handler.addFilter(redactor)
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs full URLs at INFO; the loggers below are chatty and add nothing for an operator.
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    for name in PRINTED_BY_COMMANDS:
        logging.getLogger(name).setLevel(logging.NOTSET)  # as the root says, until a command lowers them
    return redactor


def leave_terminal_to_command() -> None:
    """For one-off commands, which print what went wrong themselves: the loggers that would say it again on
    stderr keep only errors, unless the log level is DEBUG."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in PRINTED_BY_COMMANDS:
            logging.getLogger(name).setLevel(logging.ERROR)
