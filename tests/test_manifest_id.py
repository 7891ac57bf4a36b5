"""A plugin id names its owner, then the plugin (``acme.formatter``): ``plugbay new``
refuses an id without a dot, ``plugbay validate`` warns about one at its line with the
form to write, and the host still loads one (plugins installed before the rule)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from plugbay.pdk import create_plugin
from tests._cli import plugbay
from tests.conftest import BUNDLED, PluginFactory

FORMATTER = """
# a plugin written before ids had to be dotted
id = "formatter"
version = "1.0.0"
type = "utility"
entry = "main:P"
"""


def id_findings(stdout: str) -> list[dict[str, Any]]:
    [result] = json.loads(stdout)
    return [f for f in result["findings"] if f["code"] == "id"]


def test_validate_warns_at_the_id_line_of_an_undotted_id(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("formatter", manifest=FORMATTER.lstrip(), dirname="formatter")
    shown = plugbay("validate", "plugins/formatter", "--no-import", cwd=tmp_path)
    # a warning: the host loads it, so validate (and plugbay build) do not refuse it
    assert shown.returncode == 0, shown.stdout + shown.stderr
    lines = shown.stdout.splitlines()
    at = lines.index(
        "plugins/formatter/plugin.toml:2: warning[id] the plugin id 'formatter' has no dot: "
        "a plugin id names its owner, then the plugin"
    )
    assert lines[at + 1].strip() == 'id = "formatter"'
    assert lines[at + 2].strip().startswith('fix: write id = "acme.formatter" with your')
    assert "0 errors, 1 warning" in shown.stdout

    as_json = plugbay("validate", "plugins/formatter", "--no-import", "--json", cwd=tmp_path)
    [finding] = id_findings(as_json.stdout)
    assert (finding["severity"], finding["line"]) == ("warning", 2)
    assert 'id = "acme.formatter"' in finding["hint"]


def test_validate_warns_at_the_id_line_of_a_pyproject_plugin(tmp_path: Path) -> None:
    package = create_plugin("utility", "acme.formatter", tmp_path / "formatter")
    pyproject = package / "pyproject.toml"
    # the id and the entry point's name, both undotted: nothing else is wrong
    pyproject.write_text(pyproject.read_text().replace('"acme.formatter"', '"formatter"'))
    shown = plugbay("validate", str(package), "--no-import", "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stdout
    [result] = json.loads(shown.stdout)
    assert [f["severity"] for f in result["findings"]] == ["warning"], result["findings"]
    [finding] = id_findings(shown.stdout)
    id_line = pyproject.read_text().splitlines().index('id = "formatter"') + 1
    assert finding["line"] == id_line
    assert "and its entry point name to match" in finding["hint"]


def test_a_dotted_id_gets_no_such_warning(tmp_path: Path) -> None:
    shutil.copytree(BUNDLED / "utility" / "formatters", tmp_path / "formatters")
    shown = plugbay("validate", "formatters", "--no-import", "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stdout
    assert id_findings(shown.stdout) == []


async def test_the_host_still_loads_a_plugin_with_an_undotted_id(
    plugins: PluginFactory, make_host: Callable[..., Any]
) -> None:
    plugins("formatter", manifest=FORMATTER.lstrip(), dirname="formatter")
    (plugins.root / "formatter" / "main.py").write_text(
        "from plugbay import UtilityPlugin, command\n\n\nclass P(UtilityPlugin):\n"
        "    @command\n    def ping(self) -> str:\n        return 'pong from formatter'\n"
    )
    host = make_host()
    await host.start()
    try:
        assert host.problems == []
        assert await host.call("formatter", "ping") == "pong from formatter"
    finally:
        await host.stop()
