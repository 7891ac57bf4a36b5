"""An idle host's monitor rests between ticks, and whatever the next tick must see ends
the rest at once: a call, a state change, a log record (monitor/monitor.py). The
sweep still finds a worker's memory moving while nobody calls it, and the snapshot is
written as it changes (monitor/figures.py, monitor/rows.py)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from plugbay import ConfigError
from plugbay.monitor.config import MonitorSettings
from plugbay.monitor.figures import WorkerFigures
from plugbay.monitor.rows import SnapshotRows
from plugbay.monitor.sampling import RSS_NOISE
from plugbay.monitor.tracks import Track
from plugbay.runtime.host import Host
from plugbay.state import StateStore
from tests.conftest import PluginFactory
from tests.test_monitor import until

#: ticks every 50 ms while anything happens; a rest as long as a test's bound would be
#: (so a test that waits for what ends a rest fails if it does not)
RESTING = {"interval": 0.05, "idle-interval": 60.0, "loop-block-after": 0.3}
BOXED = 'isolation = "process"\n[resources]\ntimeout = 5\nmemory = "512MiB"\n'
PLUGIN = """
import threading, time
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    kept = []

    @command
    def ping(self) -> str:
        return "pong"

    @command
    def grow_later(self, mib: int, after: float) -> str:
        def grow() -> None:  # a background thread: no call is running when it grows
            time.sleep(after)
            P.kept.append(bytearray(mib * 2**20))
        threading.Thread(target=grow, daemon=True).start()
        return "later"
"""


def _row(host: Host, plugin: str) -> dict[str, Any]:
    assert host.monitor is not None
    return next(r for r in host.monitor.snapshot() if r["id"] == plugin)


async def _resting(host: Host) -> int:
    """Wait until the monitor rests between idle ticks; its tick count then."""
    monitor = host.monitor
    assert monitor is not None
    await until(lambda: monitor.resting, "it rests")
    return monitor._ticks


async def test_an_idle_monitor_rests_and_a_call_ends_the_rest(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.quiet", PLUGIN)
    async with make_host(monitor=RESTING) as host:
        assert host.monitor is not None
        ticks = await _resting(host)
        await asyncio.sleep(0)  # a loop turn or two: still resting, no tick
        assert host.monitor._ticks == ticks
        assert await host.call("acme.quiet", "ping") == "pong"
        # seen within the bound (20 s), not after the idle interval (60 s)
        await until(lambda: _row(host, "acme.quiet")["calls"] == 1, "the call ends the rest")
        assert host.monitor._ticks > ticks


async def test_a_crash_while_resting_is_seen_at_once(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    """A worker killed while nobody calls it: the state change ends the rest, and its
    neighbour still answers."""
    plugins("acme.doomed", PLUGIN, extra=BOXED)
    plugins("acme.neighbour", PLUGIN)
    async with make_host(monitor=RESTING, inline=["acme.neighbour"]) as host:
        assert host.monitor is not None
        handle = host.plugin("acme.doomed").handle
        assert handle is not None and host.plugin("acme.doomed").isolation == "process"
        ticks = await _resting(host)
        os.kill(handle.pid, signal.SIGKILL)
        # within the bound (20 s), not after the idle interval (60 s)
        await until(lambda: host.monitor is not None and host.monitor._ticks > ticks, "a tick")
        await until(lambda: host.plugin("acme.doomed").handle is not handle, "replaced")
        assert await host.call("acme.neighbour", "ping") == "pong"


async def test_a_log_record_from_another_thread_ends_the_rest(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    plugins("acme.talker", PLUGIN)
    async with make_host(monitor=RESTING) as host:
        await _resting(host)
        logger = logging.getLogger("plugbay.plugin.acme.talker")
        await asyncio.to_thread(logger.warning, "said while the monitor rested")

        def stored() -> bool:
            with StateStore.open(tmp_path / "state", read_only=True) as store:
                return any("rested" in r["message"] for r in store.logs("acme.talker"))

        # kept in the state's database within the bound, not after the idle interval
        await until(stored, "the record is written")


async def test_the_sweep_finds_memory_that_grows_while_nobody_calls(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    """The safety net: a background thread grows an idle worker's memory; no call, no
    event marks its plugin, and its row shows the growth."""
    plugins("acme.leaky", PLUGIN, extra=BOXED)
    fast = {"interval": 0.05, "idle-interval": 0.2, "loop-block-after": 0.3}
    async with make_host(monitor=fast, inline=[]) as host:
        assert host.monitor is not None
        assert await host.call("acme.leaky", "grow_later", mib=96, after=1.0) == "later"
        # the row counts a call at the monitor's next tick: the baseline waits for it
        await until(
            lambda: _row(host, "acme.leaky")["rss_bytes"] and _row(host, "acme.leaky")["calls"],
            "its memory and its one call are known",
        )
        before = _row(host, "acme.leaky")["rss_bytes"]
        calls = _row(host, "acme.leaky")["calls"]
        assert calls == 1
        await until(
            lambda: _row(host, "acme.leaky")["rss_bytes"] >= before + 80 * 2**20,
            "the growth shows",
        )
        assert _row(host, "acme.leaky")["calls"] == calls  # no call brought it


def test_an_idle_interval_below_zero_is_refused_with_its_key() -> None:
    with pytest.raises(ConfigError, match="idle-interval"):
        MonitorSettings.from_config({"idle-interval": 0})
    assert MonitorSettings.from_config({"interval": 2}).rest == 10.0  # five intervals
    assert MonitorSettings.from_config({"interval": 2, "idle-interval": 1}).rest == 2.0


def test_snapshot_rows_are_written_as_they_change(tmp_path: Path) -> None:
    """Only changed rows are written; a plugin gone is deleted; the first write replaces
    a previous host's rows; the host's health is the worst of the rows'."""
    built: dict[str, dict[str, Any] | None] = {}

    def row(pid: str, health: str = "green", calls: int = 0) -> dict[str, Any]:
        return {"id": pid, "calls": calls, "calls_per_second": None, "inflight": 0,
                "cpu_percent": 0.0, "health": health}  # fmt: skip

    rows = SnapshotRows()
    with StateStore.open(tmp_path) as store:
        store.put_snapshot({"ghost": row("ghost")})  # a previous host's
        built.update(a=row("a"), b=row("b"))
        rows.mark(["a", "b"])
        changed = rows.changed(built.__getitem__)
        assert rows.whole and set(changed) == {"a", "b"}
        store.put_snapshot(changed, whole=rows.whole)
        rows.whole = False
        assert {r["id"] for r in store.snapshot()[1]} == {"a", "b"}  # the ghost is gone

        rows.mark(["a", "b"])  # looked at, nothing new: nothing to write
        assert rows.changed(built.__getitem__) == {}
        built["a"] = row("a", health="degraded", calls=1)
        built["b"] = None  # gone
        rows.mark(["a", "b"])
        changed = rows.changed(built.__getitem__)
        assert changed == {"a": built["a"], "b": None}
        assert rows.statuses() == ["degraded"]
        store.put_snapshot(changed, whole=False)
        assert [r["id"] for r in store.snapshot()[1]] == ["a"]
        # a row that is not green is built again at the next write, until it is
        built["a"] = row("a", calls=1)
        assert rows.changed(built.__getitem__) == {"a": built["a"]}
        assert rows.statuses() == ["green"]


class _Handle:
    isolated = True

    def __init__(self, pid: int) -> None:
        self.pid = pid


class _Record:
    isolation = "process"

    def __init__(self, pid: int) -> None:
        self.handle = _Handle(pid)


def test_a_swept_worker_that_reads_the_same_is_passed_by() -> None:
    """One read and a comparison: nothing of a quiet worker is kept again; memory within
    the noise of the two ways of reading it is no change; more is a move."""
    marked: list[str] = []
    tracks = {"p": Track()}
    records = {"p": _Record(4242)}
    figures = WorkerFigures(lambda: records, tracks, marked.extend)  # type: ignore[arg-type]
    full, probes = figures.to_read({"p"}, [], set(), tick=2)
    assert not full and probes == {"p": 4242}
    read = (1.0, 50 * 2**20, 3)
    assert figures.keep(full, {}, {"p": read}, {"p"}, now=10.0) == {"p"}  # first: news
    assert marked == ["p"]
    kept = tracks["p"].usage
    # swept (not looked at otherwise): the same read touches nothing
    assert figures.to_read(set(), ["p"], set(), tick=3)[1] == {"p": 4242}
    assert figures.keep({}, {}, {"p": read}, set(), now=11.0) == set()
    assert tracks["p"].usage is kept and marked == ["p"]
    # the other reading of the same memory (a few hundred KiB apart): kept as it was
    near = (1.0, 50 * 2**20 + RSS_NOISE // 4, 3)
    assert figures.keep({}, {}, {"p": near}, set(), now=12.0) == set()
    assert tracks["p"].usage["rss_bytes"] == 50 * 2**20
    # memory that moved: its plugin is looked at, its row shows it
    grown = (1.0, 60 * 2**20, 3)
    assert figures.keep({}, {}, {"p": grown}, set(), now=13.0) == {"p"}
    assert tracks["p"].usage["rss_bytes"] == 60 * 2**20 and marked[-1] == "p"
    del records["p"]  # the plugin is gone
    figures.forget(["p"])
    assert figures.to_read(set(), ["p"], set(), tick=4)[1] == {}
