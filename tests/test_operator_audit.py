"""An operator's day, checked where it went wrong: what a host shows of a plugin whose
worker crashes over and over, or that floods its log, and what the monitoring commands
print with no host running. Real hosts, real sandboxed workers, the real command."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from plugbay import DependentsError, PluginCrashed
from plugbay.runtime.host import Host
from tests._cli import plugbay
from tests._waiting import until
from tests.conftest import PluginFactory

pytestmark = pytest.mark.slow

CRASHER = """
import os
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"

    @command
    def crash(self) -> None:
        os._exit(3)  # its worker dies under the call
"""

FLOODER = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def flood(self, n: int) -> int:
        for i in range(n):
            self.context.logger.info("flood %d", i)
        return n
"""


def series(metrics: bytes, name: str, **labels: str) -> float:
    """The value of the one series ``name`` whose labels include ``labels`` (0 if none)."""
    for line in metrics.decode().splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def crash_and_come_back(host: Host, plugin_id: str) -> float:
    """Crash the plugin's worker with a call; wait until it serves again. Returns when
    it crashed (monotonic)."""
    with pytest.raises(PluginCrashed):
        await host.call(plugin_id, "crash")
    crashed = time.monotonic()
    await until(
        lambda: host.manager.record(plugin_id).state.value == "active",
        f"{plugin_id} restarted after its crash",
        30,
    )
    return crashed


async def test_a_crash_restart_keeps_the_calls_and_errors_the_host_counted(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """The call that crashed the worker, and every call before it, stay in /metrics
    (and so in top and the error-rate rule) once the supervisor restarted the plugin,
    as they stay across a reload. They were all 0 after the restart."""
    plugins("acme.crasher", CRASHER)
    host = Host(plugins.root, state_dir=tmp_path / "state", entry_points=False,
                restart_backoff=0.05)  # fmt: skip
    async with host:
        for _ in range(3):
            assert await host.call("acme.crasher", "ping") == "pong"
        await crash_and_come_back(host, "acme.crasher")
        assert await host.call("acme.crasher", "ping") == "pong"
        metrics = host.render_metrics()
        assert series(metrics, "plugbay_calls_total", plugin="acme.crasher", command="ping") == 4
        assert series(metrics, "plugbay_calls_total", plugin="acme.crasher", command="crash") == 1
        errors = series(
            metrics, "plugbay_call_errors_total", plugin="acme.crasher", command="crash",
            error="PluginCrashed",
        )  # fmt: skip
        assert errors == 1, metrics.decode()
        assert series(metrics, "plugbay_plugin_error_ratio", plugin="acme.crasher") == 0.2
        assert series(metrics, "plugbay_plugin_restarts_total", plugin="acme.crasher") == 1


async def test_the_restarts_rule_counts_crashes_over_its_own_window(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """`[monitor.alerts.restarts]` max = 3 within window = 300 s fires for a plugin that
    crashed 3 times in a few seconds, though each crash came after the supervisor's own
    crash window (here 0.3 s) had passed: the supervisor forgot each crash after its
    window, and the rule never saw more than one."""
    plugins("acme.crasher", CRASHER)
    host = Host(
        plugins.root, state_dir=tmp_path / "state", entry_points=False,
        restart_backoff=0.05, crash_window=0.3, max_crashes=3,
        monitor={"interval": 0.2, "alerts": {"restarts": {"max": 3, "window": 300}}},
    )  # fmt: skip
    async with host:
        crashed = 0.0
        for _ in range(3):
            after = crashed + 0.3
            await until(
                lambda after=after: time.monotonic() > after, "the supervisor's crash window", 5
            )
            crashed = await crash_and_come_back(host, "acme.crasher")
        assert host.manager.record("acme.crasher").state.value == "active"  # never gave up
        fired = await until(
            lambda: [a for a in host.alerts("acme.crasher") if a["rule"] == "restarts"],
            "the restarts alert",
            15,
        )
        assert "crashed 3 times in the last 300 s" in fired[0]["message"]


def _flooded(
    plugins: PluginFactory, tmp_path: Path, *, window: float, flood: int
) -> tuple[Host, Callable[[], int], Callable[[], float], Callable[[], int]]:
    """A host with the flooding plugin, and what to read of its log records: how many the
    log kept, the dropped-records metric, and the drops the host's reports name."""
    plugins("acme.flood", FLOODER)
    config = tmp_path / "plugbay.toml"
    config.write_text(f"[policy.bounds]\nreport-window = {window}\n")
    host = Host(
        plugins.root, state_dir=tmp_path / "state", entry_points=False, config_file=config,
        monitor={"log-ring": 4 * flood},
    )  # fmt: skip

    def records() -> list[dict[str, Any]]:
        return host.logs("acme.flood", limit=4 * flood)

    def kept() -> int:
        return sum(1 for r in records() if r["message"].startswith("flood "))

    def dropped() -> float:
        return series(
            host.render_metrics(), "plugbay_plugin_log_records_dropped_total", plugin="acme.flood"
        )

    def said() -> int:
        reports = [r["fields"] for r in records() if r["fields"].get("source") == "host"]
        return sum(int(f["dropped"].get("log_rate", 0)) for f in reports if "dropped" in f)

    return host, kept, dropped, said


async def test_a_log_flood_is_counted_whole_and_said_in_the_plugins_log(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """Every record of a flood is either kept or counted in
    plugbay_plugin_log_records_dropped_total, the records the worker's own rate limit
    dropped after the flood's last kept one included; and the plugin's log says how many
    were dropped, in all, a second flood within the report window included. Before: the
    metric read 0 for a sandboxed plugin, the worker's drops after its last kept record
    were never counted, and what was dropped within a window after its first report was
    said only if more was dropped after the window."""
    flood = 5_000
    host, kept, dropped, said = _flooded(plugins, tmp_path, window=3.0, flood=flood)
    records = functools.partial(host.logs, "acme.flood", limit=4 * flood)
    async with host:
        budget = host.manager.budgets
        for floods in (1, 2):  # the second within the report window of the first's report
            assert await host.call("acme.flood", "flood", n=flood) == flood
            sent = floods * flood
            await until(
                lambda sent=sent: kept() + dropped() == sent, "every record kept or counted", 15
            )
            assert dropped() > floods * flood / 2  # cut to the rate: most of it dropped
            await until(
                lambda: said() == budget["acme.flood"].dropped["log_rate"], "the drops said", 15
            )
        texts = [r["message"] for r in records() if r["fields"].get("source") == "host"]
        assert any("log records dropped over its rate" in t for t in texts), texts


async def test_log_drops_of_a_workers_last_moments_are_counted_when_it_is_unloaded(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """A flood just before an unload: every record is kept or counted in
    plugbay_plugin_log_records_dropped_total, and the plugin's log says the drops. Before,
    the worker sent its drop count with its next heartbeat, which an unload never let
    come: the drops since the last one were lost."""
    flood = 5_000
    host, kept, dropped, said = _flooded(plugins, tmp_path, window=1.0, flood=flood)
    async with host:
        assert await host.call("acme.flood", "flood", n=flood) == flood
        await host.unload("acme.flood")  # at once: no heartbeat after the flood
        await until(lambda: kept() + dropped() == flood, "every record kept or counted", 10)
        assert dropped() > flood / 2  # cut to the rate: most of it dropped
        budget = host.manager.budgets["acme.flood"]
        await until(lambda: said() == budget.dropped["log_rate"], "the drops said", 15)


def test_health_and_top_with_no_host_print_no_python_none(tmp_path: Path) -> None:
    """With no host running, a plugin has no health: the tables show '-', not 'None'."""
    PluginFactory(tmp_path / "plugins")("acme.quiet")
    for command in (["health"], ["top", "--once"]):
        done = plugbay(*command, cwd=tmp_path)
        assert "acme.quiet" in done.stdout, done
        assert "None" not in done.stdout, done.stdout
        assert "no host is running" in done.stderr, done


async def test_disabling_a_plugin_others_need_says_disable(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """A running host refuses to disable a plugin others need in the words of a disable
    (as the command does with no host running), not of an unload."""
    plugins("acme.base")
    plugins("acme.top", extra='[dependencies]\n"acme.base" = "*"\n')
    async with Host(plugins.root, state_dir=tmp_path / "state", entry_points=False) as host:
        with pytest.raises(DependentsError) as refused:
            await host.disable("acme.base")
        assert str(refused.value) == (
            "plugin 'acme.base': cannot be disabled: acme.top depends on it. "
            "disable those first, or ask for a cascade (cascade=True)"
        )
        assert host.manager.record("acme.base").state.value == "active"


NOISY = """
from plugbay import UtilityPlugin


class P(UtilityPlugin):
    async def initialize(self, context):
        await super().initialize(context)
        context.logger.warning("noisy plugin warns")
"""


def test_plugbay_run_keeps_the_hosts_own_log_in_its_state_directory(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    # errors told the operator 'the host's log has the traceback', and plugbay run
    # wrote the host's log nowhere
    plugins("acme.bad", "raise RuntimeError('boom at import')\n")
    plugins("acme.noisy", NOISY)
    done = plugbay("run", "--once", "--no-http", "--no-metrics", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr  # acme.bad failed
    log = (tmp_path / ".plugbay" / "host.log").read_text()
    assert re.search(r"ERROR plugbay\.\w+: plugin 'acme\.bad': importing 'main' raised", log)
    assert "noisy plugin warns" not in log  # a plugin's own records are in plugbay logs
    shown = plugbay("logs", "acme.noisy", cwd=tmp_path)
    assert "noisy plugin warns" in shown.stdout


def test_the_hosts_log_rolls_over_at_its_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import logging

    from plugbay.cli import _host_log

    monkeypatch.setattr(_host_log, "MAX_BYTES", 1000)
    handler = _host_log.attach(tmp_path)
    try:
        for i in range(100):
            logging.getLogger("plugbay.host").warning("warning %03d %s", i, "x" * 40)
    finally:
        _host_log.detach(handler)
    assert (tmp_path / "host.log.1").stat().st_size < 1200
    assert (tmp_path / "host.log").stat().st_size < 1200
    assert "warning 099" in (tmp_path / "host.log").read_text()
