"""Pydantic validation errors worded as the one-line problems a ConfigError lists."""

from __future__ import annotations

from collections.abc import Collection

from pydantic import ValidationError

# Error types worded for a person editing a file rather than as pydantic says them.
_WORDED = {"missing": "is required", "extra_forbidden": "is not a known setting"}


def problem_lines(exc: ValidationError, where: str, whole: str, skip: Collection[str] = ()) -> list[str]:
    """One `where: field: reason` line per error; `whole` names the field of an error about the whole table,
    and errors about fields in `skip` (already reported) are left out."""
    lines = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"]) or whole
        if name in skip:
            continue
        reason = _WORDED.get(error["type"]) or _without_prefix(error["msg"])
        lines.append(f"{where}: {name}: {reason}")
    return lines


def _without_prefix(message: str) -> str:
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
