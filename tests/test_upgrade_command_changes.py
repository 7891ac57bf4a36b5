"""An upgrade that changes what a command's callers may send says so: each command
removed, and each parameter renamed, removed, newly required or of another type, in the
upgrade's output, its ``--json``, and the history entry (a note, not a refusal); a dry
run, which loads no new code, says the comparison is made at the swap."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from plugbay import UtilityPlugin, command
from plugbay.api._command import command_specs
from plugbay.runtime.command_changes import command_changes
from tests._cli import plugbay
from tests._running import plugbay_run
from tests.test_cli_json import documented, same_shape

OLD = """
from plugbay import UtilityPlugin, command

class Greeter(UtilityPlugin):
    @command
    def greet(self, name: str) -> str:
        return f"Hello, {name}!"

    @command
    def shout(self, text: str, times: int = 1) -> str:
        return text.upper() * times

    @command
    def wave(self) -> str:
        return "wave"
"""

NEW = """
from plugbay import UtilityPlugin, command

class Greeter(UtilityPlugin):
    @command
    def greet(self, who: str) -> str:
        return f"Hello again, {who}!"

    @command
    def shout(self, text: str, times: int) -> str:
        return text.upper() * times
"""


def _greeter(directory: Path, version: str, code: str) -> Path:
    directory.mkdir(parents=True)
    (directory / "plugin.toml").write_text(
        f'id = "acme.greeter"\nversion = "{version}"\ntype = "utility"\nentry = "greeter:Greeter"\n'
    )
    (directory / "greeter.py").write_text(textwrap.dedent(code))
    return directory


def test_an_upgrade_names_each_command_whose_callers_break_on_a_running_host(
    tmp_path: Path,
) -> None:
    _greeter(tmp_path / "plugins" / "acme" / "greeter", "1.1.0", OLD)
    new = _greeter(tmp_path / "v1.4.0", "1.4.0", NEW)
    with plugbay_run(tmp_path, "--plugins", "plugins"):
        called = plugbay("call", "acme.greeter", "greet", "name=Ada", cwd=tmp_path)
        assert called.stdout.strip() == "Hello, Ada!", called.stderr
        installed = plugbay("install", str(new), cwd=tmp_path)
        assert installed.returncode == 0, installed.stderr

        dry = plugbay("upgrade", "acme.greeter", "1.4.0", "--dry-run", cwd=tmp_path)
        assert dry.returncode == 0, dry.stderr
        said = " ".join(dry.stdout.split())
        assert "acme.greeter: would move 1.1.0 → 1.4.0" in said
        assert "compares them when the new version is loaded, at the swap" in said
        dry = plugbay("upgrade", "acme.greeter", "1.4.0", "--dry-run", "--json", cwd=tmp_path)
        assert json.loads(dry.stdout)["command_changes"] is None, dry.stderr

        up = plugbay("upgrade", "acme.greeter", "1.4.0", cwd=tmp_path)
        assert up.returncode == 0, up.stderr
        said = " ".join(up.stdout.split())
        assert "acme.greeter: moved 1.1.0 → 1.4.0" in said
        assert "acme.greeter greet: parameter 'name' is now 'who'" in said
        assert "acme.greeter shout: parameter 'times' (int) is now required" in said
        assert "acme.greeter command 'wave' is gone" in said

        # what the note said a caller still passing 'name' gets, it gets
        called = plugbay("call", "acme.greeter", "greet", "name=Ada", cwd=tmp_path)
        assert called.returncode != 0
        assert "has no parameter 'name'" in " ".join(called.stderr.split())
        called = plugbay("call", "acme.greeter", "greet", "who=Ada", cwd=tmp_path)
        assert called.stdout.strip() == "Hello again, Ada!", called.stderr

        history = plugbay("history", "acme.greeter", "--json", cwd=tmp_path)
        upgrade = next(e for e in json.loads(history.stdout) if e["action"] == "upgrade")
        kept = {(c["command"], c["change"]) for c in upgrade["details"]["command_changes"]}
        assert kept == {
            ("greet", "parameter renamed"),
            ("shout", "parameter required"),
            ("wave", "command removed"),
        }

        # back, and up again with --json: the same changes, in the documented shape
        back = plugbay("rollback", "acme.greeter", cwd=tmp_path)
        assert back.returncode == 0, back.stderr
        up = plugbay("upgrade", "acme.greeter", "1.4.0", "--json", cwd=tmp_path)
        assert up.returncode == 0, up.stderr
        answer = json.loads(up.stdout)
        same_shape(answer, documented()["upgrade"], "upgrade")
        renamed = answer["command_changes"]["acme.greeter"][0]
        assert (renamed["command"], renamed["parameter"], renamed["now"]) == (
            "greet",
            "name",
            "who",
        )


class Before(UtilityPlugin):
    @command
    def count(self, n: int, step: int = 1) -> int:
        return n + step

    @command
    def same(self, a: str) -> str:
        return a


class After(UtilityPlugin):
    @command
    def count(self, n: str, start: bool) -> int:
        return int(n) + start

    @command
    def same(self, a: str) -> str:
        return a * 2


class Renamed(UtilityPlugin):
    @command
    def count(self, n: int, by: int) -> int:
        return n + by

    @command
    def same(self, a: str) -> str:
        return a


def test_a_type_changed_a_parameter_gone_and_a_new_required_one_are_each_named() -> None:
    changes = command_changes(command_specs(Before), command_specs(After))
    assert [(c["change"], c["parameter"], c["was"], c["now"]) for c in changes] == [
        ("parameter type", "n", "int", "str"),
        ("parameter removed", "step", "int", None),
        ("parameter required", "start", None, "required"),
    ]
    renamed = command_changes(command_specs(Before), command_specs(Renamed))
    assert [(c["change"], c["parameter"], c["was"], c["now"]) for c in renamed] == [
        ("parameter renamed", "step", "step", "by"),
        ("parameter required", "by", "optional", "required"),
    ]
    assert changes[1]["note"] == (
        "count: parameter 'step' is gone: a caller passing it now gets \"has no parameter 'step'\""
    )
    assert command_changes(command_specs(Before), command_specs(Before)) == []
