"""``plugbay run`` on the lean path (``cli._entry``, ``cli._run_args``): the options it
reads mean what typer's mean, whatever it does not understand goes to typer (the
same help, the same errors), and a run prints and exits as the typer command does,
without loading the command framework before its plugins are active."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import typer

from plugbay.cli import app
from plugbay.cli._run_args import OPTIONS, RunOptions, parse_run
from plugbay.runtime.lifecycle import HostLock
from tests._cli import cli_env, run_cli
from tests._waiting import until_sync
from tests.conftest import PluginFactory

ENV_VARS = ("PLUGBAY_PLUGINS", "PLUGBAY_STATE", "PLUGBAY_CONFIG", "PLUGBAY_HTTP")


def _typer_reads(argv: Sequence[str], monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Any:
    """What typer's ``run`` command reads from ``argv`` and the environment."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    command = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    ctx = command.make_context("run", list(argv))
    p = ctx.params
    return RunOptions(
        tuple(p["plugins"]) if p["plugins"] else None, p["state"], p["config"], p["once"],
        p["metrics_port"], p["no_metrics"], p["metrics_public"], p["http"], p["no_http"],
        p["http_public"], p["http_max_body"], p["watch"], p["drain"],
    )  # fmt: skip


AGREED: list[tuple[list[str], dict[str, str]]] = [
    ([], {}),
    (["--once"], {}),
    (["-p", "a", "--plugins", "b/c", "--state", "s", "-c", "x.toml"], {}),
    (
        [
            "--plugins=a",
            "--state=s",
            "--http=127.0.0.1:0",
            "--metrics-port",
            "0",
            "--drain",
            "2.5",
            "-w",
            "--no-metrics",
            "--metrics-public",
            "--http-max-body",
            "1024",
            "--no-http",
            "--http-public",
            "--watch",
            "--config=c.toml",
        ],
        {},
    ),
    (["--http", ":8000"], {}),
    (["--http", "localhost:1"], {}),
    (["--http", "[::1]:0"], {}),
    (["--drain", "3", "--metrics-port", "1", "--metrics-port", "2"], {}),  # the last one wins
    ([], {"PLUGBAY_PLUGINS": "a:b", "PLUGBAY_STATE": "st", "PLUGBAY_HTTP": "127.0.0.1:9"}),
    ([], {"PLUGBAY_CONFIG": "c.toml", "PLUGBAY_PLUGINS": "only"}),
    (["-p", "x", "--state", "y", "--http", ":1"], {"PLUGBAY_PLUGINS": "a", "PLUGBAY_STATE": "b"}),
    ([], {"PLUGBAY_STATE": "", "PLUGBAY_PLUGINS": ""}),  # empty: as if unset
]


@pytest.mark.parametrize(("argv", "env"), AGREED)
def test_the_lean_parser_reads_what_typer_reads(
    argv: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    for config in ("x.toml", "c.toml"):  # a --config given must exist (else typer refuses it)
        (tmp_path / config).write_text("")
    lean = parse_run(argv, env)
    assert lean is not None, argv
    assert lean == _typer_reads(argv, monkeypatch, env)


def test_every_option_of_the_typer_command_is_known_to_the_lean_parser() -> None:
    command = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    spellings = {o for p in command.params for o in p.opts if o not in ("-h", "--help")}
    assert spellings == set(OPTIONS)
    # and each default is typer's
    defaults = {p.name: p.default for p in command.params}
    lean = RunOptions()
    for name, default in defaults.items():
        value = getattr(lean, name)
        assert (list(value) if isinstance(value, tuple) else value) == (
            Path(default) if name == "state" else default
        ), name


LEFT_TO_TYPER = [
    ["--help"],
    ["-h"],
    ["--once", "--help"],
    ["--bogus"],
    ["extra"],
    ["--metrics-port", "x"],
    ["--metrics-port", "-1"],
    ["--metrics-port"],
    ["--drain", "1e3"],
    ["--http", "0.0.0.0:8750"],
    ["--http", "nonsense"],
    ["--http", "127.0.0.1:99999"],
    ["-wp", "x"],
    ["-pdir"],
    ["--once=1"],
    ["--state", "--once"],
    ["--state", ""],
    ["--"],
]


@pytest.mark.parametrize("argv", LEFT_TO_TYPER)
def test_what_the_lean_parser_is_not_sure_of_goes_to_typer(argv: list[str]) -> None:
    assert parse_run(argv, {}) is None


def test_a_public_or_odd_http_from_the_environment_goes_to_typer() -> None:
    assert parse_run([], {"PLUGBAY_HTTP": "0.0.0.0:80"}) is None
    assert parse_run([], {"PLUGBAY_HTTP": " 127.0.0.1:1"}) is None
    assert parse_run([], {"PLUGBAY_PLUGINS": "a::b"}) is None
    # with --once no API is served: a public HOST:PORT is nothing to refuse (a malformed
    # one is: typer says so)
    assert parse_run(["--once"], {"PLUGBAY_HTTP": "0.0.0.0:80"}) is not None


# --------------------------------------------------------------------------- as a user runs it


def _plugbay(
    entry: str, *args: str, cwd: Path, extra: Sequence[str] = (), tmp: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The command through ``entry``: ``main`` (the console script, lean for run) or
    ``app`` (the typer app alone, as before the lean path)."""
    code = f"import sys; from plugbay.cli import {entry}; sys.argv[0] = 'plugbay'; {entry}()"
    env = cli_env({} if tmp is None else {"TMPDIR": str(tmp)}, drop=ENV_VARS)
    return run_cli([sys.executable, *extra, "-c", code, *args], cwd=cwd, timeout=120, env=env)


def _same(text: str) -> str:
    """Output with what differs from run to run made equal: times in any unit, paths of
    temp dirs; a table's columns are as wide as their widest figure, so runs of padding
    and rules count as one."""
    numbers = re.sub(r"[0-9]+(\.[0-9]+)?( ?(µs|ms|s|min)\b)?", "N", text)
    return re.sub(r"[ ─━]+", " ", numbers)


@pytest.fixture
def workdir(plugins: PluginFactory, tmp_path: Path) -> Path:
    plugins(
        "acme.calc",
        """
        from plugbay import UtilityPlugin, command

        class P(UtilityPlugin):
            @command
            def add(self, a: int, b: int = 1) -> int:
                return a + b
        """,
    )
    plugins("acme.bad", "raise RuntimeError('boom')\n")
    return tmp_path


def test_run_once_prints_and_exits_as_the_typer_command_does(workdir: Path) -> None:
    lean = _plugbay("main", "run", "--once", "--state", "s1", cwd=workdir)
    typed = _plugbay("app", "run", "--once", "--state", "s2", cwd=workdir)
    assert lean.returncode == typed.returncode == 1  # acme.bad failed
    assert "failed: plugin 'acme.bad': importing 'main' raised RuntimeError: boom" in lean.stdout
    assert "acme.calc" in lean.stdout and "1 active, 1 failed" in lean.stdout
    assert _same(lean.stdout).replace("sN", "s") == _same(typed.stdout).replace("sN", "s")
    assert lean.stderr == typed.stderr


def test_a_missing_plugins_directory_reads_the_same(tmp_path: Path) -> None:
    lean = _plugbay("main", "run", "--once", "-p", "nowhere", cwd=tmp_path)
    typed = _plugbay("app", "run", "--once", "-p", "nowhere", cwd=tmp_path)
    assert lean.returncode == typed.returncode == 0
    assert "nowhere does not exist: no plugin is found there" in lean.stdout
    assert _same(lean.stdout) == _same(typed.stdout)


def test_a_state_directory_another_host_holds_is_the_same_error(workdir: Path) -> None:
    state = workdir / "held"
    state.mkdir()
    tmp = workdir / "tmp"  # where the storage quota's probe makes its test image
    tmp.mkdir()
    lock = HostLock(state)
    lock.acquire()
    try:
        lean = _plugbay("main", "run", "--once", "--state", str(state), cwd=workdir, tmp=tmp)
        typed = _plugbay("app", "run", "--once", "--state", str(state), cwd=workdir)
    finally:
        lock.release()
    assert lean.returncode == typed.returncode == 1
    assert lean.stderr.startswith("error: ") and "Traceback" not in lean.stderr
    assert _same(lean.stderr) == _same(typed.stderr)
    assert lean.stdout == typed.stdout == ""
    # the storage probe started beside the zygote finished before the command exited
    assert str(tmp) not in Path("/proc/mounts").read_text()
    assert list(tmp.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--bogus"], "No such option: --bogus"),
        (["--metrics-port", "x"], "Invalid value for '--metrics-port'"),
        (["--http", "0.0.0.0:1"], "would let other machines reach this host's API"),
        (["--http", "nonsense"], "'nonsense' is not HOST:PORT"),
    ],
)
def test_bad_options_get_typers_usage_errors(argv: list[str], said: str, tmp_path: Path) -> None:
    lean = _plugbay("main", "run", *argv, cwd=tmp_path)
    assert lean.returncode == 2
    assert said in lean.stderr and "Traceback" not in lean.stderr
    assert (lean.stdout, lean.stderr) == (
        (typed := _plugbay("app", "run", *argv, cwd=tmp_path)).stdout,
        typed.stderr,
    )
    assert not (tmp_path / ".plugbay").exists()  # refused before any state is made


def test_run_help_is_typers_and_names_every_option(tmp_path: Path) -> None:
    shown = _plugbay("main", "run", "--help", cwd=tmp_path)
    assert shown.returncode == 0
    assert shown.stdout == _plugbay("app", "run", "--help", cwd=tmp_path).stdout
    assert "Start the host on the plugins directory and serve until Ctrl-C." in shown.stdout
    for spelling in OPTIONS:
        assert spelling in shown.stdout, spelling
    top = _plugbay("main", "--help", cwd=tmp_path)
    assert top.returncode == 0 and " run " in top.stdout and " doctor " in top.stdout


def test_the_lean_run_loads_no_command_framework(workdir: Path) -> None:
    result = _plugbay("main", "run", "--once", cwd=workdir, extra=["-X", "importtime"])
    assert "1 active, 1 failed" in result.stdout
    loaded = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    assert {"typer", "click", "pydantic", "plugbay.cli.app"} & loaded == set()
    # while every other command is typer's, as before
    other = _plugbay("main", "--help", cwd=workdir, extra=["-X", "importtime"])
    assert "typer" in {line.rsplit("|", 1)[-1].strip() for line in other.stderr.splitlines()}


def test_the_lean_run_loads_rich_after_the_host_and_no_requirement_parser(workdir: Path) -> None:
    # rich loads beside the starting plugins (or at the first line printed), not on the
    # way to the host's own modules; packaging's requirement parser only for a plugin
    # with python-dependencies (these have none)
    result = _plugbay("main", "run", "--once", cwd=workdir, extra=["-X", "importtime"])
    assert "1 active, 1 failed" in result.stdout and "│ acme.calc" in result.stdout
    order = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()]
    assert order.index("rich.console") > order.index("plugbay.runtime.host")
    assert "packaging.requirements" not in order


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize(
    ("entry", "sig", "code"),
    [("main", signal.SIGINT, 130), ("app", signal.SIGINT, 130), ("main", signal.SIGTERM, 0)],
)
def test_ctrl_c_stops_the_host_cleanly_then_exits_130_and_sigterm_0(
    workdir: Path, entry: str, sig: signal.Signals, code: int
) -> None:
    with socket.socket() as s:  # a free port for the API, so /healthz says when it is up
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out, err = workdir / "out.txt", workdir / "err.txt"
    program = f"import sys; from plugbay.cli import {entry}; sys.argv[0] = 'plugbay'; {entry}()"
    argv = [sys.executable, "-c", program, "run", "--http", f"127.0.0.1:{port}", "--no-metrics"]
    with out.open("w") as stdout, err.open("w") as stderr:
        # its own process group, as a shell runs a command: Ctrl-C signals the whole group
        proc = subprocess.Popen(argv, cwd=workdir, stdout=stdout, stderr=stderr,
                                env=cli_env(drop=ENV_VARS), start_new_session=True)  # fmt: skip
    try:
        until_sync(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), "/healthz to answer")
        until_sync(lambda: "serving" in out.read_text(), "the host to serve")
        os.killpg(proc.pid, sig)
        assert proc.wait(timeout=60) == code, err.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    printed = out.read_text()
    assert "stopping: cleaning up plugins in reverse order" in printed
    assert printed.rstrip().endswith("stopped")
    assert "Traceback" not in printed + err.read_text()
    assert not (workdir / ".plugbay" / "host.json").exists()  # no host announced any more
    until_sync(lambda: _group_gone(proc.pid), "every process of the group to end")
    assert not _answers(f"http://127.0.0.1:{port}/healthz")


def test_importing_threads_put_the_switch_interval_back_in_any_order() -> None:
    from plugbay.cli._serve import _IMPORT_SWITCH_INTERVAL, _short_switches

    before = sys.getswitchinterval()
    first, second = _short_switches(), _short_switches()
    first.__enter__()
    second.__enter__()
    assert sys.getswitchinterval() == _IMPORT_SWITCH_INTERVAL
    first.__exit__(None, None, None)  # the first ends while the second still imports
    assert sys.getswitchinterval() == _IMPORT_SWITCH_INTERVAL
    second.__exit__(None, None, None)
    assert sys.getswitchinterval() == before


def test_a_bug_of_plugbays_is_one_line_and_a_file_to_report(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import tempfile

    from plugbay.cli import _entry, _serve
    from plugbay.runtime import startup

    def broken(*args: object) -> int:
        return {}["no such key"]  # type: ignore[no-any-return]  # a bug, as a user meets one

    monkeypatch.setattr(_serve, "run_command", broken)
    monkeypatch.setattr(startup, "spawn_zygote", lambda: None)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["plugbay", "run", "--once", "--plugins", str(tmp_path)])
    with pytest.raises(SystemExit) as exited:
        _entry.main()
    assert exited.value.code == 70
    captured = capsys.readouterr()
    said = captured.err.strip()
    assert "\n" not in said and "Traceback" not in said and captured.out == ""
    assert said.startswith("plugbay: internal error (KeyError: 'no such key')")
    assert "Please report it" in said
    [written] = tmp_path.glob("plugbay-internal-error-*.txt")
    assert str(written) in said
    report = written.read_text()
    assert "command: plugbay run --once --plugins" in report
    assert "Traceback (most recent call last)" in report and "in broken" in report


def test_a_crash_report_of_a_tests_subprocess_stays_under_the_sessions_basetemp(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """The session's TMPDIR (conftest.session_temp_dir) reaches the commands a test runs:
    a crash report written to "the temp directory" is left under pytest's basetemp, never
    in the system's /tmp."""
    import tempfile

    base = tmp_path_factory.getbasetemp().resolve()
    assert Path(tempfile.gettempdir()).resolve().is_relative_to(base)  # this process's too
    program = (
        "import sys; from plugbay.cli._crash import report_internal_error; "
        "sys.exit(report_internal_error(KeyError('no such key'), 'plugbay run'))"
    )
    done = run_cli([sys.executable, "-c", program], cwd=tmp_path)
    assert done.returncode == 70
    said = " ".join(done.stderr.split())
    found = re.search(r"the full traceback is in (\S+)\. Please report it", said)
    assert found is not None, said
    report = Path(found.group(1))
    assert report.resolve().is_relative_to(base) and report.is_file()
    assert "KeyError: 'no such key'" in report.read_text()
