"""Architecture rules that must hold as the code grows."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHAT_SDKS = ("discord", "slack_bolt", "slack_sdk", "adapters")
COMPOSITION_ROOT = ROOT / "bot" / "app.py"  # the one module that wires adapters in
MAX_LINES = 400
SOURCES = sorted([*(ROOT / "bot").rglob("*.py"), *(ROOT / "adapters").rglob("*.py")])


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_modules(path: Path, *, runtime_only: bool = False) -> set[str]:
    """Every module a file imports (lazy imports inside functions included); `runtime_only` leaves out the
    imports made for type checking alone."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped: set[int] = set()
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and _type_checking_only(node):
                skipped.update(id(child) for child in ast.walk(node))
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            # `from bot import app` imports the module bot.app
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


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
        assert not {
            m
            for m in imported
            if m.startswith(("bot.providers", "bot.store", "bot.forecast", "bot.monitor", "bot.views", "httpx"))
        }, path


def test_adapters_never_reach_through_the_handler() -> None:
    """Adapters use the handler's port (account names, parse, run, kv), never its monitor or store."""
    for path in (ROOT / "adapters").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        reached = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        assert not reached & {"monitor", "store"}, path


def test_no_import_cycles() -> None:
    modules = {module_name(path): path for path in SOURCES}
    graph = {
        name: {m for m in imported_modules(path, runtime_only=True) if m in modules and m != name}
        for name, path in modules.items()
    }
    # A package's __init__ is imported with each of its modules: an edge to bot.store.readings is one to
    # bot.store too, which is not a cycle of the code, so only module-to-module edges count.
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in graph[node]:
            if state.get(target) == 1:
                cycles.append([*trail[trail.index(target) :], target] if target in trail else [node, target])
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_no_module_is_too_long_to_hold() -> None:
    long = {str(p.relative_to(ROOT)): n for p in SOURCES if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_pure_modules_import_no_io() -> None:
    code = (
        "import sys, bot.alerts, bot.forecast, bot.history, bot.messages, bot.formatting, bot.models\n"
        "io = ('httpx', 'sqlalchemy', 'aiohttp', 'bot.providers', 'bot.store', 'bot.monitor')\n"
        "print(','.join(sorted(m for m in sys.modules if m.startswith(io))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == ""


def test_cli_start_does_not_import_heavy_modules() -> None:
    code = (
        "import sys, bot.cli\n"
        "heavy = ('matplotlib', 'alembic', 'discord', 'slack_bolt', 'httpx', 'sqlalchemy', 'pydantic')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == ""


def test_the_migrations_have_exactly_one_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from bot.store import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert len(ScriptDirectory.from_config(config).get_heads()) == 1
