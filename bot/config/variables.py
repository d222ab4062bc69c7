"""`${VAR}` in TOML values: expanded from the environment (and .env), and `$VAR` without braces refused."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

VAR_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# `$NAME` without braces is not expanded: it would be sent to the provider as the key itself.
BARE_VAR_PATTERN = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def expand_variables(value: Any, env: Mapping[str, str], missing: list[str]) -> Any:
    """`${VAR}` replaced from `env` in a string (or in an inline table's strings); unset names go to `missing`."""
    if isinstance(value, dict):  # an inline table such as http-json's headers
        return {key: expand_variables(item, env, missing) for key, item in value.items()}
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env or env[name] == "":
            missing.append(name)
            return ""
        return env[name]

    return VAR_PATTERN.sub(substitute, value)


def bare_variable(value: Any, env: Mapping[str, str]) -> str | None:
    """The NAME of a `$NAME` written without braces, when it looks like a variable (upper case, or set)."""
    if isinstance(value, dict):
        return next((name for item in value.values() if (name := bare_variable(item, env))), None)
    if not isinstance(value, str):
        return None
    for match in BARE_VAR_PATTERN.finditer(VAR_PATTERN.sub("", value)):
        name = match.group(1)
        if name.isupper() or name in env:
            return name
    return None
