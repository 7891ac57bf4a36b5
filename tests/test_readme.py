"""The README's plugin author quick start works exactly as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from plugbay.runtime.host import Host

README = Path(__file__).resolve().parent.parent / "README.md"


def blocks() -> dict[str, str]:
    text = README.read_text()
    section = text.split("## Write a plugin (quick start)", 1)[1].split("\n## ", 1)[0]
    found = re.findall(r"`([^`]+)`:\n\n```\w+\n(.*?)```", section, re.S)
    return {Path(name).name: body for name, body in found}


def test_readme_starts_with_the_two_commands() -> None:
    code = README.read_text().split("```", 2)[1]
    assert "make run" in code.splitlines()[1] and "make test" in code.splitlines()[2]


def write_quick_start(root: Path) -> Path:
    directory = root / "plugins" / "acme" / "greeter"
    directory.mkdir(parents=True)
    for name, body in blocks().items():
        (directory / name).write_text(body)
    return directory


def test_quick_start_is_complete_under_30_lines_and_validates(tmp_path: Path) -> None:
    files = blocks()
    assert set(files) == {"plugin.toml", "greeter.py"}
    assert sum(len(body.strip().splitlines()) for body in files.values()) < 30
    result = subprocess.run(
        [sys.executable, "-m", "plugbay.cli", "validate", str(write_quick_start(tmp_path))],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


async def test_quick_start_plugin_serves(tmp_path: Path) -> None:
    write_quick_start(tmp_path)
    async with Host(tmp_path / "plugins", state_dir=tmp_path / "state", entry_points=False) as host:
        assert (
            await host.call("acme.greeter", "greet", name="Ada", times=2)
            == "Hello, Ada! Hello, Ada!"
        )
