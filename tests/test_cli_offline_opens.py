"""With no host running, ``plugbay list`` and ``plugbay info`` open the state database
once, read-only, and show what they showed when they opened it once per question."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from plugbay.cli.app import app
from plugbay.state import StateStore
from tests.conftest import PluginFactory
from tests.test_cli_offline import used_by_a_host


def opened(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Each open of a state database from now on (True: read-only)."""
    opens: list[bool] = []
    real = StateStore.__init__

    def counted(self: StateStore, *args: Any, **kwargs: Any) -> None:
        opens.append(bool(kwargs.get("read_only")))
        real(self, *args, **kwargs)

    monkeypatch.setattr(StateStore, "__init__", counted)
    return opens


def run(cwd: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.chdir(cwd)
    result = CliRunner().invoke(app, [*args, "--json"], prog_name="plugbay")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


async def test_list_and_info_open_the_state_once_read_only(
    plugins: PluginFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``list`` opened it twice (once to throw its disabled plugins away), ``info`` three
    times."""
    state = tmp_path / "state"
    await used_by_a_host(plugins, tmp_path, state)
    where = ["--state", str(state), "-p", str(plugins.root)]
    opens = opened(monkeypatch)

    rows = {r["id"]: r for r in run(tmp_path, monkeypatch, "list", *where)}
    assert opens == [True]
    assert rows["acme.other"]["state"] == "disabled"
    assert rows["acme.other"]["reason"] == "maintenance"
    assert rows["acme.calc"]["state"] == "not running"

    opens.clear()
    info = run(tmp_path, monkeypatch, "info", "acme.other", *where)
    assert opens == [True]
    assert (info["state"], info["reason"], info["version"]) == ("disabled", "maintenance", "1.0.0")
    assert info["versions_known"] == ["1.0.0"]
    calc = run(tmp_path, monkeypatch, "info", "acme.calc", *where)
    assert (calc["state"], calc["reason"]) == ("not running", None)
