"""``plugbay load ID`` and ``plugbay unload ID [--cascade]`` against a real ``plugbay run``:
a plugin that failed for a missing dependency starts once the dependency is added
(under no --watch), unload stops one until load brings it back, a plugin others need
is not stopped without --cascade; with no host running both say so and exit 1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests._cli import plugbay
from tests._running import plugbay_run
from tests.conftest import PluginFactory

NEEDS_CALC = '[dependencies]\n"acme.calc" = "^1"\n'


def _state(plugin_id: str, cwd: Path) -> Any:
    done = plugbay("info", plugin_id, "--json", cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)["state"]


def _ping(plugin_id: str, cwd: Path) -> str:
    done = plugbay("call", plugin_id, "ping", cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


def test_a_plugin_missing_a_dependency_starts_with_load_once_it_is_added(
    tmp_path: Path, plugins: PluginFactory
) -> None:
    plugins("acme.user", extra=NEEDS_CALC)
    with plugbay_run(tmp_path):  # no --watch: nothing notices the new directory
        assert _state("acme.user", tmp_path) == "failed"
        idle = plugbay("unload", "acme.user", cwd=tmp_path)
        assert idle.returncode == 0 and "not running (failed)" in idle.stdout, idle.stdout
        plugins("acme.calc")
        done = plugbay("load", "acme.user", cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "acme.user: loaded 1.0.0 (with acme.calc)" in done.stdout
        assert _ping("acme.user", tmp_path) == "pong from acme.user 1.0.0"
        assert _state("acme.calc", tmp_path) == "active"
        again = plugbay("load", "acme.user", cwd=tmp_path)
        assert again.returncode == 0 and "already active" in again.stdout, again.stdout


def test_unload_stops_a_plugin_until_load_brings_it_back(
    tmp_path: Path, plugins: PluginFactory
) -> None:
    plugins("acme.calc")
    plugins("acme.user", extra=NEEDS_CALC)
    with plugbay_run(tmp_path):
        refused = plugbay("unload", "acme.calc", cwd=tmp_path)
        assert refused.returncode == 1
        assert "acme.user" in refused.stdout + refused.stderr
        assert _state("acme.calc", tmp_path) == "active"  # nothing was stopped

        done = plugbay("unload", "acme.user", cwd=tmp_path)
        assert done.returncode == 0 and "acme.user: unloaded" in done.stdout, done.stdout
        assert _state("acme.user", tmp_path) == "stopped"
        back = plugbay("load", "acme.user", "--json", cwd=tmp_path)
        assert json.loads(back.stdout)["started"] == ["acme.user"], back.stdout
        assert _ping("acme.user", tmp_path) == "pong from acme.user 1.0.0"

        both = plugbay("unload", "acme.calc", "--cascade", "--json", cwd=tmp_path)
        assert json.loads(both.stdout)["stopped"] == ["acme.user", "acme.calc"], both.stdout
        assert (_state("acme.user", tmp_path), _state("acme.calc", tmp_path)) == (
            "stopped",
            "stopped",
        )


def test_an_unknown_id_is_refused_with_the_closest_ids(
    tmp_path: Path, plugins: PluginFactory
) -> None:
    plugins("acme.calc")
    with plugbay_run(tmp_path):
        for command in ("load", "unload"):
            done = plugbay(command, "acme.calk", cwd=tmp_path)
            assert done.returncode == 1
            assert "acme.calc" in done.stdout + done.stderr, (command, done.stderr)


def test_with_no_host_running_both_say_so_and_exit_1(
    tmp_path: Path, plugins: PluginFactory
) -> None:
    plugins("acme.calc")
    for command, then in (("load", "'plugbay run' starts every plugin"),
                          ("unload", "'plugbay disable acme.calc'")):  # fmt: skip
        done = plugbay(command, "acme.calc", cwd=tmp_path)
        said = " ".join((done.stdout + done.stderr).split())
        assert done.returncode == 1, said
        assert "no host is running" in said and then in said, said
    assert not (tmp_path / ".plugbay" / "host.json").exists()  # none was started for it
