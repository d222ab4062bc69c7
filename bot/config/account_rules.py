"""Which `[[accounts]]` keys each provider takes, and the http-json source's checks (RFC 6901 pointers,
header names and values)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import SecretStr

from bot.money import is_unit

HTTP_JSON = "http-json"
UNIT_PROVIDERS = ("relay", HTTP_JSON)  # the providers whose credits may be counted in a unit word
HTTP_JSON_KEYS = ("url", "headers", "balance", "scale", "error", "spent_month")
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")  # an RFC 9110 token


def check_provider_keys(table: Any) -> None:
    """Raise ValueError ("field: reason") for a key an `AccountConfig`'s provider does not take or lacks."""
    provider = table.provider
    if provider == HTTP_JSON:
        if table.api_key is not None:
            raise ValueError("api_key: http-json takes no api_key; put secrets in headers (values may use ${VAR})")
        if table.base_url is not None:
            raise ValueError("base_url: http-json takes the full address in url")
        for name in ("url", "balance", "currency"):
            if getattr(table, name) is None:
                raise ValueError(f"{name}: is required for provider http-json")
    else:
        if table.api_key is None:
            raise ValueError(f"api_key: is required for provider {provider} (the key itself, or ${{VAR}})")
        for name in HTTP_JSON_KEYS:
            if getattr(table, name) is not None:
                raise ValueError(f"{name}: is only for provider http-json")
    if table.team_id is not None and provider != "xai":
        raise ValueError("team_id: is only for provider xai")
    if provider == "relay" and table.base_url is None:
        raise ValueError(
            "base_url: is required for provider relay: the relay's address, e.g. https://relay.example.com"
        )
    if table.currency is not None and is_unit(table.currency) and provider not in UNIT_PROVIDERS:
        raise ValueError(f"currency: a unit word is for relay and http-json accounts; {provider} reports money")


def check_pointer(value: str) -> str:
    """An RFC 6901 JSON Pointer: empty (the whole answer) or `/`-separated, with `~` only as `~0` or `~1`."""
    if value and not value.startswith("/"):
        raise ValueError(f"'{value[:60]}' is not a JSON Pointer; write it as /data/balance")
    if re.search(r"~(?![01])", value):
        raise ValueError("in a JSON Pointer '~' must be written ~0 and '/' inside a name ~1")
    return value


def check_headers(value: dict[str, Any]) -> dict[str, SecretStr]:
    """Header names that HTTP allows, with values on one line (all kept secret)."""
    checked = {}
    for name, raw in value.items():
        if not HEADER_NAME.fullmatch(name):
            raise ValueError(f"'{name[:40]}' is not a valid HTTP header name")
        text = raw.get_secret_value() if isinstance(raw, SecretStr) else raw
        if not isinstance(text, str):
            raise ValueError(f"the value of {name} must be a string")
        if any(c in text for c in "\r\n\0"):
            raise ValueError(f"the value of {name} must be on one line")
        checked[name] = SecretStr(text)
    return checked
