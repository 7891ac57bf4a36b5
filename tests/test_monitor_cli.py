"""`plugbay logs / alerts / top / metrics / profile` beside a real `plugbay run`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugbay.state import StateStore, list_backups
from plugbay.state.backups import rolling_backup
from tests._running import plugbay_run
from tests.conftest import PluginFactory
from tests.test_cli_json import documented, same_shape

NOISY = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def fail(self) -> str:
        raise OSError("the disk is on fire")

    @command
    def square(self, x: int) -> int:
        return x * x
"""

CALLER = """
import asyncio
from plugbay import PluginContext, UtilityPlugin, command

class C(UtilityPlugin):
    async def initialize(self, context: PluginContext) -> None:
        self.noise = context.services.require("noise", "^1")
        context.logger.info("calling", extra={"fields": {"every": 0.05}})
        print("hello from the caller's stdout", flush=True)
        self.task = asyncio.ensure_future(self.loop())

    async def loop(self) -> None:
        while True:
            try:
                await self.noise.fail()
            except Exception as exc:
                self.context.logger.warning("noise failed: %s", exc)
            await asyncio.sleep(0.05)

    async def cleanup(self) -> None:
        self.task.cancel()

    @command
    def ping(self) -> str:
        return "pong"
"""

CONFIG = """
[monitor]
interval = 0.2

[monitor.alerts.error-rate]
threshold = 0.1
window = 2
min-calls = 3
"""


def env() -> dict[str, str]:
    """This process's environment as it is now (the session's TMPDIR included), plain."""
    return {**os.environ, "NO_COLOR": "1", "COLUMNS": "220", "PYTHONUNBUFFERED": "1"}


def plugbay(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plugbay.cli", *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env(),
    )  # fmt: skip


def eventually(args: list[str], cwd: Path, wanted: str, bound: float = 30) -> str:
    end = time.monotonic() + bound
    text = ""
    while time.monotonic() < end:
        done = plugbay(*args, cwd=cwd)
        text = done.stdout + done.stderr
        if wanted in text:
            return text
        time.sleep(0.3)
    raise AssertionError(f"`plugbay {' '.join(args)}` never showed {wanted!r}; last:\n{text}")


@pytest.fixture
def running(plugins: PluginFactory, tmp_path: Path) -> Iterator[Path]:
    plugins("acme.noisy", NOISY, extra='[services]\nprovides = { noise = "1.0.0" }\n')
    plugins("acme.caller", CALLER, cls="C",
            extra='[dependencies]\n"acme.noisy" = "*"\n[services]\nrequires = { noise = "^1" }\n')  # fmt: skip
    (tmp_path / "plugbay.toml").write_text(CONFIG)
    proc = subprocess.Popen(
        [sys.executable, "-m", "plugbay.cli", "run", "--metrics-port", "0",
         "--http", "127.0.0.1:0"], cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env(),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        end = time.monotonic() + 60
        seen = []
        while time.monotonic() < end:
            line = proc.stdout.readline()
            seen.append(line)
            if line.startswith("serving") or not line:
                break
        assert any(s.startswith("serving") for s in seen), "".join(seen)
        yield tmp_path
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_monitoring_commands_beside_a_running_host(running: Path) -> None:
    alerts = eventually(["alerts"], running, "error-rate")
    assert "acme.noisy" in alerts and "calls failed" in alerts
    listed = json.loads(plugbay("alerts", "--json", cwd=running).stdout)
    assert {(a["plugin"], a["rule"]) for a in listed} >= {("acme.noisy", "error-rate")}
    same_shape(listed, documented()["alerts"], "alerts")  # as docs/cli-json.md shows it

    logs = eventually(["logs", "acme.caller", "-n", "100000"], running, "noise failed")
    assert "calling" in logs and "every=0.05" in logs
    assert "[stdout] hello from the caller's stdout" in logs
    warnings = plugbay(
        "logs", "acme.caller", "--level", "warning", "-n", "100000", cwd=running
    ).stdout
    assert "noise failed" in warnings and "calling" not in warnings
    bad = plugbay("logs", "acme.caller", "--level", "loud", cwd=running)
    assert bad.returncode == 2 and "unknown log level 'loud'" in bad.stderr
    nobody = plugbay("logs", "acme.calller", cwd=running)
    assert nobody.returncode == 1 and "did you mean 'acme.caller'" in nobody.stderr

    top = eventually(["top", "--once"], running, "error-rate")
    assert "acme.caller" in top and "acme.noisy" in top and "health" in top

    health = plugbay("health", "--json", cwd=running)
    assert health.returncode == 0  # degraded is not failing
    rows = {r["id"]: r for r in json.loads(health.stdout)["plugins"]}
    assert rows["acme.noisy"]["health"] == "degraded" and rows["acme.caller"]["health"] == "green"
    assert any("alert error-rate" in why for why in rows["acme.noisy"]["reasons"])

    scraped = plugbay("metrics", cwd=running)
    assert "did not answer" not in scraped.stderr  # its port is read with the state's token
    metrics = scraped.stdout
    assert (
        'plugbay_plugin_alert_firing{plugin="acme.noisy",rule="error-rate",version="1.0.0"} 1.0'
        in metrics
    )

    follow = subprocess.Popen(
        [sys.executable, "-m", "plugbay.cli", "logs", "acme.caller", "--follow", "-n", "1"],
        cwd=running, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(),
    )  # fmt: skip
    try:
        assert follow.stdout is not None
        first = follow.stdout.readline()
        later = follow.stdout.readline()  # only arrives if it follows the running host
        assert "acme.caller" in first and "acme.caller" in later
    finally:
        follow.terminate()
        follow.wait(timeout=30)


def test_plugbay_profile_prints_the_result_and_where_the_time_went(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.noisy", NOISY)
    done = plugbay("profile", "acme.noisy", "square", "x=12", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "result: 144" in done.stdout
    assert "cumulative" in done.stdout and "square" in done.stdout
    missing = plugbay("profile", "acme.noisy", "cube", "x=1", cwd=tmp_path)
    assert missing.returncode == 1 and "has no command 'cube'" in missing.stderr


def said(done: subprocess.CompletedProcess[str]) -> str:
    """What a command printed on stderr, as one line (rich wraps long lines)."""
    return " ".join(done.stderr.split())


@pytest.fixture
def used_state(plugins: PluginFactory, tmp_path: Path) -> Path:
    """A state directory a host used and left: acme.noisy logged, acme.gone ran once and
    left the plugins directory, a backup of it; acme.quiet is on disk and never ran."""
    plugins("acme.noisy", NOISY)
    plugins("acme.quiet", NOISY)
    state = tmp_path / ".plugbay"
    with StateStore.open(state) as store:
        store.add_event("acme.gone", "load", version="1.0.0")
        store.add_logs([(time.time(), "acme.noisy", "1.0.0", 20, "plugin", "ready", None)])
        rolling_backup(store)
    return state


def test_metrics_with_no_host_running_says_so_and_starts_nothing(
    used_state: Path, tmp_path: Path
) -> None:
    # a host started for each scrape wrote its start into the state, history and a backup
    # each time: six scrapes pushed every real backup out
    backups = list_backups(used_state)
    for _ in range(2):
        done = plugbay("metrics", cwd=tmp_path)
        assert done.returncode == 1 and done.stdout == ""
        assert f"no host is running on {used_state.resolve()}" in said(done)
        assert "start one with 'plugbay run'" in said(done)
    assert list_backups(used_state) == backups
    with StateStore.open(used_state, read_only=True) as store:
        assert [e.plugin_id for e in store.history(None, limit=100)] == ["acme.gone"]
    assert not (used_state / "data" / "acme.noisy").exists()  # no plugin was started


def test_logs_of_an_unknown_id_is_an_error_naming_the_closest(
    used_state: Path, tmp_path: Path
) -> None:
    typo = plugbay("logs", "acme.nosy", cwd=tmp_path)
    assert typo.returncode == 1 and typo.stdout == ""
    assert "no plugin 'acme.nosy' is known to this host" in said(typo)
    assert "did you mean 'acme.noisy'" in said(typo)
    far = plugbay("logs", "zzz", cwd=tmp_path)
    assert far.returncode == 1
    assert "plugins known here: acme.gone, acme.noisy, acme.quiet" in said(far)
    # known plugins with no records are not errors: one on disk, one a host ran
    for known in ("acme.quiet", "acme.gone"):
        quiet = plugbay("logs", known, cwd=tmp_path)
        assert quiet.returncode == 0, quiet.stderr
        assert f"no log records for '{known}' at debug or above" in said(quiet)
        assert "plugins with records: acme.noisy" in said(quiet)
    shown = plugbay("logs", "acme.noisy", cwd=tmp_path)
    assert shown.returncode == 0 and "ready" in shown.stdout


def test_alerts_of_an_unknown_id_is_an_error_not_none_firing(
    used_state: Path, tmp_path: Path
) -> None:
    # "no alerts firing" for a typo would pass for a plugin that is fine
    typo = plugbay("alerts", "acme.nosy", cwd=tmp_path)
    assert typo.returncode == 1 and typo.stdout == "", typo.stdout
    assert "no plugin 'acme.nosy' is known to this host" in said(typo)
    assert "did you mean 'acme.noisy'" in said(typo)
    as_json = plugbay("alerts", "acme.nosy", "--all", "--json", cwd=tmp_path)
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["error"]["code"] == "plugin_not_found"
    # a known plugin with no alerts is not an error
    for known in ("acme.quiet", "acme.gone", "acme.noisy"):
        none = plugbay("alerts", known, cwd=tmp_path)
        assert none.returncode == 0 and "no alerts firing" in none.stdout, none.stderr


def test_a_limit_below_one_is_refused_not_read_as_all_or_none(
    used_state: Path, tmp_path: Path
) -> None:
    # -n -3 printed every record, -n 0 said the plugin had none
    for command in (["logs", "acme.noisy"], ["alerts", "--all"]):
        for n in ("0", "-3"):
            done = plugbay(*command, "-n", n, cwd=tmp_path)
            assert done.returncode == 2 and done.stdout == "", (command, n, done.stdout)
            assert "--limit" in said(done) and "1" in said(done)


def test_metrics_still_takes_plugins_and_config_with_a_note(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    # they fed the host metrics used to start; a script passing them still works
    plugins("acme.calc")
    (tmp_path / "plugbay.toml").write_text("")
    note = (
        "note: --plugins and --config are no longer used: 'plugbay metrics' reads the host "
        "running on --state, which has its own plugins and config"
    )
    with plugbay_run(tmp_path):
        plain = plugbay("metrics", cwd=tmp_path)
        old = plugbay("metrics", "-p", "plugins", "--plugins", "more", "-c", "plugbay.toml",
                      cwd=tmp_path)  # fmt: skip
        one = plugbay("metrics", "--config", "plugbay.toml", cwd=tmp_path)
    for done in (plain, old, one):
        assert done.returncode == 0, done.stderr
        assert 'plugbay_plugin_up{plugin="acme.calc",version="1.0.0"} 1.0' in done.stdout
    assert plain.stderr == ""
    assert old.stderr.strip() == note
    assert one.stderr.strip() == "note: --config is no longer used" + note.split("used", 1)[1]
    # with no host: the refusal it always gave, not a usage error
    gone = plugbay("metrics", "--plugins", "plugins", cwd=tmp_path)
    assert gone.returncode == 1 and "no host is running on" in said(gone)
    assert "note: --plugins is no longer used" in gone.stderr
    shown = plugbay("metrics", "--help", cwd=tmp_path)
    assert "--state" in shown.stdout
    assert "--plugins" not in shown.stdout and "--config" not in shown.stdout
