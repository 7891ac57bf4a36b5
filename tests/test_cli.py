"""The plugbay command, run as a user runs it: a real process, its output and exit code."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from plugbay.state import StateStore
from tests._cli import PLUGBAY, cli_env, plugbay, run_cli, start_plugbay
from tests.conftest import PluginFactory


@pytest.fixture
def workdir(plugins: PluginFactory, tmp_path: Path) -> Path:
    plugins(
        "acme.calc",
        """
        from plugbay import UtilityPlugin, command

        class P(UtilityPlugin):
            @command
            def add(self, a: int, b: int = 1) -> int:
                \"\"\"Add two integers.\"\"\"
                return a + b

            @command
            def echo(self, text: str) -> str:
                return text

            @command
            def names(self) -> list[str]:
                return ["[bold]x[/]"]
        """,
        extra='[config.tags]\ntype = "array"\ndefault = ["a", "b"]\n',
    )
    plugins("acme.bad", "raise RuntimeError('boom')\n")
    return tmp_path


def test_help_lists_every_command(tmp_path: Path) -> None:
    result = plugbay("--help", cwd=tmp_path)
    assert result.returncode == 0
    for name in (
        "run", "list", "info", "call", "deps", "validate", "enable", "disable", "history",
        "grant", "revoke",
    ):  # fmt: skip
        assert name in result.stdout


def test_list_without_a_host_says_so_and_starts_nothing(workdir: Path) -> None:
    result = plugbay("list", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert f"no host is running on {workdir / '.plugbay'}" in " ".join(result.stderr.split())
    assert "acme.calc" in result.stdout and "not running" in result.stdout
    assert "active" not in result.stdout and "failed" not in result.stdout
    assert not (workdir / ".plugbay").exists()  # nothing started, nothing created


def test_a_table_piped_to_another_command_is_never_cut(
    workdir: Path, plugins: PluginFactory
) -> None:
    """No terminal, no COLUMNS: a table keeps its natural width ('plugbay list | grep ID'),
    where it was cut to 80 columns with ellipses."""
    long_id = "acme.a-plugin-with-a-rather-long-name-for-eighty-columns"
    plugins(long_id)
    listed = run_cli([*PLUGBAY, "list"], cwd=workdir, env=cli_env(drop=["COLUMNS"]))
    assert listed.returncode == 0, listed.stderr
    assert long_id in listed.stdout and "not running" in listed.stdout
    assert "…" not in listed.stdout
    assert max(len(line) for line in listed.stdout.splitlines()) > 80


def test_list_json(workdir: Path) -> None:
    assert plugbay("disable", "acme.bad", "--reason", "broken", cwd=workdir).returncode == 0
    result = plugbay("list", "--json", cwd=workdir)
    rows = {r["id"]: r for r in json.loads(result.stdout)}
    assert rows["acme.calc"]["state"] == "not running" and rows["acme.calc"]["source"] == "disk"
    assert rows["acme.bad"]["state"] == "disabled" and rows["acme.bad"]["reason"] == "broken"


def test_run_once_shows_state_and_failure_reason(workdir: Path) -> None:
    result = plugbay("run", "--once", cwd=workdir)
    assert "acme.calc" in result.stdout and "active" in result.stdout
    assert "failed: plugin 'acme.bad': importing 'main' raised RuntimeError: boom" in result.stdout


def test_call_converts_text_to_the_declared_types(workdir: Path) -> None:
    result = plugbay("call", "acme.calc", "add", "a=40", "b=2", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"
    result = plugbay("call", "acme.calc", "echo", "text=123", "--json", cwd=workdir)
    assert json.loads(result.stdout) == {"ok": True, "result": "123"}


def test_call_with_a_bad_parameter_fails_with_the_message(workdir: Path) -> None:
    result = plugbay("call", "acme.calc", "add", "a=many", cwd=workdir)
    assert result.returncode == 1
    assert (
        "error: plugin 'acme.calc': command 'add' parameter 'a' expects int, got str"
        in result.stderr
    )
    result = plugbay("call", "acme.calc", "add", "a=1", "--json", cwd=workdir)
    assert json.loads(result.stdout)["result"] == 2
    result = plugbay("call", "acme.nope", "add", cwd=workdir)
    assert result.returncode == 1
    assert "no plugin 'acme.nope' is known to this host" in result.stderr
    result = plugbay("call", "acme.calc", "add", "a", cwd=workdir)
    assert result.returncode == 1 and "'a' is not key=value" in result.stderr


def test_info_shows_commands_and_failure(workdir: Path) -> None:
    from tests._running import plugbay_run

    with plugbay_run(workdir):
        result = plugbay("info", "acme.calc", cwd=workdir)
        assert result.returncode == 0
        assert "add(a: int, b: int = 1) -> int  Add two integers." in result.stdout
        # text that looks like rich markup is shown as it is
        assert "names() -> list[str]" in result.stdout
        assert 'config {"tags": ["a", "b"]}' in result.stdout
        assert plugbay("call", "acme.calc", "names", cwd=workdir).stdout.strip().startswith("[")
        result = plugbay("info", "acme.bad", "--traceback", cwd=workdir)
        assert "RuntimeError: boom" in result.stdout and "Traceback" in result.stdout
        data = json.loads(plugbay("info", "acme.calc", "--json", cwd=workdir).stdout)
        assert data["manifest"]["id"] == "acme.calc" and data["state"] == "active"
        assert plugbay("info", "acme.zzz", cwd=workdir).returncode == 1


def test_info_without_a_host_shows_the_manifest_not_running(workdir: Path) -> None:
    result = plugbay("info", "acme.calc", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "no host is running on" in result.stderr
    assert "acme.calc 1.0.0  not running" in result.stdout
    assert "its commands are listed by a running host" in result.stdout
    data = json.loads(plugbay("info", "acme.calc", "--json", cwd=workdir).stdout)
    assert data["state"] == "not running" and data["manifest"]["entry"] == "main:P"
    missing = plugbay("info", "acme.zzz", cwd=workdir)
    assert missing.returncode == 1 and "no plugin 'acme.zzz' is on disk" in missing.stderr


def test_validate(workdir: Path, plugins: PluginFactory) -> None:
    ok = plugbay("validate", str(plugins.root / "acme.calc-1.0.0"), cwd=workdir)
    assert ok.returncode == 0 and "ok acme.calc 1.0.0 (utility)" in ok.stdout
    bad = plugbay("validate", str(plugins.root / "acme.bad-1.0.0"), cwd=workdir)
    # static findings first: the module never defines P, so its code is never imported
    assert bad.returncode == 1 and "module 'main' defines no class 'P'" in bad.stdout


def test_deps_marks_conflicts_and_exits_non_zero(workdir: Path, plugins: PluginFactory) -> None:
    plugins("acme.top", extra='[dependencies]\n"acme.calc" = "^2"\n')
    result = plugbay("deps", cwd=workdir)
    assert result.returncode == 1
    assert "acme.top" in result.stdout and "✗" in result.stdout
    data = json.loads(plugbay("deps", "--json", cwd=workdir).stdout)
    assert "acme.top" in data["failures"] and data["selected"]["acme.calc"] == "1.0.0"


def test_disable_enable_history(workdir: Path) -> None:
    assert plugbay("disable", "acme.calc", "--reason", "maintenance", cwd=workdir).returncode == 0
    rows = {r["id"]: r for r in json.loads(plugbay("list", "--json", cwd=workdir).stdout)}
    assert rows["acme.calc"]["state"] == "disabled" and rows["acme.calc"]["reason"] == "maintenance"
    assert plugbay("enable", "acme.calc", cwd=workdir).returncode == 0
    history = json.loads(plugbay("history", "acme.calc", "--json", cwd=workdir).stdout)
    assert [e["action"] for e in history][:2] == ["enable", "disable"]


def test_history_with_nothing_recorded_says_so(workdir: Path) -> None:
    """An empty history printed an empty table: it says there is none yet, and what
    records it; --json is an empty list."""
    StateStore.open(workdir / ".plugbay").close()  # a state, nothing recorded in it yet
    empty = plugbay("history", cwd=workdir)
    assert empty.returncode == 0, empty.stderr
    assert "there is no history in .plugbay yet: a host records each install, load" in empty.stdout
    assert "┃" not in empty.stdout and "time" not in empty.stdout  # no empty table
    assert json.loads(plugbay("history", "--json", cwd=workdir).stdout) == []
    assert plugbay("disable", "acme.calc", cwd=workdir).returncode == 0
    other = plugbay("history", "acme.bad", cwd=workdir)  # on disk, nothing recorded for it
    assert "acme.bad has no history in .plugbay yet" in other.stdout, other.stdout
    assert "disable" in plugbay("history", cwd=workdir).stdout  # the table, once there is one


def test_history_of_a_mistyped_id_names_the_closest(workdir: Path) -> None:
    """`plugbay history acme.clac` said "acme.clac has no history yet" and exited 0, so a
    typo read as a plugin nothing happened to; `logs` and `alerts` refuse it."""
    assert plugbay("disable", "acme.calc", cwd=workdir).returncode == 0
    typo = plugbay("history", "acme.clac", cwd=workdir)
    assert typo.returncode == 1, typo.stdout
    said = " ".join(typo.stderr.split())
    assert "no plugin 'acme.clac' is known to this host" in said, said
    assert "did you mean 'acme.calc'" in said, said
    assert "has no history" not in typo.stdout
    answer = json.loads(plugbay("history", "acme.clac", "--json", cwd=workdir).stdout)
    assert answer["error"]["code"] == "plugin_not_found"
    assert answer["error"]["hint"].startswith("did you mean 'acme.calc'")


def test_disabling_again_without_a_reason_keeps_the_reason(workdir: Path) -> None:
    """No host runs: a second disable with no reason kept 'disabled by the operator'."""
    assert plugbay("disable", "acme.calc", "--reason", "ticket 42", cwd=workdir).returncode == 0
    again = plugbay("disable", "acme.calc", cwd=workdir)
    assert again.returncode == 0, again.stderr
    rows = {r["id"]: r for r in json.loads(plugbay("list", "--json", cwd=workdir).stdout)}
    assert rows["acme.calc"]["state"] == "disabled" and rows["acme.calc"]["reason"] == "ticket 42"


def test_with_no_host_a_typo_or_a_needed_plugin_is_refused_as_a_host_would(
    workdir: Path, plugins: PluginFactory
) -> None:
    """No host runs: enable and disable are kept for the next start, checked as a running
    host checks them, not written blindly into the state."""
    plugins("acme.user", extra='[dependencies]\n"acme.calc" = "^1"\n')
    typo = plugbay("enable", "acme.clac", cwd=workdir)
    assert typo.returncode == 1
    assert "no plugin 'acme.clac' is on disk" in typo.stderr and "acme.calc" in typo.stderr
    assert plugbay("disable", "acme.clac", cwd=workdir).returncode == 1
    needed = plugbay("disable", "acme.calc", cwd=workdir)
    assert needed.returncode == 1
    assert "acme.user depend on it" in needed.stderr and "--cascade" in needed.stderr
    assert not (workdir / ".plugbay" / "state.db").exists()  # nothing was kept
    forced = plugbay("disable", "acme.calc", "--cascade", cwd=workdir)
    assert forced.returncode == 0, forced.stderr
    assert "acme.user will not start while it is disabled" in forced.stderr
    rows = {r["id"]: r for r in json.loads(plugbay("list", "--json", cwd=workdir).stdout)}
    assert rows["acme.calc"]["state"] == "disabled"


def test_run_once_exits_non_zero_when_a_plugin_failed(workdir: Path) -> None:
    result = plugbay("run", "--once", cwd=workdir)
    assert result.returncode == 1
    assert "1 active, 1 failed" in result.stdout


def test_run_serves_until_interrupted_then_cleans_up(workdir: Path) -> None:
    proc = start_plugbay("run", "--http", "127.0.0.1:0", "--metrics-port", "0", cwd=workdir)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        lines = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "serving" in line:
                break
        assert any("serving" in line for line in lines), lines
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 130  # Ctrl-C, after the clean stop
        assert "stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_unknown_command_is_a_usage_error(tmp_path: Path) -> None:
    result = plugbay("frobnicate", cwd=tmp_path)
    assert result.returncode == 2


def test_grants_are_asked_for_granted_and_shown(workdir: Path, plugins: PluginFactory) -> None:
    plugins("acme.net", extra='[permissions]\nnetwork = ["127.0.0.1:8080"]\nenv = ["HOME"]\n')
    ok = plugbay("grant", "acme.net", "network:127.0.0.1:8080", cwd=workdir)
    assert ok.returncode == 0 and "acme.net: granted network:127.0.0.1:8080" in ok.stdout
    extra = plugbay("grant", "acme.net", "subprocess", cwd=workdir)
    assert extra.returncode == 0
    assert "manifest does not ask for subprocess, so it has no effect" in extra.stderr
    data = json.loads(plugbay("info", "acme.net", "--json", cwd=workdir).stdout)
    # the other layers (where each grant comes from, …): tests/test_permission_view.py
    layers = ("asked", "granted", "effective", "pending", "denied")
    assert {key: data["permissions"][key] for key in layers} == {
        "asked": ["network:127.0.0.1:8080", "env:HOME"],
        "granted": ["network:127.0.0.1:8080", "subprocess"],
        "effective": ["network:127.0.0.1:8080"],
        "pending": ["env:HOME"],  # asked, not yet approved
        "denied": [],  # asked, and the operator said no
    }
    shown = plugbay("info", "acme.net", cwd=workdir).stdout
    assert "in effect: network:127.0.0.1:8080" in shown
    assert "pending: env:HOME" in shown and "plugbay grant acme.net env:HOME" in shown
    bad = plugbay("grant", "acme.net", "internet", cwd=workdir)
    assert bad.returncode == 2 and "'internet' is not a permission" in bad.stderr
    assert plugbay("grant", "acme.nope", "env:HOME", cwd=workdir).returncode == 1
    assert plugbay("revoke", "acme.net", "subprocess", cwd=workdir).returncode == 0
    again = plugbay("revoke", "acme.net", "subprocess", cwd=workdir)
    assert again.returncode == 1 and "subprocess was not granted to 'acme.net'" in again.stderr


def test_list_reports_a_running_host_without_starting_plugins(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    # written in the plugin's own data directory: the one place a sandboxed plugin may write
    starts = tmp_path / ".plugbay" / "data" / "acme.counted" / "starts.log"
    plugins(
        "acme.counted",
        """
        from plugbay import UtilityPlugin, command

        class P(UtilityPlugin):
            async def initialize(self, context):
                open(context.environment.data_dir / "starts.log", "a").write("started\\n")

            @command
            def ping(self) -> str:
                return "pong"
        """,
    )
    plugins("acme.bad", "raise RuntimeError('boom')\n")
    proc = start_plugbay("run", "--no-metrics", "--no-http", cwd=tmp_path)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "serving" not in proc.stdout.readline():
            pass
        rows = {r["id"]: r for r in json.loads(plugbay("list", "--json", cwd=tmp_path).stdout)}
        assert rows["acme.counted"]["state"] == "active"
        assert rows["acme.counted"]["source"] == f"host pid {proc.pid}"
        assert rows["acme.bad"]["state"] == "failed"
        assert "raised RuntimeError: boom" in rows["acme.bad"]["reason"]
        shown = plugbay("list", cwd=tmp_path).stdout
        assert "as recorded by the host running since" in shown and f"(pid {proc.pid})" in shown
        assert starts.read_text() == "started\n"  # list started nothing
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert not (tmp_path / ".plugbay" / "host.json").exists()
    # with no host running, list says so and starts nothing: no load is recorded (the data
    # directory is the plugin's storage image, mounted only while a worker runs)
    loads = len(json.loads(plugbay("history", "acme.counted", "--json", cwd=tmp_path).stdout))
    rows = json.loads(plugbay("list", "--json", cwd=tmp_path).stdout)
    assert {r["state"] for r in rows} == {"not running"}
    after = json.loads(plugbay("history", "acme.counted", "--json", cwd=tmp_path).stdout)
    assert len(after) == loads


GREETER = """
from plugbay import UtilityPlugin, command

PEOPLE: dict[str, str] = {}


class P(UtilityPlugin):
    @command
    def boom(self) -> str:
        return self.greet("Ada")

    def greet(self, name: str) -> str:
        return PEOPLE[name]

    @command
    def hello(self, name: str) -> str:
        return f"Hello, {name}!"

    @command
    def hello_all(self, names: list[str]) -> str:
        return ", ".join(f"Hello, {n}!" for n in names)
"""


@pytest.mark.parametrize("dirname", ["acme.greet-1.0.0", "core/acme.greet-1.0.0"])
def test_a_plugins_exception_names_the_line_of_its_code(
    plugins: PluginFactory, tmp_path: Path, dirname: str
) -> None:
    """Sandboxed (a worker) and inline (core/): the plain error names the plugin's file,
    line, function and the line's text, not only 'raised KeyError'; --json's where too."""
    source = plugins("acme.greet", GREETER, module="greeter", dirname=dirname) / "greeter.py"
    line = GREETER.splitlines().index("        return PEOPLE[name]") + 1
    shown = plugbay("call", "acme.greet", "boom", cwd=tmp_path)
    assert shown.returncode == 1
    assert "KeyError: 'Ada'" in shown.stderr
    assert f"raised at {source}:{line} in greet" in shown.stderr, shown.stderr
    assert "    return PEOPLE[name]" in shown.stderr
    error = json.loads(plugbay("call", "acme.greet", "boom", "--json", cwd=tmp_path).stdout)
    assert error["error"]["where"] == f"{source}:{line}"
    assert error["error"]["details"]["raised_at"] == {
        "file": str(source), "line": line, "function": "greet", "code": "return PEOPLE[name]",
    }  # fmt: skip
    assert "Traceback" in error["error"]["details"]["traceback"]


def test_call_values_read_as_json_where_json_is_meant(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.greet", GREETER, module="greeter")

    def call(*params: str) -> Any:
        return plugbay("call", "acme.greet", *params, cwd=tmp_path)

    # a JSON string for a str parameter is unquoted; plain text stays text
    assert call("hello", 'name="Ada"').stdout.strip() == "Hello, Ada!"
    assert call("hello", "name=Men are all alike.").stdout.strip() == "Hello, Men are all alike.!"
    assert call("hello", "name=007").stdout.strip() == "Hello, 007!"
    assert call("hello_all", 'names=["Ada", "Bo"]').stdout.strip() == "Hello, Ada!, Hello, Bo!"
    # JSON that does not parse, for a list, is refused naming where it breaks
    broken = call("hello_all", 'names=["Ada",')
    assert broken.returncode == 1 and "got str" not in broken.stderr
    assert (
        """parameter 'names': '["Ada",' is not valid JSON: Expecting value at column 8"""
        in " ".join(broken.stderr.split())
    ), broken.stderr


def test_list_with_no_host_says_a_plugins_directory_does_not_exist(tmp_path: Path) -> None:
    """'plugbay list --plugins TYPO' printed an empty table and nothing else, where
    'plugbay run' says the directory does not exist."""
    shown = plugbay("list", "--plugins", str(tmp_path / "plugnis"), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"the plugins directory {tmp_path / 'plugnis'} does not exist" in " ".join(
        shown.stdout.split()
    )
