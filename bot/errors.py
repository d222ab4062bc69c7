"""Exceptions that the command line maps to exit statuses (kept light: imported at start-up)."""

from __future__ import annotations


class ConfigError(Exception):
    """The configuration cannot be used; `problems` holds one human line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
