"""Build equals validate: every ``plugbay new`` template builds into a wheel that
``plugbay validate`` accepts, and ``plugbay build`` refuses what validate would reject."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from plugbay.pdk import create_plugin
from plugbay.pdk.analyzer import validate_plugin
from plugbay.pdk.build import build_plugin
from plugbay.pdk.errors import BuildError

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("template", ["utility", "system", "integration", "extension"])
def test_each_template_builds_a_wheel_that_validates(template: str, tmp_path: Path) -> None:
    root = create_plugin(template, f"acme.t{template}", tmp_path / "src")
    built = build_plugin(root)
    result = validate_plugin(built.wheel)
    assert result.ok and result.errors == [], [f.location() + f.message for f in result.findings]
    assert result.manifest is not None and result.manifest.id == f"acme.t{template}"
    assert result.commands  # the code in the wheel was analysed, not only its manifest
    cli = subprocess.run(
        [sys.executable, "-m", "plugbay.cli", "validate", str(built.wheel)],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert f"ok acme.t{template} 0.1.0 ({template})" in cli.stdout


def test_build_refuses_code_that_fails_validates_import_check(tmp_path: Path) -> None:
    root = create_plugin("utility", "acme.broken", tmp_path / "src")
    plugin = root / "acme_broken" / "plugin.py"
    plugin.write_text(plugin.read_text() + "\nraise RuntimeError('broken at import')\n")
    assert not validate_plugin(root).ok  # validate rejects it ...
    with pytest.raises(BuildError, match="does not validate"):
        build_plugin(root)  # ... so build refuses it
    assert not (root / "dist").exists()


def test_a_damaged_wheel_does_not_validate(tmp_path: Path) -> None:
    root = create_plugin("utility", "acme.damaged", tmp_path / "src")
    wheel = build_plugin(root).wheel
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF
    wheel.write_bytes(bytes(data))
    result = validate_plugin(wheel)
    assert not result.ok and result.errors[0].code == "wheel"
