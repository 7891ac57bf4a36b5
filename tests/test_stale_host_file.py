"""A ``plugbay run`` killed with SIGKILL leaves its ``host.json``: the next start sweeps
it and says so in one line naming the dead host's pid, also when that pid has since
been given to another live process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from tests._cli import PLUGBAY, cli_env, plugbay
from tests._waiting import until_sync
from tests.conftest import PluginFactory

ONCE = ("run", "--once", "--no-http", "--no-metrics")


def killed_host(plugins: PluginFactory, cwd: Path, state: Path) -> int:
    """A ``plugbay run`` on ``state`` killed with SIGKILL once it serves; its pid."""
    argv = [*PLUGBAY, "run", "--no-http", "--no-metrics", "--state", str(state),
            "-p", str(plugins.root)]  # fmt: skip
    out = cwd / "killed.out"
    with out.open("w") as stdout:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=stdout, stderr=subprocess.DEVNULL,
                                env=cli_env(), start_new_session=True)  # fmt: skip
    try:
        until_sync(lambda: "serving" in out.read_text(), "the host to serve")
        assert json.loads((state / "host.json").read_text())["pid"] == proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return proc.pid


def said_once(printed: str, pid: int) -> bool:
    """One line says the host.json was swept, naming ``pid`` (beside what else was swept:
    the cgroups of dead hosts, this one's and any other's)."""
    lines = [line for line in printed.splitlines() if "stale host.json" in line]
    return len(lines) == 1 and f"a stale host.json of pid {pid}" in lines[0]


def test_the_next_start_says_it_swept_the_killed_hosts_host_json(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """It said "swept a stale host.json", not whose."""
    plugins("acme.calc")
    state = tmp_path / "state"
    pid = killed_host(plugins, tmp_path, state)
    assert (state / "host.json").exists()
    again = plugbay(*ONCE, "--state", str(state), "-p", str(plugins.root), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert said_once(again.stdout + again.stderr, pid), again.stdout
    assert not (state / "host.json").exists()


def test_a_host_json_naming_a_pid_given_to_another_process_is_swept_too(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """Its pid alive again (another process's, after some kill -9s): the start kept the
    stale file and overwrote it later without a word."""
    plugins("acme.calc")
    state = tmp_path / "state"
    killed_host(plugins, tmp_path, state)
    announced = json.loads((state / "host.json").read_text())
    with subprocess.Popen(["sleep", "600"]) as other:
        try:
            (state / "host.json").write_text(json.dumps({**announced, "pid": other.pid}))
            again = plugbay(*ONCE, "--state", str(state), "-p", str(plugins.root), cwd=tmp_path)
        finally:
            other.kill()
    assert again.returncode == 0, again.stderr
    assert said_once(again.stdout + again.stderr, other.pid), again.stdout


def test_the_sweep_of_a_stale_host_json_is_in_host_log_too(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """The sweep runs as the state is opened, before ``host.log`` was attached: its warning
    reached the terminal only, and the log an operator reads later had no word of it."""
    plugins("acme.calc")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    with subprocess.Popen(["true"]) as gone:
        pass
    (state / "host.json").write_text(json.dumps({"pid": gone.pid, "url": None}))
    again = plugbay(*ONCE, "--state", str(state), "-p", str(plugins.root), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    logged = (state / "host.log").read_text()
    assert said_once(logged, gone.pid), logged  # as the terminal says it, and once
    assert "WARNING plugbay.host: start: swept " in logged
