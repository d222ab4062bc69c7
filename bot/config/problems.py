"""Pydantic validation errors worded as the one-line problems a ConfigError lists."""

from __future__ import annotations


def error_reason(message: str) -> str:
    """A pydantic error message without its "Value error, " or "Assertion failed, " prefix."""
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
