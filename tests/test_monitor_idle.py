"""An idle plugin costs the monitor little (monitor/tracks.py, monitor/sampling.py) and
loses nothing: its figures stay, a call after a long idle shows at once, alerts still fire."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from plugbay import PlugbayError
from plugbay.monitor.alerts import Sample, evaluate
from plugbay.monitor.config import AlertSettings
from plugbay.monitor.logs import LogManager
from plugbay.monitor.metrics import CommandStats
from plugbay.monitor.sampling import REFRESH_TICKS
from plugbay.monitor.tracks import SWEEP_TICKS, Track, caught_up, rates, window
from plugbay.runtime.host import Host
from plugbay.state import StateStore
from tests.conftest import PluginFactory
from tests.test_monitor import FAST, MISBEHAVING, until

NEIGHBOUR = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"
"""
HEALTHY = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def health(self) -> dict[str, bool]:
        return {"ok": True}
"""
BOXED = 'isolation = "process"\n[resources]\ntimeout = 2\nmemory = "512MiB"\n'


def row(host: Host, plugin: str) -> dict[str, Any]:
    assert host.monitor is not None
    return next(r for r in host.monitor.snapshot() if r["id"] == plugin)


async def test_a_plugin_called_after_a_long_idle_shows_its_calls_memory_and_alerts(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.early", MISBEHAVING, extra=BOXED)
    plugins("acme.late", MISBEHAVING, extra=BOXED)
    alerts = {
        "error-rate": {"threshold": 0.5, "window": 30, "min-calls": 3},
        "memory-growth": {"enabled": False},  # the 64 MiB below would be one
    }
    async with make_host(monitor={**FAST, "alerts": alerts}) as host:
        assert host.monitor is not None and host.plugin("acme.late").isolation == "process"
        for _ in range(3):
            await host.call("acme.early", "work")
        await until(lambda: row(host, "acme.early")["calls"] == 3, "the calls are counted")
        # idle through many ticks and several sweeps: settled, looked at only in turn
        ticks = host.monitor._ticks
        await until(lambda: host.monitor._ticks > ticks + 60, "sixty ticks", bound=60)
        early = row(host, "acme.early")
        assert early["calls"] == 3 and early["calls_per_second"] == 0  # kept, and idle now
        assert early["p50_seconds"] is not None and early["error_rate"] == 0
        assert early["rss_bytes"] and early["rss_bytes"] > 4 * 2**20  # its memory is known
        idle_rss = row(host, "acme.late")["rss_bytes"]
        assert idle_rss  # a worker never called has its memory read too

        # the idle one is called: its calls and its new memory show within a few ticks
        await host.call("acme.late", "grow", mib=64)
        figures = host.monitor.collect_metrics("acme.late")  # read in full when asked
        assert figures["commands"]["grow"]["calls"] == 1
        assert figures["usage"]["rss_bytes"] >= idle_rss + 60 * 2**20
        await until(
            lambda: (
                row(host, "acme.late")["rss_bytes"] >= idle_rss + 60 * 2**20
                and row(host, "acme.late")["calls"] == 1
            ),
            "the call and the memory in the snapshot",
        )
        # and its alert rules still look at it: failures after the idle fire error-rate
        for _ in range(4):
            with contextlib.suppress(PlugbayError):
                await host.call("acme.late", "work", fail=True)
        await until(
            lambda: {a["rule"] for a in host.alerts("acme.late")} == {"error-rate"},
            "error-rate fires after the idle",
        )
        assert not host.alerts("acme.early")  # its neighbour, idle, is left alone


async def test_one_call_wakes_a_settled_plugin_though_calls_are_sampled(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    """Only a timed call marks a plugin for the tick; a settled plugin's commands are
    armed so that the one call that wakes it is timed, past the first always-timed calls."""
    plugins("acme.busy", MISBEHAVING)
    for i in range(2 * SWEEP_TICKS):  # neighbours: the sweep comes round once in 60 ticks
        plugins(f"acme.n{i}", NEIGHBOUR)
    async with make_host(monitor=FAST) as host:
        assert host.monitor is not None
        for _ in range(CommandStats.ALWAYS + 3 * CommandStats.EVERY + 5):  # sampled by now
            await host.call("acme.busy", "work")
        before = row(host, "acme.busy")
        await until(lambda: row(host, "acme.busy")["calls_per_second"] == 0, "it settles")
        ticks = host.monitor._ticks
        await until(lambda: host.monitor._ticks > ticks + 3, "a few settled ticks")
        stats = host.manager.records_by_id["acme.busy"].metrics.commands["work"]
        assert stats.left == 1  # armed
        called = row(host, "acme.busy")["calls"]
        assert called >= before["calls"]
        ticks = host.monitor._ticks
        await host.call("acme.busy", "work")
        await until(lambda: row(host, "acme.busy")["calls"] == called + 1, "the one call shows")
        # seen because the call marked it, not because the sweep came round to it
        assert host.monitor._ticks - ticks < 5


async def test_a_health_probe_leaves_a_settled_plugin_settled(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    """The monitor's own probe is not a caller's call: it neither counts nor marks the
    plugin for a full read, so a plugin with ``health()`` settles like any other."""
    plugins("acme.probed", HEALTHY)
    async with make_host(monitor=FAST) as host:
        assert host.monitor is not None
        manager = host.manager
        for _ in range(3):
            manager.touched.clear()
            assert await manager.call("acme.probed", "health", {}, counted=False) == {"ok": True}
            assert "acme.probed" not in manager.touched
        stats = manager.records_by_id["acme.probed"].metrics.commands["health"]
        assert stats.calls == 0  # and not counted
        await host.call("acme.probed", "health")  # a caller's call is counted and timed
        assert stats.calls == 1 and stats.timed == 1


def _track(points: list[tuple[float, int, int]]) -> Track:
    track = Track(clear=True, crashes_seen=0)
    for at, calls, errors in points:
        track.samples.append(Sample(at, calls, errors, {"c": ([calls, 0], 1.0)}, 100, 0))
    return track


def test_catching_up_a_settled_plugin_equals_a_sample_every_tick() -> None:
    rules = AlertSettings()
    rules.error_rate.window, rules.error_rate.min_calls = 30.0, 3
    busy = [(float(t), 3 * t, 2 * t) for t in range(6)]  # six ticks of calls, most failing
    every_tick = _track(busy + [(float(t), 15, 10) for t in range(6, 30)])
    lazy = _track(busy)  # settled after t=5: nobody looked at it since
    caught_up(lazy, now=30.0, interval=1.0)
    assert [s.at for s in lazy.samples] == [s.at for s in every_tick.samples]
    assert list(lazy.samples) == list(every_tick.samples)
    holding = evaluate(rules, list(lazy.samples), crashes=[], hung=None, now=30.0)
    assert holding == evaluate(rules, list(every_tick.samples), crashes=[], hung=None, now=30.0)
    assert [c.rule for c in holding] == ["error-rate"]  # the failures 25 s ago are still in
    # long after: only what the window keeps is kept, and the failures have left it
    caught_up(lazy, now=200.0, interval=1.0)
    assert lazy.samples[0].at >= 200.0 - lazy.keep and len(lazy.samples) <= lazy.keep + 1
    assert not evaluate(rules, list(lazy.samples), crashes=[], hung=None, now=200.0)


def test_a_settled_plugins_figures_read_as_of_now() -> None:
    track = _track([(0.0, 0, 0), (1.0, 10, 1), (2.0, 20, 2)])
    rate, error_rate, p50, _ = rates(window(track, now=2.0, interval=1.0))
    assert rate == 10 and error_rate == 0.1 and p50 is not None  # busy: as before
    rate, error_rate, p50, _ = rates(window(track, now=10.0, interval=1.0))
    assert rate == 0 and error_rate == 0.1  # idle since: nothing a second, same window
    rate, error_rate, p50, _ = rates(window(track, now=500.0, interval=1.0))
    assert rate == 0 and error_rate == 0.1 and p50 is not None  # long idle: since the start
    assert list(track.samples)[-1].at == 2.0  # reading changed nothing


async def test_an_idle_tick_wakes_a_thread_only_to_write(
    plugins: PluginFactory,
    make_host: Callable[..., Host],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """An idle tick probes its workers on the loop (a line of /proc each) and wakes a
    thread only for a full read, the host's descriptors, or its write, which holds the
    host's row and no idle plugin's: each wake-up of an idle thread costs CPU (about a
    millisecond on a virtual machine), and each row written costs more."""
    plugins("acme.boxed", NEIGHBOUR, extra=BOXED)
    plugins("acme.inline", NEIGHBOUR)
    hops: list[str] = []
    real, put = asyncio.to_thread, StateStore.put_snapshot
    written: list[set[str]] = []

    async def counted(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(func, "__name__", repr(func)))
        return await real(func, *args, **kwargs)

    def seen(store: StateStore, rows: dict[str, Any], *, whole: bool = True) -> None:
        written.append(set(rows))
        put(store, rows, whole=whole)

    monkeypatch.setattr(StateStore, "put_snapshot", seen)
    async with make_host(monitor=FAST) as host:
        assert host.monitor is not None and host.plugin("acme.boxed").isolation == "process"
        assert await host.call("acme.boxed", "ping") == "pong"
        await until(lambda: row(host, "acme.boxed")["calls_per_second"] == 0, "it settles")
        await until(lambda: len(written) >= 2 and written[-1] == {"*host*"}, "rows settle")
        with monkeypatch.context() as patch:
            patch.setattr(asyncio, "to_thread", counted)
            ticks, writes = host.monitor._ticks, len(written)
            await until(lambda: host.monitor._ticks >= ticks + 20, "twenty idle ticks")
            idle = host.monitor._ticks - ticks
        assert await host.call("acme.boxed", "ping") == "pong"  # still serving
        await until(lambda: "acme.boxed" in written[-1], "the call's row is written")
        when, rows = await asyncio.to_thread(_snapshot, tmp_path / "state")
    # before: a thread for every tick's reads and another for every tick's writes
    assert hops.count("sample_usage") <= idle // REFRESH_TICKS + 2
    assert 0 < hops.count("_persist") <= idle + 1
    # the idle plugins' rows were not written again (the sandboxed one's, when its
    # worker's CPU or memory moved), the host's every time; all of them still there
    idle_writes = written[writes : writes + idle - 1]
    assert idle_writes and all("*host*" in keys for keys in idle_writes)
    assert not any("acme.inline" in keys for keys in idle_writes)
    assert sum("acme.boxed" in keys for keys in idle_writes) <= len(idle_writes) // 2
    assert when and {r["id"] for r in rows} == {"*host*", "acme.boxed", "acme.inline"}


def _snapshot(state: Path) -> tuple[float | None, list[dict[str, Any]]]:
    with StateStore.open(state, read_only=True) as store:
        return store.snapshot()


def test_log_records_and_their_losses_are_waiting_until_persisted(tmp_path: Path) -> None:
    logs = LogManager(rate=1e-6, burst=1)  # one record, then none for days
    assert not logs.waiting()
    assert logs.add("acme.a", logging.INFO, "kept")
    assert logs.waiting()
    with StateStore.open(tmp_path) as store:
        assert logs.persist(store) == 1
        assert not logs.waiting()
        assert not logs.add("acme.a", logging.INFO, "over the rate: dropped")
        assert logs.waiting()  # the loss is said in a line of its own
        assert logs.persist(store) == 1
        assert not logs.waiting()
        assert logs.persist(store) == 0
        said = store.logs("acme.a", limit=10)
    assert any(r["message"].startswith("1 log records dropped") for r in said)
