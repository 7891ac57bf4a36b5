"""What ``plugbay info`` and ``plugbay grants`` tell the operator to run for a permission
a plugin asks for and nothing grants: a command that works. A network ask no sandbox can
honour (no port, or a host name) is one ``plugbay grant`` refuses, so the hint names the
grant to write instead, and trusting the plugin inline."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._cli import PLUGBAY, cli_env, plugbay, run_cli
from tests.conftest import PluginFactory

ANY_PORT = '[permissions]\nnetwork = ["127.0.0.1:*"]\nenv = ["HOME"]\n'


def shown(*args: str, cwd: Path) -> str:
    # wide enough that a hint is not broken across lines
    answer = run_cli([*PLUGBAY, *args], cwd=cwd, env=cli_env({"COLUMNS": "600"}))
    assert answer.returncode == 0, answer.stderr
    return " ".join(answer.stdout.split())


@pytest.mark.parametrize("command", [("info", "acme.gate"), ("grants",)])
def test_an_ask_plugbay_grant_refuses_is_not_what_the_hint_tells_the_operator_to_run(
    plugins: PluginFactory, tmp_path: Path, command: tuple[str, ...]
) -> None:
    plugins("acme.gate", extra=ANY_PORT)
    # what a hint of 'approve with plugbay grant …' would have the operator run: refused
    refused = plugbay("grant", "acme.gate", "network:127.0.0.1:*", cwd=tmp_path)
    assert refused.returncode == 2 and "names no port" in refused.stderr

    text = shown(*command, cwd=tmp_path)
    assert "plugbay grant acme.gate network:127.0.0.1:*" not in text
    assert "'plugbay grant' refuses it as written" in text
    assert "network:127.0.0.1:6667" in text  # the grant to write instead
    assert 'inline = ["acme.gate"] under [policy]' in text  # or trust it


def test_an_ask_plugbay_grant_takes_is_approved_with_that_grant(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.gate", extra=ANY_PORT)
    text = shown("info", "acme.gate", cwd=tmp_path)
    assert "pending: env:HOME — approve with 'plugbay grant acme.gate env:HOME'" in text
    assert plugbay("grant", "acme.gate", "env:HOME", cwd=tmp_path).returncode == 0
