"""``plugbay config ID`` shows each key's limits as the operator writes a value on the
command line: JSON (``default true``, the spelling ``key=true`` takes, not Python's
``True``) and an integer key's bounds whole (``minimum 1``, as a refusal says
"at least 1", not ``1.0``)."""

from __future__ import annotations

from pathlib import Path

from tests._cli import PLUGBAY, cli_env, run_cli
from tests.conftest import PluginFactory

SCHEMA = """
[config.loud]
type = "boolean"
default = true

[config.repeat]
type = "integer"
default = 2
minimum = 1
maximum = 5
"""


def test_a_key_s_limits_are_shown_as_the_command_line_takes_them(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.echo", extra=SCHEMA)
    shown = run_cli(
        [*PLUGBAY, "config", "acme.echo"], cwd=tmp_path, env=cli_env({"COLUMNS": "200"})
    )
    assert shown.returncode == 0, shown.stderr
    rows = {line.split()[0]: line for line in shown.stdout.splitlines() if line.strip()}
    assert "default true" in rows["loud"] and "True" not in rows["loud"]
    assert "default 2, minimum 1, maximum 5" in rows["repeat"], rows["repeat"]
    assert "1.0" not in rows["repeat"]
