"""``plugbay uninstall`` and ``plugbay env list`` name files as the other commands do:
under ``--state`` and ``--plugins`` as the user named them, not as the host resolved them."""

from __future__ import annotations

import json
from pathlib import Path

from tests._cli import plugbay

CODE = "from plugbay import UtilityPlugin\n\n\nclass P(UtilityPlugin):\n    pass\n"


def _plugin(directory: Path, pid: str, extra: str = "") -> Path:
    directory.mkdir(parents=True)
    (directory / "plugin.toml").write_text(
        f'id = "{pid}"\nversion = "1.0.0"\ntype = "utility"\nentry = "main:P"\n{extra}'
    )
    (directory / "main.py").write_text(CODE)
    return directory


def test_uninstall_names_the_data_it_keeps_under_state_as_given(tmp_path: Path) -> None:
    """`uninstall --json` said "data": "/tmp/…/.plugbay/data/acme.y" where docs/cli-json.md
    and the other commands say ".plugbay/data/acme.y"."""
    (tmp_path / "plugins").mkdir()
    source = _plugin(tmp_path / "src" / "y", "acme.y")
    installed = plugbay("install", str(source), cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    done = plugbay("uninstall", "acme.y", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["data"] == ".plugbay/data/acme.y"
    assert plugbay("install", str(source), cwd=tmp_path).returncode == 0
    said = plugbay("uninstall", "acme.y", "--state", ".plugbay", cwd=tmp_path)
    assert "its data is kept in .plugbay/data/acme.y (--purge removes it)" in said.stdout


def test_uninstall_of_a_plugins_directory_plugin_names_its_file_as_given(tmp_path: Path) -> None:
    _plugin(tmp_path / "plugins" / "y", "acme.y")
    done = plugbay("uninstall", "acme.y", "--json", cwd=tmp_path)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert json.loads(done.stdout)["error"]["where"] == "plugins/y/plugin.toml"


def test_env_list_notes_name_the_manifest_as_given(tmp_path: Path) -> None:
    """The notes of `env list` named /tmp/…/plugins/x/plugin.toml, its paths
    `.plugbay/envs/…`: one command, two spellings."""
    _plugin(tmp_path / "plugins" / "x", "acme.x", 'python-dependencies = ["plugbay>=99"]\n')
    done = plugbay("env", "list", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    [note] = json.loads(done.stdout)["notes"]
    assert "(at plugins/x/plugin.toml:" in note and str(tmp_path) not in note
    text = plugbay("env", "list", "--plugins", "./plugins", cwd=tmp_path)
    assert "(at plugins/x/plugin.toml:" in text.stderr and str(tmp_path) not in text.stderr
