"""Pydantic validation errors worded as the one-line problems a ConfigError lists, with suggestions for
misspelled names."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable

from pydantic import ValidationError

# Error types worded for a person editing a file rather than as pydantic says them.
_WORDED = {"missing": "is required", "extra_forbidden": "is not a known setting"}


def did_you_mean(word: str, choices: Iterable[str], shown: str = "{}") -> str:
    """` (did you mean X?)` when one of `choices` is close to `word` (case aside), else nothing; `shown`
    formats the choice (e.g. `[[{}]]`)."""
    by_folded = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(word.lower(), list(by_folded), n=1, cutoff=0.6)
    return f" (did you mean {shown.format(by_folded[close[0]])}?)" if close else ""


def problem_lines(
    exc: ValidationError, where: str, whole: str, skip: Collection[str] = (), known: Collection[str] = ()
) -> list[str]:
    """One `where: field: reason` line per error; `whole` names the field of an error about the whole table,
    errors about fields in `skip` (already reported) are left out, and an unknown field close to one of
    `known` gets a suggestion."""
    lines = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"]) or whole
        if name in skip:
            continue
        reason = _WORDED.get(error["type"]) or _without_prefix(error["msg"])
        field, _, rest = reason.partition(": ")
        if name == whole and rest and field in known:
            name, reason = field, rest  # a rule between fields that names the field to fix
        if error["type"] == "extra_forbidden":
            reason += did_you_mean(name, known)
        lines.append(f"{where}: {name}: {reason}")
    return lines


def _without_prefix(message: str) -> str:
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
