"""Exceptions that the command line maps to exit statuses (kept light: imported at start-up)."""

from __future__ import annotations

EX_USAGE = 64  # sysexits.h: so usage and configuration errors never look like a monitoring status
EX_CONFIG = 78


class ConfigError(Exception):
    """The configuration cannot be used; `problems` holds one human line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class CommandFailure(Exception):
    """A command failed in a way the user can fix; the message says how. `usage` marks a wrong argument."""

    def __init__(self, message: str, exit_code: int = 1, *, usage: bool = False) -> None:
        super().__init__(message)
        self.exit_code = EX_USAGE if usage else exit_code
        self.usage = usage
