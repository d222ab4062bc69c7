"""The one duration parser (`30m`, `24h`, `7d`), shared by the settings and the chat commands."""

from __future__ import annotations

import re
from datetime import timedelta
from functools import lru_cache
from typing import Literal

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_EXAMPLES = {"s": "90s", "m": "30m", "h": "24h", "d": "7d"}

Problem = Literal["shape", "zero", "long"]


class DurationError(ValueError):
    """A duration that cannot be read ("shape"), is not longer than zero ("zero") or is too long ("long")."""

    def __init__(self, problem: Problem, message: str) -> None:
        super().__init__(message)
        self.problem: Problem = problem


@lru_cache(maxsize=8)
def _pattern(
    units: str, bare_numbers: bool, decimals: bool, max_digits: int | None, spaces: bool
) -> re.Pattern[str]:
    digits = r"\d+" if max_digits is None else rf"\d{{1,{max_digits}}}"
    number = rf"{digits}(?:\.\d+)?" if decimals else digits
    space = r"\s*" if spaces else ""
    unit = f"[{re.escape(units)}]" + ("?" if bare_numbers else "")
    return re.compile(rf"^{space}({number}){space}({unit}){space}$")


def _examples(units: str) -> str:
    shown = [_EXAMPLES[u] for u in "smhd" if u in units]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


def _spoken(longest: timedelta) -> str:
    if longest % timedelta(days=1):
        return f"{longest.total_seconds():g} seconds"
    return f"{longest.days} days"


def parse_duration(
    value: str | float,
    *,
    units: str = "smhd",
    longest: timedelta,
    bare_numbers: bool = False,
    decimals: bool = False,
    max_digits: int | None = None,
    spaces: bool = False,
) -> timedelta:
    """A number followed by one of `units` (s, m, h, d), longer than zero and at most `longest`.

    `bare_numbers` also accepts a number without a unit (or an int or float) as seconds; `decimals` accepts
    `1.5h`; `max_digits` limits the number's digits; `spaces` allows white space around and inside. Raises
    DurationError, whose `problem` lets a caller word the error its own way.
    """
    if bare_numbers and isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _pattern(units, bare_numbers, decimals, max_digits, spaces).match(str(value))
        if not match:
            raise DurationError("shape", f"must be a duration such as {_examples(units)}")
        seconds = float(match.group(1)) * UNIT_SECONDS.get(match.group(2), 1)
    if seconds <= 0:
        raise DurationError("zero", "must be longer than zero")
    if seconds > longest.total_seconds():
        raise DurationError("long", f"must be at most {_spoken(longest)}")
    return timedelta(seconds=seconds)
