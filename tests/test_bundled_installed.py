"""The bundled plugins ship inside plugbay's wheel: a third-party plugin depends on
``utility.formatters`` by id and range alone, with plugbay installed from the wheel and
no checkout (no plugins/ directory) anywhere in sight."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

REPORT_TOML = """\
id = "acme.report"
version = "1.0.0"
type = "utility"
entry = "report:Report"

[dependencies]
"utility.formatters" = "^1.2"

[services]
requires = { formatting = "^1.0" }
"""

REPORT_PY = """\
from typing import Any

from plugbay import PluginContext, UtilityPlugin, command


class Report(UtilityPlugin):
    async def initialize(self, context: PluginContext) -> None:
        self.formatting: Any = context.services.require("formatting", "^1.0")

    @command
    async def headline(self, text: str) -> str:
        return str(await self.formatting.sentence_case(text=text))
"""

PROGRAM = """\
import asyncio, sys
from pathlib import Path

import plugbay
from plugbay import Host

assert Path(plugbay.__file__).is_relative_to(sys.argv[1]), plugbay.__file__

async def main() -> None:
    async with Host("plugins", state_dir="state", entry_points=False) as host:
        print(await host.call("acme.report", "headline", text="MEN ARE ALL ALIKE. IN WHAT WAY"))
        for pid in ("utility.formatters", "system.logging"):
            record = host.manager.record(pid)
            print(pid, record.state, record.handle.manifest.path)
        print(sorted(host.registry.ids()))

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """plugbay's wheel, built here offline from a copy of the sources, installed into a
    directory of its own (its dependencies come from this interpreter's environment)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))  # fmt: skip
    shutil.copytree(REPO / "plugins", source / "plugins",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    env = {**os.environ, "PIP_NO_INDEX": "1"}
    built = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
         str(root / "dist"), str(source)],
        capture_output=True, text=True, timeout=300, check=False, env=env,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = (root / "dist").glob("plugbay-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "plugbay/bundled/utility/formatters/plugin.toml" in names
    assert "plugbay/bundled/core/system/logging_plugin.py" in names
    site = root / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
         "--target", str(site), str(wheel)],
        capture_output=True, text=True, timeout=300, check=False, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    shutil.rmtree(source)  # nothing of the sources is left to lean on
    return site


def run_outside(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("PLUGBAY_PLUGINS", None)
    env.pop("PLUGBAY_STATE", None)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_a_plugin_depends_on_a_bundled_one_by_id_and_range_alone(
    installed: Path, tmp_path: Path
) -> None:
    plugin = tmp_path / "plugins" / "report"
    plugin.mkdir(parents=True)
    (plugin / "plugin.toml").write_text(REPORT_TOML)
    (plugin / "report.py").write_text(REPORT_PY)
    assert not (tmp_path / "plugins" / "utility").exists()

    validated = run_outside(installed, tmp_path, "-m", "plugbay.cli", "validate", str(plugin))
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "ok acme.report 1.0.0" in validated.stdout

    served = run_outside(installed, tmp_path, "-c", PROGRAM, str(installed))
    assert served.returncode == 0, served.stdout[-3000:] + served.stderr[-3000:]
    lines = served.stdout.splitlines()
    assert lines[0] == "Men are all alike. In what way"  # utility.formatters answered
    bundled = installed / "plugbay" / "bundled"
    assert lines[1] == f"utility.formatters active {bundled}/utility/formatters/plugin.toml"
    assert lines[2] == f"system.logging active {bundled}/core/system/plugin.toml"
    # only what the plugin needs was brought in: not every bundled plugin
    assert lines[3] == "['acme.report', 'system.logging', 'utility.formatters']"


@pytest.mark.slow
def test_the_operators_own_copy_of_a_bundled_plugin_wins(installed: Path, tmp_path: Path) -> None:
    plugin = tmp_path / "plugins" / "report"
    plugin.mkdir(parents=True)
    (plugin / "plugin.toml").write_text(REPORT_TOML)
    (plugin / "report.py").write_text(REPORT_PY)
    mine = tmp_path / "plugins" / "formatters"
    shutil.copytree(REPO / "plugins" / "utility" / "formatters", mine,
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    served = run_outside(installed, tmp_path, "-c", PROGRAM, str(installed))
    assert served.returncode == 0, served.stdout[-3000:] + served.stderr[-3000:]
    assert f"utility.formatters active {mine}/plugin.toml" in served.stdout


def test_only_what_a_plugin_needs_is_brought_in_and_the_operators_copy_wins() -> None:
    from plugbay.model.bundled import bundled_needed, bundled_root
    from plugbay.model.manifest import parse_manifest

    assert bundled_root() is not None
    head = 'version = "1.0.0"\ntype = "utility"\nentry = "m:P"\n'
    chat = parse_manifest(f'id = "acme.chat"\n{head}[dependencies]\n"extension.processor" = "^1"\n')
    alone = parse_manifest(f'id = "acme.alone"\n{head}')
    # what the processor needs comes with it, transitively; nothing else
    assert sorted(m.id for m in bundled_needed([chat, alone])) == [
        "extension.processor", "system.logging", "utility.formatters",
    ]  # fmt: skip
    assert bundled_needed([alone]) == []
    # a plugin directory's own utility.formatters is not replaced by the bundled one
    mine = parse_manifest(f'id = "utility.formatters"\n{head}')
    assert "utility.formatters" not in {m.id for m in bundled_needed([chat, mine])}
