"""Architecture rules that must hold as the code grows."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHAT_SDKS = ("discord", "slack_bolt", "slack_sdk", "adapters")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


COMPOSITION_ROOT = ROOT / "bot" / "cli.py"  # the one module that wires adapters in


def test_core_never_imports_a_chat_sdk_or_an_adapter() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            m
            for m in imported_modules(path)
            if m.split(".")[0] in CHAT_SDKS and not (path == COMPOSITION_ROOT and m.startswith("adapters."))
        )
        for path in (ROOT / "bot").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_adapters_hold_no_provider_or_store_logic() -> None:
    for path in (ROOT / "adapters").rglob("*.py"):
        imported = imported_modules(path)
        assert not {m for m in imported if m.startswith(("bot.providers", "bot.store", "bot.forecast", "httpx"))}


def test_cli_start_does_not_import_heavy_modules() -> None:
    code = (
        "import sys, bot.cli\n"
        "heavy = ('matplotlib', 'alembic', 'discord', 'slack_bolt', 'httpx', 'sqlalchemy', 'pydantic')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == ""
