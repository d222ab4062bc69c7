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


def expand_table(
    table: dict[str, Any], env: Mapping[str, str], where: str, problems: list[str]
) -> tuple[dict[str, Any], set[str]]:
    """A TOML table with `${VAR}` read from `env`; a variable not set (or `$VAR` without braces) is a problem
    naming the field, and that field (set to "unset" so the others are still validated) is returned in the
    set of fields to leave out of further checks."""
    expanded: dict[str, Any] = {}
    unset: set[str] = set()
    for key, value in table.items():
        missing: list[str] = []
        expanded[key] = expand_variables(value, env, missing)
        problems += [f"{where}: {key}: environment variable {name} is not set" for name in missing]
        bare = bare_variable(value, env)
        if bare:
            problems.append(f"{where}: {key}: write ${{{bare}}} to read the environment variable {bare}")
        if missing or bare:
            unset.add(key)
            expanded[key] = "unset"
    return expanded, unset
