"""The package's shape: parts imported one way, modules one person can keep in mind.

DESIGN.md's layering is declared as import contracts in pyproject.toml and
checked here with import-linter; module size and function complexity are held
to the bounds STYLE.md names (radon's cyclomatic complexity). The PDK's plugin
templates are files a plugin author starts from, not plugbay's own code.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from radon.complexity import cc_visit
from radon.visitors import Class

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "plugbay"
TEMPLATES = SRC / "pdk" / "templates"
MAX_LINES = 800
MAX_COMPLEXITY = 15


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if not p.is_relative_to(TEMPLATES))


def test_the_parts_import_one_way() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run(
        [str(lint), "--no-cache"], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert out.returncode == 0, out.stdout + out.stderr
    summary = re.search(r"Contracts: (\d+) kept, (\d+) broken", out.stdout)
    assert summary is not None, out.stdout + out.stderr
    kept, broken = map(int, summary.groups())
    assert broken == 0 and kept >= 3, out.stdout


def test_no_module_is_over_800_lines() -> None:
    modules = _modules()
    assert len(modules) > 50  # the walk found the package, not an empty directory
    sizes = {str(p.relative_to(SRC)): len(p.read_text().splitlines()) for p in modules}
    over = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert not over, f"split these modules by concern: {over}"


def _functions(blocks: Iterable[Any]) -> Iterator[Any]:
    """Every function, method and nested function radon measured (methods come flat;
    a class's own figure sums its methods, so the methods are what is held)."""
    for block in blocks:
        if isinstance(block, Class):
            continue
        yield block
        yield from _functions(block.closures)


def test_no_function_is_above_complexity_15() -> None:
    over = []
    measured = 0
    for path in _modules():
        for item in _functions(cc_visit(path.read_text())):
            measured += 1
            if item.complexity > MAX_COMPLEXITY:
                over.append(
                    f"{path.relative_to(SRC)}:{item.lineno} {item.fullname} ({item.complexity})"
                )
    assert measured > 500  # every function and method was measured
    assert not over, "break these into named steps:\n" + "\n".join(over)
