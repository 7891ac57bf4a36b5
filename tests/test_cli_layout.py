"""The CLI's layout: one module per command group, each command filed under a help
panel, and the PDK never importing the CLI (the cycle cli → pdk → cli is gone)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from plugbay.cli import app

SRC = Path(__file__).resolve().parents[1] / "src" / "plugbay"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_pdk_never_imports_the_cli() -> None:
    offenders = {
        str(path.relative_to(SRC)): sorted(n for n in _imports(path) if n.startswith("plugbay.cli"))
        for path in (SRC / "pdk").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}
    # and at run time: the debugger parses key=value without loading the CLI
    code = (
        "import sys, plugbay.pdk.debug, plugbay.pdk.params; "
        "print(plugbay.pdk.params.parse_params(['n=3', 'text=007'], None, frozenset({'text'}))); "
        "print(sorted(m for m in sys.modules if m.startswith('plugbay.cli')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.splitlines() == ["{'n': 3, 'text': '007'}", "[]"]


def test_every_command_is_filed_under_a_help_panel() -> None:
    unfiled = [
        c.name or c.callback.__name__ for c in app.registered_commands if not c.rich_help_panel
    ]  # type: ignore[union-attr]
    assert unfiled == []
    # command groups (state, index, token) are filed too
    assert [g.name for g in app.registered_groups if not g.rich_help_panel] == []
    panels = {c.rich_help_panel for c in app.registered_commands}
    panels |= {g.rich_help_panel for g in app.registered_groups}
    assert panels == {"host", "plugins", "versions", "permissions", "monitoring", "API", "develop"}


def test_no_cli_module_holds_more_than_one_person_keeps_in_mind() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in (SRC / "cli").glob("*.py")}
    assert max(sizes.values()) <= 800, sizes
    assert sizes["app.py"] < 100  # it makes the app and files the groups, nothing more
