"""`creditbot breakdown` through its real entry point (a subprocess) over a seeded store: the JSON contract,
rows that add up to the total with a known gap as exactly that "unattributed" amount, the tables, exit codes
and the reserved account name; and over the wire, against the loopback fake of the grouped billing reports,
with a fresh database.

The subprocess reads the real clock: a store seeded for one UTC date and a command run on the next would not
agree, so each run is checked to have started and ended on the date it was prepared for, and is prepared again
and run once more when the date turned in between."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.store import Store
from tests.breakdown_seed import GAP, GAP_DAY_OFFSET, many_parts, model_parts, seed
from tests.conftest import TEST_KEYS
from tests.fake_breakdown import FakeBreakdown, FakeBreakdownServer, month_of_lines

D = Decimal
Run = subprocess.CompletedProcess[str]


def utc_today() -> date:
    """The UTC date now, as the subprocess sees it."""
    return datetime.now(UTC).date()


def run_breakdown(tmp_path: Path, *args: str, toml: str | None = None) -> subprocess.CompletedProcess[str]:
    """`creditbot breakdown ...` in a clean directory, importing this checkout."""
    if toml is not None:
        (tmp_path / "creditbot.toml").write_text(toml)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "CREDITBOT_CACHE_SECONDS": "0",
        "CREDITBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'creditbot.db'}",
        "OPENAI_ADMIN_KEY": TEST_KEYS["openai"],
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    command = [sys.executable, "-m", "bot", "breakdown", *args]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)


ACCOUNTS = """
[[accounts]]
name = "oa"
provider = "openai"
api_key = "${OPENAI_ADMIN_KEY}"
base_url = "http://127.0.0.1:9"

[[accounts]]
name = "wide"
provider = "openai"
api_key = "${OPENAI_ADMIN_KEY}"
base_url = "http://127.0.0.1:9"

[[accounts]]
name = "ds"
provider = "deepseek"
api_key = "sk-abcdefabcdefabcdefabcdef"
base_url = "http://127.0.0.1:9"
"""


def seed_store(directory: Path, today: date) -> Path:
    """A store and configuration in `directory` seeded as if fetched just now on `today`."""

    async def go() -> None:
        store = await Store.open(f"sqlite+aiosqlite:///{directory / 'creditbot.db'}")
        gaps = {today - timedelta(days=GAP_DAY_OFFSET): GAP}
        await seed(store, "oa", model_parts(today), gaps=gaps, today=today)
        await seed(store, "wide", many_parts(today), gaps={}, today=today)
        await store.close()

    directory.mkdir(parents=True, exist_ok=True)
    asyncio.run(go())
    (directory / "creditbot.toml").write_text(ACCOUNTS)
    return directory


class Seeded:
    """A seeded store to run `creditbot breakdown` over, always for the UTC date the command runs on."""

    def __init__(
        self,
        root: Path,
        *,
        today: Callable[[], date] = utc_today,
        run: Callable[..., Run] = run_breakdown,
    ) -> None:
        self.root, self.today, self._run = root, today, run
        self.seeds = 0
        self.day = self.today()
        self.path = self._seed()

    def _seed(self) -> Path:
        self.seeds += 1
        return seed_store(self.root / f"seed-{self.seeds}", self.day)

    def run(self, *args: str) -> Run:
        """`creditbot breakdown ...` over a store seeded for the date the whole run fell on: seeded again for
        the new date and run once more when the date turned before or during the run."""
        for _attempt in range(2):
            today = self.today()
            if today != self.day:
                self.day = today
                self.path = self._seed()
            result = self._run(self.path, *args)
            if self.today() == self.day:  # started and ended on the seeded date: the command saw it too
                return result
        raise AssertionError("the UTC date turned twice while running one command")


@pytest.fixture
def seeded(tmp_path: Path) -> Seeded:
    return Seeded(tmp_path)


CONTRACT_ROW = (
    "key",
    "label",
    "cost",
    "previous_cost",
    "change",
    "share",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "requests",
)


def _by_key(account: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["key"]: row for row in account["rows"]}


def test_json_follows_the_contract_and_the_rows_add_up(seeded: Seeded) -> None:
    result = seeded.run("--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) == {"generated_at", "accounts"}
    assert datetime.fromisoformat(document["generated_at"]).date() == seeded.day
    oa, wide, ds = document["accounts"]
    assert {"name", "currency", "by", "days", "total", "rows"} <= set(oa)
    assert (oa["name"], oa["currency"], oa["by"], oa["days"]) == ("oa", "USD", "model", 7)
    # 7 days of 3.00 + 1.00, o1's 0.50 and the gap the parts do not explain.
    assert oa["total"] == 28.87
    rows = _by_key(oa)
    assert list(rows) == ["gpt-4o", "gpt-4o-mini", "o1", "unattributed"]
    for row in oa["rows"]:
        assert set(row) == {
            "key",
            "label",
            "cost",
            "previous_cost",
            "change",
            "share",
            "input_tokens",
            "cached_input_tokens",
            "output_tokens",
            "requests",
        }
        assert row["change"] == pytest.approx(row["cost"] - row["previous_cost"])
        assert 0 <= row["share"] <= 1
    assert sum(D(str(r["cost"])) for r in oa["rows"]) == D("28.87")
    assert rows["unattributed"]["cost"] == 0.37  # exactly the known gap
    assert rows["gpt-4o"] | {"share": None} == {
        "key": "gpt-4o",
        "label": "gpt-4o",
        "cost": 21.0,
        "previous_cost": 14.0,
        "change": 7.0,
        "share": None,
        "input_tokens": 7000,
        "cached_input_tokens": 1400,
        "output_tokens": 700,
        "requests": 70,
    }
    assert rows["gpt-4o"]["share"] == pytest.approx(21 / 28.87, abs=1e-4)
    assert rows["gpt-4o-mini"]["input_tokens"] is None  # not counted by the source: null, never 0
    assert (rows["o1"]["previous_cost"], rows["o1"]["change"]) == (0.0, 0.5)  # new in this window
    assert oa["today"]["partial"] is True
    assert oa["today"]["total"] == 0.25
    assert [r["key"] for r in oa["today"]["rows"]] == ["gpt-4o"]
    assert len(wide["rows"]) == 12  # the JSON carries every row; only the table folds
    assert ds["note"] == "no breakdown from this provider"
    assert (ds["rows"], ds["total"], ds["today"]) == ([], None, None)


def test_the_window_is_the_days_asked_for(seeded: Seeded) -> None:
    result = seeded.run("oa", "--days", "1", "--json")
    assert result.returncode == 0, result.stderr
    (oa,) = json.loads(result.stdout)["accounts"]
    assert (oa["days"], oa["total"]) == (1, 4.0)  # yesterday only: no o1, no gap
    assert {r["key"]: r["change"] for r in oa["rows"]} == {"gpt-4o": 0.0, "gpt-4o-mini": 0.0}
    three = json.loads(seeded.run("oa", "--days", "3", "--json").stdout)["accounts"][0]
    assert _by_key(three)["unattributed"]["cost"] == 0.37  # the gap day is the third before today


def test_tables_fold_the_tail_and_show_today_apart(seeded: Seeded) -> None:
    result = seeded.run()
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "oa (openai) by model: last 7 days" in out
    assert "unattributed │  $0.37 │   1.3% │ +$0.37" in out  # a gap, never "new"
    assert "$0.37" in out
    assert "total" in out
    assert "$28.87" in out
    assert "+$7.00" in out  # gpt-4o against the seven days before
    assert "7k in (1.4k cached) / 700 out" in out
    assert "(partial" in out
    assert "$0.25" in out
    assert "3 more" in out  # wide: nine of twelve models, the other three folded
    assert "model-12" in out
    assert "model-03" not in out
    assert "ds (deepseek): no breakdown from this provider" in out


def test_unknown_account_is_a_usage_error(seeded: Seeded) -> None:
    result = seeded.run("nope")
    assert result.returncode == 64
    assert "unknown account 'nope'" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_options_are_usage_errors(seeded: Seeded) -> None:
    for args in (("--by", "colour"), ("--days", "0"), ("--days", "many")):
        result = seeded.run(*args)
        assert result.returncode == 64, args
        assert "Traceback" not in result.stderr


def test_a_configuration_error_exits_78(tmp_path: Path) -> None:
    result = run_breakdown(tmp_path, toml='[[accounts]]\nname = "x"\nprovider = "nosuch"\napi_key = "k"\n')
    assert result.returncode == 78
    assert result.stderr.startswith("configuration error:")


def test_an_account_named_breakdown_is_refused_with_one_line(tmp_path: Path) -> None:
    toml = '[[accounts]]\nname = "breakdown"\nprovider = "deepseek"\napi_key = "sk-abcdefabcdefabcdefabcdef"\n'
    result = run_breakdown(tmp_path, "--json", toml=toml)
    assert result.returncode == 78
    (line,) = result.stderr.strip().splitlines()
    assert "'breakdown' is a command word" in line
    assert "rename the account" in line
    assert result.stdout == ""


def test_a_run_the_date_turned_under_is_seeded_again_and_run_once_more(tmp_path: Path) -> None:
    """The guard itself: a command run across UTC midnight is not trusted; the store is seeded for the new date
    and the command run again."""
    day = date(2026, 3, 20)
    dates = iter([day, day, day + timedelta(days=1), day + timedelta(days=1), day + timedelta(days=1)])
    runs: list[Path] = []

    def run(path: Path, *args: str) -> Run:
        runs.append(path)
        return subprocess.CompletedProcess(["creditbot", *args], 0, str(len(runs)), "")

    seeded = Seeded(tmp_path, today=lambda: next(dates), run=run)
    result = seeded.run("--json")
    assert result.stdout == "2"  # the second run's
    assert (seeded.day, seeded.seeds) == (day + timedelta(days=1), 2)
    assert runs == [tmp_path / "seed-1", tmp_path / "seed-2"]
    assert next(dates, None) is None  # the clock was read before and after each run


# Over the wire: a fresh database, nothing seeded and no poll before, against the fake grouped reports.

WIRE_PROVIDERS = ("openai", "anthropic", "openrouter")
WIRE_GAPS = {"openai": (3, D("1.23")), "anthropic": (5, D("0.45"))}  # days before today, USD; OpenRouter has none
WORKSPACES = {"wrkspc_main": "Production", "wrkspc_lab": "Lab"}


@pytest.fixture
def wire() -> Iterator[FakeBreakdownServer]:
    # From 70 days back to tomorrow, so that a run the UTC date turns under finds its new today too.
    today = utc_today()
    first, last = today - timedelta(days=70), today + timedelta(days=1)
    openai = month_of_lines(first, last)
    anthropic = month_of_lines(
        first,
        last,
        models=("claude-sonnet-4", "claude-haiku-4"),
        newcomer="claude-opus-4",
        projects=("wrkspc_main", "wrkspc_lab", None),
        seed=19,
    )
    openrouter = month_of_lines(first, last, models=("openai/gpt-4o", "anthropic/claude-sonnet-4"), seed=20)
    state = FakeBreakdown(openai=openai, anthropic=anthropic, openrouter=openrouter, workspaces=WORKSPACES)
    for provider, (offset, amount) in WIRE_GAPS.items():
        state.gaps[(provider, today - timedelta(days=offset))] = amount  # in the window on this date and the next
    with FakeBreakdownServer(state) as server:
        yield server


def wire_toml(server: FakeBreakdownServer) -> str:
    return "".join(
        f'[[accounts]]\nname = "{provider}"\nprovider = "{provider}"\napi_key = "{TEST_KEYS[provider]}"\n'
        f'base_url = "{server.base_url(provider)}"\n\n'
        for provider in WIRE_PROVIDERS
    )


def run_on_one_date(tmp_path: Path, server: FakeBreakdownServer, *args: str) -> tuple[date, dict[str, Any]]:
    """`creditbot breakdown --json ...` with a fresh database against the fake, and the UTC date it ran on
    (its `generated_at`): run once more, with another fresh database, when the date turned during the run."""
    for attempt in range(2):
        directory = tmp_path / f"wire-{'-'.join(args) or 'default'}-{attempt}"
        directory.mkdir()
        before = utc_today()
        result = run_breakdown(directory, "--json", *args, toml=wire_toml(server))
        assert result.returncode == 0, result.stderr
        document = json.loads(result.stdout)
        day = datetime.fromisoformat(document["generated_at"]).astimezone(UTC).date()
        if day == before:
            return day, document
    raise AssertionError("the UTC date turned twice while running one command")


def _decimal(value: float) -> Decimal:
    return D(str(value))


def assert_adds_up(account: dict[str, Any]) -> None:
    """The rows, unattributed included, add up to the total within the rounding of the JSON's 6 places."""
    rows = account["rows"]
    assert rows
    total = sum((_decimal(r["cost"]) for r in rows), D(0))
    assert abs(total - _decimal(account["total"])) <= D("0.0000005") * len(rows), account["name"]


def window_spend(server: FakeBreakdownServer, provider: str, today: date, days: int = 7) -> Decimal:
    """The fake's ungrouped spend over the last `days` days ending yesterday, to the JSON's 6 places."""
    spend = sum((server.state.spend(provider, today - timedelta(days=n)) for n in range(1, days + 1)), D(0))
    return spend.quantize(D("0.000001"))


def test_over_the_wire_the_rows_add_up_to_the_ungrouped_costs_and_the_gap_is_unattributed(
    tmp_path: Path, wire: FakeBreakdownServer
) -> None:
    today, document = run_on_one_date(tmp_path, wire)
    assert set(document) == {"generated_at", "accounts"}
    accounts = {a["name"]: a for a in document["accounts"]}
    assert list(accounts) == list(WIRE_PROVIDERS)
    for provider, account in accounts.items():
        assert (account["currency"], account["by"], account["days"], account["note"]) == ("USD", "model", 7, None)
        assert _decimal(account["total"]) == window_spend(wire, provider, today), provider
        assert_adds_up(account)
        rows = _by_key(account)
        for row in account["rows"]:
            assert set(row) == set(CONTRACT_ROW), (provider, row)
            assert row["change"] == pytest.approx(row["cost"] - row["previous_cost"], abs=1e-6)
            assert 0 <= row["share"] <= 1
        if provider in WIRE_GAPS:
            # Exactly the gap put in the window, and nothing in the 7 days before.
            gap = WIRE_GAPS[provider][1]
            assert (_decimal(rows["unattributed"]["cost"]), rows["unattributed"]["previous_cost"]) == (gap, 0.0)
            assert rows["unattributed"]["input_tokens"] is None
        else:
            assert "unattributed" not in rows  # OpenRouter's activity rows are their own total
        models = {line.model for line in getattr(wire.state, provider)}
        assert set(rows) - {"unattributed"} == models
        assert all(rows[m]["input_tokens"] for m in models), provider  # every source counts tokens by model
    assert accounts["openai"]["today"]["partial"] is True  # today's lines are there: shown apart
    assert _decimal(accounts["openai"]["today"]["total"]) == wire.state.spend("openai", today)


def test_over_the_wire_by_project_names_projects_and_workspaces(tmp_path: Path, wire: FakeBreakdownServer) -> None:
    today, document = run_on_one_date(tmp_path, wire, "--by", "project")
    openai, anthropic, openrouter = document["accounts"]
    for account in (openai, anthropic):
        assert account["by"] == "project"
        assert _decimal(account["total"]) == window_spend(wire, account["name"], today)
        assert_adds_up(account)
    assert {r["label"] for r in openai["rows"]} == {"Main app", "Batch jobs", "no project", "unattributed"}
    assert {r["label"] for r in anthropic["rows"]} == {"Production", "Lab", "Default workspace", "unattributed"}
    assert _decimal(_by_key(openai)["unattributed"]["cost"]) == WIRE_GAPS["openai"][1]
    assert (openrouter["by"], openrouter["note"]) == ("project", "no breakdown by project from openrouter")
    assert (openrouter["rows"], openrouter["total"], openrouter["today"]) == ([], None, None)
