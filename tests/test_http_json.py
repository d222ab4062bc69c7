"""`provider = "http-json"`: any JSON endpoint, read at configured pointers; the keys each provider takes; and
`creditbot providers`."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.models import JsonSource
from bot.money import Money
from bot.providers import OFFERED
from bot.providers.base import ProviderError
from bot.providers.http_json import parse_answer
from tests.test_cli import run_cli

GATEWAY_KEY = "gw-TESTKEY-0123456789abcdef"
leaves = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=True) | st.text(max_size=8)
values = st.recursive(
    leaves, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3)
)
json_bodies = values | st.fixed_dictionaries(
    {"data": st.fixed_dictionaries({}, optional={"remaining": values})}, optional={"error": values}
)


@dataclass
class JsonEndpoint:
    """A loopback endpoint answering a configurable JSON body; it records the headers it was sent."""

    body: Any = field(default_factory=lambda: {"data": {"remaining": "1234", "month_usage": 250}, "error": None})
    status: int = 200
    seen: list[dict[str, str]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def endpoint() -> Iterator[JsonEndpoint]:
    state = JsonEndpoint()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.seen.append({k.lower(): v for k, v in self.headers.items()})
            payload = json.dumps(state.body).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/api/balance?team=ops"
    yield state
    server.shutdown()
    server.server_close()


def gateway_toml(url: str, **extra: str) -> str:
    lines = [
        "[[accounts]]",
        'name = "my-gateway"',
        'provider = "http-json"',
        f'url = "{url}"',
        'headers = { Authorization = "Bearer ${GATEWAY_KEY}", X-Team = "ops" }',
        'balance = "/data/remaining"',
        'scale = "0.01"',
        'currency = "USD"',
        'spent_month = "/data/month_usage"',
        *(f"{key} = {value}" for key, value in extra.items()),
    ]
    return "\n".join(lines) + "\n"


def check(tmp_path: Path, toml: str) -> tuple[int, dict[str, Any], str]:
    result = run_cli(tmp_path, "check", "--json", env={"GATEWAY_KEY": GATEWAY_KEY}, toml=toml)
    assert "Traceback" not in result.stderr
    assert GATEWAY_KEY not in result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout)["accounts"][0], result.stderr


def test_a_balance_in_cents_at_a_pointer_with_secret_headers(tmp_path: Path, endpoint: JsonEndpoint) -> None:
    code, account, _ = check(tmp_path, gateway_toml(endpoint.url))
    assert code == 0
    assert (account["balance"], account["currency"], account["status"]) == (12.34, "USD", "ok")
    assert account["spent_month"] == 2.5
    assert endpoint.seen[0]["authorization"] == f"Bearer {GATEWAY_KEY}"
    assert endpoint.seen[0]["x-team"] == "ops"


def test_credits_in_a_unit_word_take_thresholds_in_that_unit(tmp_path: Path, endpoint: JsonEndpoint) -> None:
    endpoint.body = {"credits": {"left": 480}}
    toml = gateway_toml(endpoint.url).replace('"/data/remaining"', '"/credits/left"').replace('"USD"', '"credits"')
    toml = toml.replace('scale = "0.01"\n', "").replace('spent_month = "/data/month_usage"\n', "")
    code, account, _ = check(tmp_path, toml + "warn_below = 500\n")
    assert (account["balance"], account["currency"], account["status"], code) == (480.0, "credits", "warning", 1)
    result = run_cli(tmp_path, "check", env={"GATEWAY_KEY": GATEWAY_KEY}, toml=toml)
    assert "480 credits" in result.stdout
    assert "$" not in result.stdout.split("my-gateway", 1)[1].splitlines()[0]


@pytest.mark.parametrize(
    ("body", "extra", "message"),
    [
        ({"data": {}}, {}, "nothing at /data/remaining"),
        ({"data": {"remaining": {"usd": 1}}}, {}, "an object or list at /data/remaining"),
        ({"data": {"remaining": "lots"}}, {}, "/data/remaining (balance) is not a number"),
        (
            {"data": {"remaining": 1}, "status": {"failed": "quota service down"}},
            {"error": '"/status/failed"'},
            "quota service down",
        ),
        ({"data": {"remaining": 1}, "status": {"failed": 7}}, {"error": '"/status/failed"'}, "see /status/failed"),
    ],
)
def test_what_is_not_a_balance_is_an_error_naming_the_pointer(
    tmp_path: Path, endpoint: JsonEndpoint, body: Any, extra: dict[str, str], message: str
) -> None:
    endpoint.body = body
    toml = gateway_toml(endpoint.url, **extra).replace('spent_month = "/data/month_usage"\n', "")
    code, account, _ = check(tmp_path, toml)
    assert code == 3
    assert account["balance"] is None
    assert message in account["error"]


def test_a_falsy_error_flag_is_no_error(tmp_path: Path, endpoint: JsonEndpoint) -> None:
    endpoint.body = {"data": {"remaining": 500, "month_usage": 0}, "status": {"failed": False}}
    code, account, _ = check(tmp_path, gateway_toml(endpoint.url, error='"/status/failed"'))
    assert (code, account["balance"]) == (0, 5.0)


def test_a_refused_header_names_where_to_fix_it(tmp_path: Path, endpoint: JsonEndpoint) -> None:
    endpoint.status = 401
    endpoint.body = {"message": "bad token"}
    code, account, _ = check(tmp_path, gateway_toml(endpoint.url))
    assert code == 3
    assert "headers of account 'my-gateway'" in account["error"]


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        (
            'provider = "http-json"\napi_key = "sk-x"\nurl = "http://h/x"\nbalance = "/b"\ncurrency = "USD"',
            "api_key: http-json takes no api_key",
        ),
        ('provider = "http-json"\nbalance = "/b"\ncurrency = "USD"', "url: is required for provider http-json"),
        (
            'provider = "http-json"\nurl = "http://h/x"\ncurrency = "USD"',
            "balance: is required for provider http-json",
        ),
        (
            'provider = "http-json"\nurl = "http://h/x"\nbalance = "/b"',
            "currency: is required for provider http-json",
        ),
        (
            'provider = "http-json"\nurl = "ftp://h/x"\nbalance = "/b"\ncurrency = "USD"',
            "url: must start with http:// or https://",
        ),
        (
            'provider = "http-json"\nurl = "http://h/x"\nbalance = "data/b"\ncurrency = "USD"',
            "is not a JSON Pointer",
        ),
        (
            'provider = "http-json"\nurl = "http://h/x"\nbalance = "/b"\ncurrency = "USD"\nscale = "0"',
            "scale: must not be 0",
        ),
        (
            'provider = "http-json"\nurl = "http://h/x"\nbalance = "/b"\ncurrency = "USD"\n'
            'headers = { "Bad Name" = "x" }',
            "is not a valid HTTP header name",
        ),
        (
            'provider = "http-json"\nurl = "http://h/x"\nbalance = "/b"\ncurrency = "dollars"',
            "currency: must be a three-letter currency code",
        ),
        ('provider = "deepseek"\napi_key = "sk-x"\nurl = "http://h/x"', "url: is only for provider http-json"),
        ('provider = "deepseek"\napi_key = "sk-x"\nteam_id = "t1"', "team_id: is only for provider xai"),
        (
            'provider = "deepseek"\napi_key = "sk-x"\ncurrency = "tokens"',
            "currency: a unit word is for relay and http-json",
        ),
        ('provider = "deepseek"', "api_key: is required for provider deepseek"),
    ],
)
def test_each_provider_takes_its_own_keys_one_clear_line_each(tmp_path: Path, table: str, problem: str) -> None:
    result = run_cli(tmp_path, "check", toml=f'[[accounts]]\nname = "x"\n{table}\n')
    assert result.returncode == 78
    assert "Traceback" not in result.stderr
    assert problem in result.stderr, result.stderr
    assert "sk-x" not in result.stderr


def test_a_header_secret_from_a_missing_variable_is_named_and_never_shown(tmp_path: Path) -> None:
    toml = gateway_toml("http://127.0.0.1:9/x").replace("${GATEWAY_KEY}", "${GATEWAY_KEY_TYPO}")
    result = run_cli(tmp_path, "check", toml=toml, env={"GATEWAY_KEY": GATEWAY_KEY})
    assert result.returncode == 78
    assert "headers: environment variable GATEWAY_KEY_TYPO is not set" in result.stderr


def test_providers_lists_every_provider_with_its_key_and_variable(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "providers", "--json")
    assert result.returncode == 0
    rows = json.loads(result.stdout)["providers"]
    assert [row["name"] for row in rows] == list(OFFERED)
    assert all(set(row) == {"name", "reports", "key", "env", "experimental", "breakdown"} for row in rows)
    by_name = {row["name"]: row for row in rows}
    assert by_name["http-json"]["env"] is None
    assert by_name["openai"]["reports"] == "spend only"
    assert by_name["deepseek"]["env"] == "DEEPSEEK_API_KEY"
    assert by_name["openai-legacy"]["experimental"] is True
    assert by_name["openai"]["breakdown"] == ["model", "project", "line_item", "key"]
    assert by_name["openrouter"]["breakdown"] == ["model"]
    assert by_name["deepseek"]["breakdown"] == []
    table = run_cli(tmp_path, "providers")
    assert "DEEPSEEK_API_KEY" in table.stdout


@settings(max_examples=200, deadline=None)
@given(body=json_bodies)
def test_any_answer_is_a_report_of_the_stated_value_or_a_clear_error(body: Any) -> None:
    source = JsonSource("https://source.test/b", (), "/data/remaining", Decimal("0.01"), "/error")
    try:
        report = parse_answer(body, source, "USD")
    except ProviderError as exc:
        message = exc.message
        assert message  # says what went wrong
        return
    stated = body["data"]["remaining"]
    assert not isinstance(stated, bool)
    assert report.balance == Money(
        Decimal(repr(stated) if isinstance(stated, float) else str(stated)) * Decimal("0.01"), "USD"
    )
    assert body.get("error") in (None, False, 0, "", [], {})
