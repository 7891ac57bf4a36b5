"""Plugins for the upgrade-trial tests: a calculator whose 1.1.0 is wrong on some inputs.

1.1.0 raises on every ``a`` with ``a % 7 == 3`` and answers one too many for
``a % 5 == 0``; 1.2.0 is right again. Each version keeps a note in its durable
store (``context.storage``, a SQLite file in its data directory) on ``remember``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import psutil

CALC = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def add(self, a: int, b: int, token: str = "") -> int:
        {body}

    @command
    def remember(self, text: str) -> int:
        count = (self.context.storage.get("count") or 0) + 1
        self.context.storage.set("count", count)
        self.context.storage.set(f"note-{{count}}", text)
        return count

    @command
    def recalled(self) -> int:
        return self.context.storage.get("count") or 0
"""

RIGHT = "return a + b"
WRONG = (
    "if a % 7 == 3:\n            raise ValueError(f'cannot add {a}')\n"
    "        return a + b + (1 if a % 5 == 0 else 0)"
)

MANIFEST = """id = "acme.calc"
version = "{version}"
type = "utility"
entry = "main:P"
secret-parameters = ["token"]
"""


def calc(directory: Path, version: str, *, wrong: bool = False) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "plugin.toml").write_text(MANIFEST.format(version=version))
    body = WRONG if wrong else RIGHT
    (directory / "main.py").write_text(textwrap.dedent(CALC.format(body=body)))
    return directory


def expected_wrong(a: int, b: int) -> int | None:
    """What 1.1.0 answers (None: it raises)."""
    if a % 7 == 3:
        return None
    return a + b + (1 if a % 5 == 0 else 0)


def ended(process: psutil.Process) -> bool:
    """Whether a trial's worker has exited (a zombie counts: its reaping is the zygote's)."""
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
