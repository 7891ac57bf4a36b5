"""``plugbay validate`` of one plugin sees a conflict with another plugin of the plugins
directory it is pointed at: a host loads one version of each plugin for all that need it,
so two plugins whose ranges each resolve alone may still not load together."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests._cli import plugbay


def _plugin(directory: Path, pid: str, version: str, needs_base: str | None = None) -> Path:
    directory.mkdir(parents=True)
    extra = f'[dependencies]\n"acme.base" = "{needs_base}"\n' if needs_base else ""
    (directory / "plugin.toml").write_text(
        f'id = "{pid}"\nversion = "{version}"\ntype = "utility"\nentry = "main:P"\n{extra}'
    )
    (directory / "main.py").write_text(
        "from plugbay import UtilityPlugin\n\n\nclass P(UtilityPlugin):\n    pass\n"
    )
    return directory


def _plugins_dir(tmp_path: Path) -> Path:
    """acme.base 1.0.0 and 2.0.0, and acme.m, which needs acme.base ^1."""
    plugins = tmp_path / "plugins"
    _plugin(plugins / "base1", "acme.base", "1.0.0")
    _plugin(plugins / "base2", "acme.base", "2.0.0")
    _plugin(plugins / "m", "acme.m", "1.0.0", "^1")
    return plugins


def _validate(path: Path, cwd: Path) -> list[dict[str, Any]]:
    done = plugbay("validate", str(path), "--no-import", "--json", cwd=cwd)
    assert done.returncode == 1, (done.stdout, done.stderr)
    [result] = json.loads(done.stdout)
    return [f for f in result["findings"] if f["severity"] == "error"]


def test_a_plugin_the_host_would_leave_out_for_another_is_an_error(tmp_path: Path) -> None:
    """`validate plugins/v` said ok, and `plugbay run` then left acme.v out ("'acme.m'
    1.0.0 requires 'acme.base' ^1 and 'acme.v' 1.0.0 requires 'acme.base' ^2")."""
    plugins = _plugins_dir(tmp_path)
    v = _plugin(plugins / "v", "acme.v", "1.0.0", "^2")
    [error] = _validate(v, tmp_path)
    assert error["code"] == "dependency" and error["file"].endswith("v/plugin.toml")
    assert error["message"] == (
        "beside the plugins the host knows, it cannot be loaded: 'acme.m' 1.0.0 requires "
        "'acme.base' ^1 and 'acme.v' 1.0.0 requires 'acme.base' ^2; versions found: 2.0.0, "
        "1.0.0 — none satisfies every requirement"
    )
    assert "a host loads one version of each plugin for all that need it" in error["hint"]


def test_a_plugin_that_would_push_another_out_names_both(tmp_path: Path) -> None:
    """acme.b sorts before acme.m: the host keeps acme.b and leaves acme.m out, which a
    validate of acme.b (outside the plugins directory) did not say at all."""
    _plugins_dir(tmp_path)
    b = _plugin(tmp_path / "new" / "b", "acme.b", "1.0.0", "^2")
    [error] = _validate(b, tmp_path)
    assert error["message"].startswith(
        "beside it, 'acme.m', which the host knows, could no longer be loaded: 'acme.b' 1.0.0 "
        "requires 'acme.base' ^2 and 'acme.m' 1.0.0 requires 'acme.base' ^1"
    )


def test_plugins_that_agree_validate(tmp_path: Path) -> None:
    plugins = _plugins_dir(tmp_path)
    fits = _plugin(plugins / "w", "acme.w", "1.0.0", ">=1")
    done = plugbay("validate", str(fits), "--no-import", cwd=tmp_path)
    assert done.returncode == 0, (done.stdout, done.stderr)


def test_one_process_validating_again_after_an_edit_sees_the_edit(tmp_path: Path) -> None:
    """The analyzer keeps its last resolution (each plugin of a directory resolves the
    same set): an editor's validate-on-save, in one process, must not be answered from it."""
    from plugbay.pdk.analyzer import known_plugins, validate_plugin

    plugins = _plugins_dir(tmp_path)
    v = _plugin(plugins / "v", "acme.v", "1.0.0", "^1")

    def errors() -> list[str]:
        known = known_plugins([plugins])
        result = validate_plugin(v, known=known, import_check=False)
        return [f.message for f in result.findings if f.severity == "error"]

    assert errors() == [] and errors() == []
    (v / "plugin.toml").write_text((v / "plugin.toml").read_text().replace('"^1"', '"^2"'))
    assert any("cannot be loaded" in message for message in errors())
