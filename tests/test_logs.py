"""Logs: secrets are scrubbed from every record, in both formats."""

from __future__ import annotations

import json
import logging

import pytest

from bot.logs import configure_logging

SECRET = "sk-admin-CANARYlogsecret0123456789"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_known_and_key_shaped_secrets_never_reach_the_log(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", fmt, [SECRET, "custom-secret-value"])
    log = logging.getLogger("bot.test")
    log.info("key is %s and %s", SECRET, "custom-secret-value")
    log.warning("unknown key sk-proj-abcdefghijklmnopqrstuvwx leaked")
    try:
        raise RuntimeError(f"failed with {SECRET}")
    except RuntimeError:
        log.exception("boom")
    err = capsys.readouterr().err
    assert SECRET not in err
    assert "custom-secret-value" not in err
    assert "sk-proj-abcdefghijklmnopqrstuvwx" not in err
    assert err.count("[redacted]") >= 4
    if fmt == "json":
        records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
        assert [r["level"] for r in records] == ["INFO", "WARNING", "ERROR"]
        assert "RuntimeError" in records[2]["exception"]


def test_httpx_urls_are_not_logged_at_info(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "text")
    logging.getLogger("httpx").info("HTTP Request: GET https://api.example/v1?x=1")
    assert "HTTP Request" not in capsys.readouterr().err
