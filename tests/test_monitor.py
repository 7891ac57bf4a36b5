"""Monitoring: every alert rule fires with a misbehaving plugin and clears again; health,
hung calls with their stacks, per-plugin logs, the plugin's own metrics, promtool."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from plugbay import ConfigError, MetricError, PlugbayError, PluginTimeout
from plugbay.runtime.host import Host
from plugbay.state import StateStore
from tests.conftest import PluginFactory

MISBEHAVING = """
import asyncio, os, time
from plugbay import UtilityPlugin, command
from plugbay.monitor.cache import MeteredCache

class P(UtilityPlugin):
    async def initialize(self, context):
        self.release = asyncio.Event()
        self.kept = []
        self.cache = MeteredCache(context.metrics, "squares", maxsize=4)
        context.logger.info("ready", extra={"fields": {"answer": 42}})

    @command
    def work(self, fail: bool = False) -> str:
        if fail:
            raise OSError("disk on fire")
        return "ok"

    @command
    async def slow(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "slow"

    @command
    async def stuck(self) -> str:
        await self.release.wait()
        return "released"

    @command
    def unstick(self) -> int:
        self.release.set()
        return 0

    @command
    def block(self, seconds: float) -> str:
        time.sleep(seconds)
        return "blocked"

    @command
    def grow(self, mib: int) -> int:
        self.kept.append(bytearray(os.urandom(mib * 1024 * 1024)))
        return len(self.kept)

    @command
    def crash(self) -> None:
        os._exit(3)

    @command
    def square(self, x: int) -> int:
        value = self.cache.get(x)
        if value is None:
            value = self.cache[x] = x * x
        return value

    @command
    def measure(self, n: int) -> int:
        for i in range(n):
            self.context.metrics.increment("jobs", kind="even" if i % 2 == 0 else "odd")
            self.context.metrics.observe("job_seconds", 0.001 * i, kind="any")
        self.context.metrics.gauge("backlog", n)
        return n

    @command
    def chatter(self, lines: int) -> int:
        for i in range(lines):
            print("line", i)
            self.context.logger.info("record %d", i)
        return lines
"""

WATCHER = """
from plugbay import SystemEvent, SystemPlugin, command

class W(SystemPlugin):
    system_hooks = ("alert.*",)

    def __init__(self) -> None:
        self.seen: list[list[str]] = []

    async def on_system_event(self, event: SystemEvent) -> None:
        self.seen.append([event.kind, str(event.data.get("plugin")), str(event.data.get("rule"))])

    @command
    def events(self) -> list[list[str]]:
        return self.seen
"""

FAST = {"interval": 0.05, "loop-block-after": 0.3, "health-interval": 0.1, "health-timeout": 0.3}


def monitor(**alerts: dict[str, Any]) -> dict[str, Any]:
    return {**FAST, "alerts": alerts}


async def until(check: Callable[[], Any], what: str, bound: float = 20.0) -> Any:
    """Poll until ``check()`` is truthy (the bound only turns a hang into a failure)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + bound
    while loop.time() < end:
        value = check()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def firing(host: Host, plugin: str) -> set[str]:
    return {a["rule"] for a in host.alerts(plugin)}


@pytest.fixture
def misbehaving(plugins: PluginFactory) -> PluginFactory:
    plugins("acme.bad", MISBEHAVING, extra="[resources]\ntimeout = 2\n")
    plugins(
        "acme.boxed", MISBEHAVING,
        extra='isolation = "process"\n[resources]\ntimeout = 2\nmemory = "512MiB"\n',
    )  # fmt: skip
    plugins("acme.watch", WATCHER, type="system", cls="W")
    return plugins


async def in_background(host: Host, plugin: str, command: str, **params: Any) -> asyncio.Task[Any]:
    task = asyncio.ensure_future(host.call(plugin, command, **params))
    await asyncio.sleep(0)
    return task


# --------------------------------------------------------------------------- alert rules


async def test_error_rate_fires_is_recorded_and_sent_to_system_plugins_then_clears(
    misbehaving: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    async with make_host(
        monitor=monitor(**{"error-rate": {"threshold": 0.5, "window": 0.5, "min-calls": 3}})
    ) as host:
        for _ in range(4):
            with contextlib.suppress(PlugbayError):
                await host.call("acme.bad", "work", fail=True)
        await until(lambda: "error-rate" in firing(host, "acme.bad"), "error-rate fires")
        alert = host.alerts("acme.bad")[0]
        assert "4 of 4 calls failed" in alert["message"]
        assert host.state is not None
        (stored,) = host.state.alerts("acme.bad")  # recorded while it fires
        assert stored["rule"] == "error-rate" and stored["cleared"] is None
        assert host.health()["plugins"][0]["status"] == "degraded"
        # recovers: the failures leave the window, successes come in
        await asyncio.sleep(0.6)
        for _ in range(4):
            await host.call("acme.bad", "work")
        await until(lambda: "error-rate" not in firing(host, "acme.bad"), "error-rate clears")
        await host.events.drain()
        seen = await host.call("acme.watch", "events")
        assert ["alert.fired", "acme.bad", "error-rate"] in seen
        assert ["alert.cleared", "acme.bad", "error-rate"] in seen
        logged = [r["message"] for r in host.logs("acme.bad")]
        assert any(m.startswith("alert error-rate:") for m in logged)
        assert host.state.alerts("acme.bad") == []  # closed when it cleared, host still up
        (kept,) = host.state.alerts("acme.bad", open_only=False)
        assert kept["cleared"] is not None and kept["version"] == "1.0.0"


async def test_an_alert_can_disable_its_plugin(
    misbehaving: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    rule = {"threshold": 0.5, "window": 5, "min-calls": 2, "disable": True}
    async with make_host(monitor=monitor(**{"error-rate": rule})) as host:
        for _ in range(3):
            with contextlib.suppress(PlugbayError):
                await host.call("acme.bad", "work", fail=True)
        await until(lambda: str(host.plugin("acme.bad").state) == "disabled", "disabled")
        assert "alert error-rate" in (host.plugin("acme.bad").reason or "")
        assert await host.call("acme.watch", "events")  # the host serves on
    with StateStore.open(tmp_path / "state") as store:
        assert "acme.bad" in store.disabled()


async def test_latency_near_the_timeout_fires_and_clears(
    misbehaving: PluginFactory, make_host: Callable[..., Host]
) -> None:
    rule = {"fraction": 0.1, "window": 0.5, "min-calls": 2}  # 0.2 s of a 2 s timeout
    async with make_host(monitor=monitor(latency=rule)) as host:
        for _ in range(2):
            await host.call("acme.bad", "slow", seconds=0.3)
        await until(lambda: "latency" in firing(host, "acme.bad"), "latency fires")
        assert "'slow' p99" in host.alerts("acme.bad")[0]["message"]
        await asyncio.sleep(0.6)
        await until(lambda: "latency" not in firing(host, "acme.bad"), "latency clears")


def sampled_calls(host: Host, plugin: str) -> int:
    """The calls of ``plugin`` the monitor has sampled (and judged its rules on)."""
    rows = [r for r in host.snapshot()["plugins"] if r["id"] == plugin]
    return int(rows[0]["calls"]) if rows else 0


async def test_latency_fires_only_for_calls_surely_over_the_share_of_the_timeout(
    misbehaving: PluginFactory, make_host: Callable[..., Host]
) -> None:
    # 0.4 s is 20% of the 2 s timeout; calls of 0.26 s sit in the histogram's bucket
    # (0.25 s, 0.5 s]: their p99 is not "0.5 s or more", and the rule must not fire
    rule = {"fraction": 0.2, "window": 30, "min-calls": 2}
    async with make_host(monitor=monitor(latency=rule)) as host:
        for _ in range(2):
            await host.call("acme.bad", "slow", seconds=0.26)
        # a tick that samples the third call has both durations, and the rules have judged
        # them once a later tick samples the fourth (ticks run one after another)
        for calls in (3, 4):
            await host.call("acme.bad", "work")
            await until(lambda n=calls: sampled_calls(host, "acme.bad") >= n, "calls sampled")
        assert "latency" not in firing(host, "acme.bad"), host.alerts("acme.bad")
        # calls of 0.55 s are surely over 0.5 s, over the 0.4 s: it fires, saying so
        for _ in range(3):
            await host.call("acme.bad", "slow", seconds=0.55)
        await until(lambda: "latency" in firing(host, "acme.bad"), "latency fires")
        message = host.alerts("acme.bad")[0]["message"]
        assert message == "'slow' p99 is over 0.5 s, at or above 20% of its 2 s timeout"


async def test_steady_memory_growth_fires_and_clears(
    misbehaving: PluginFactory, make_host: Callable[..., Host]
) -> None:
    rule = {"window": 1.0, "min-growth": 16 * 2**20, "min-samples": 4}
    async with make_host(monitor=monitor(**{"memory-growth": rule})) as host:

        async def leak() -> set[str]:
            await host.call("acme.boxed", "grow", mib=4)
            await asyncio.sleep(0.05)
            return firing(host, "acme.boxed")

        fired = False
        for _ in range(200):
            if "memory-growth" in await leak():
                fired = True
                break
        assert fired, "memory-growth never fired"
        assert "grew steadily" in host.alerts("acme.boxed")[0]["message"]
        await until(lambda: "memory-growth" not in firing(host, "acme.boxed"), "growth clears")


async def test_a_long_queue_fires_and_clears(
    misbehaving: PluginFactory, make_host: Callable[..., Host]
) -> None:
    async with make_host(monitor=monitor(queue={"max": 3}, hung={"enabled": False})) as host:
        waiting = [await in_background(host, "acme.bad", "stuck") for _ in range(5)]
        await until(lambda: "queue" in firing(host, "acme.bad"), "queue fires")
        assert "5 calls in flight" in host.alerts("acme.bad")[0]["message"]
        await host.call("acme.bad", "unstick")
        assert await asyncio.gather(*waiting) == ["released"] * 5
        await until(lambda: "queue" not in firing(host, "acme.bad"), "queue clears")


@pytest.mark.parametrize("plugin", ["acme.bad", "acme.boxed"])
async def test_a_hung_call_is_reported_with_the_plugins_stack_then_clears(
    misbehaving: PluginFactory, make_host: Callable[..., Host], plugin: str
) -> None:
    async with make_host(monitor=monitor(hung={"after": 0.3})) as host:
        call = await in_background(host, plugin, "stuck")
        await until(lambda: "hung" in firing(host, plugin), "hung fires")
        (alert,) = host.alerts(plugin)
        assert "a call to 'stuck' has run" in alert["message"]
        # the stack shows where the plugin waits: its own function, in its own file
        assert "in stuck" in alert["details"]["stack"]
        assert "main.py" in alert["details"]["stack"]
        assert host.monitor is not None
        assert host.monitor.check_health(plugin)["status"] == "failing"
        await host.call(plugin, "unstick")
        assert await call == "released"
        await until(lambda: "hung" not in firing(host, plugin), "hung clears")


async def test_an_inline_plugin_blocking_the_loop_is_caught_with_its_stack(
    misbehaving: PluginFactory, make_host: Callable[..., Host]
) -> None:
    async with make_host(monitor=monitor(hung={"after": 5})) as host:
        await host.call("acme.bad", "block", seconds=0.8)
        await until(lambda: "hung" in firing(host, "acme.bad"), "loop block reported")
        (alert,) = host.alerts("acme.bad")
        assert alert["details"]["kind"] == "loop-blocked"
        assert "in block" in alert["details"]["stack"] and "time.sleep" in alert["details"]["stack"]
        await until(lambda: "hung" not in firing(host, "acme.bad"), "loop block clears")


async def test_repeated_restarts_fire_and_clear(
    misbehaving: PluginFactory, make_host: Callable[..., Host]
) -> None:
    async with make_host(
        restart_backoff=0.05, max_crashes=10,
        monitor=monitor(restarts={"max": 2, "window": 1.5}),
    ) as host:  # fmt: skip
        for _ in range(2):
            await until(lambda: str(host.plugin("acme.boxed").state) == "active", "restarted")
            with contextlib.suppress(PlugbayError):
                await host.call("acme.boxed", "crash")
        await until(lambda: "restarts" in firing(host, "acme.boxed"), "restarts fires")
        assert "crashed 2 times" in host.alerts("acme.boxed")[0]["message"]
        await until(lambda: "restarts" not in firing(host, "acme.boxed"), "restarts clears")


# --------------------------------------------------------------------------- the spec's methods


async def test_collect_metrics_report_issue_and_the_host_service(
    misbehaving: PluginFactory, make_host: Callable[..., Host]
) -> None:
    from plugbay.runtime.host import HostInfo

    async with make_host(monitor=FAST) as host:
        monitor = host.monitor
        assert monitor is not None
        await host.call("acme.boxed", "square", x=3)
        await until(
            lambda: (monitor.collect_metrics("acme.boxed")["usage"] or {}).get("rss_bytes"), "usage"
        )
        figures = monitor.collect_metrics("acme.boxed")
        assert figures["calls"] == 1 and figures["instances"] == 1 and figures["inflight"] == 0
        assert 0 < figures["utilization"]["memory"] < 1  # of its 512 MiB
        assert figures["commands"]["square"]["p90_seconds"] is not None
        monitor.report_issue("acme.bad", "the cache is cold", misses=3)
        await host.events.drain()
        (issue,) = [r for r in host.logs("acme.bad") if r["message"] == "the cache is cold"]
        assert issue["fields"]["misses"] == 3 and issue["level"] == 30
        view = HostInfo(host)
        assert view.health()["status"] == "green" and view.alerts() == []


async def test_a_worker_killed_for_blocking_its_loop_leaves_its_stack_in_the_log(
    misbehaving: PluginFactory, make_host: Callable[..., Host]
) -> None:
    async with make_host(monitor=FAST, max_crashes=10) as host:
        # a def command holds its loop up to its time limit (2 s); past it, it is killed
        with pytest.raises(PluginTimeout, match="did not finish within 2 s"):
            await host.call("acme.boxed", "block", seconds=5)
        (record,) = await until(
            lambda: [r for r in host.logs("acme.boxed") if "its stacks:" in r["message"]],
            "the heartbeat's kill, with its stacks, in the plugin's log",
        )
        # faulthandler's words: the worker's main thread, inside the plugin's command
        assert 'main.py", line' in record["message"] and "in block" in record["message"]
        assert record["level"] == 40


# --------------------------------------------------------------------------- health

HEALTHY = """
import asyncio
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    answer = "green"

    @command
    async def health(self) -> str:
        if self.answer == "hang":
            await asyncio.Event().wait()
        return self.answer

    @command
    def set(self, answer: str) -> str:
        type(self).answer = answer
        return answer
"""


async def test_readiness_liveness_and_the_overall_status(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.ready", HEALTHY)
    plugins("acme.worker", HEALTHY, extra='isolation = "process"\n')
    plugins("acme.broken", "raise ImportError('no such thing')\n")
    async with make_host(monitor=FAST) as host:

        def status(pid: str) -> str:
            return str(host.monitor.check_health(pid)["status"])  # type: ignore[union-attr]

        assert status("acme.broken") == "failing"
        assert host.health()["status"] == "failing"
        await until(lambda: status("acme.ready") == "green", "green")
        await host.call("acme.ready", "set", answer="degraded")
        await until(lambda: status("acme.ready") == "degraded", "degraded")
        # a health check that hangs is bounded: an answer of its own, never a stuck host
        await host.call("acme.ready", "set", answer="hang")
        await until(lambda: status("acme.ready") == "degraded", "hang bounded")
        await until(
            lambda: (
                "did not answer within 0.3 s"
                in " ".join(host.monitor.check_health("acme.ready")["reasons"])
            ),  # type: ignore[union-attr]
            "says why",
        )
        # liveness: a worker that stops answering its heartbeat is not live
        await until(lambda: status("acme.worker") == "green", "worker green")
        pid = host.plugin("acme.worker").handle.pid  # type: ignore[union-attr]
        os.kill(pid, signal.SIGSTOP)
        try:
            health = await until(
                lambda: (h := host.monitor.check_health("acme.worker"))["live"] is False and h,  # type: ignore[union-attr]
                "not live",
            )
            assert health["status"] == "failing"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


# --------------------------------------------------------------------------- logs


async def test_structured_logs_from_both_backends_kept_in_memory_and_in_the_state(
    misbehaving: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    async with make_host(monitor=FAST) as host:
        await host.call("acme.boxed", "chatter", lines=2)
        await host.call("acme.bad", "chatter", lines=1)

        def boxed() -> list[dict[str, Any]]:
            return host.logs("acme.boxed")

        await until(
            lambda: any(
                r["message"] == "line 1" and r["logger"].endswith(".stdout") for r in boxed()
            ),
            "stdout",
        )
        ready = [r for r in host.logs("acme.bad") if r["message"] == "ready"]
        assert (
            ready
            and ready[0]["fields"] == {"answer": 42, "source": "plugin"}
            and ready[0]["version"] == "1.0.0"
        )
        messages = [r["message"] for r in boxed()]
        assert "line 1" in messages and "record 1" in messages and "ready" in messages
        with pytest.raises(PlugbayError, match=r"no plugin 'acme\.nope'"):
            host.logs("acme.nope")
        # a call past its limit is a security event in the plugin's log
        with contextlib.suppress(PlugbayError):
            await host.call("acme.bad", "slow", seconds=5)
        await until(
            lambda: any(r["fields"].get("security") for r in host.logs("acme.bad")),
            "security event",
        )
        host.events.emit(
            "security.denied", plugin="acme.bad", message="network denied: 10.0.0.1:80"
        )
        await until(
            lambda: any("network denied" in r["message"] for r in host.logs("acme.bad")),
            "denied permission",
        )
    with StateStore.open(tmp_path / "state") as store:
        stored = store.logs("acme.boxed", limit=1000)
        assert any(r["message"] == "line 0" and r["logger"].endswith(".stdout") for r in stored)
        assert store.logs("acme.bad", min_level=30)  # the security events
        assert all(r["level"] >= 30 for r in store.logs("acme.bad", min_level=30))


@pytest.mark.parametrize("plugin", ["acme.bad", "acme.boxed"])
async def test_a_plugin_that_floods_its_log_is_rate_limited_and_counted(
    misbehaving: PluginFactory, make_host: Callable[..., Host], plugin: str
) -> None:
    flood = {**FAST, "log-rate": 100, "log-burst": 200, "log-ring": 500}
    async with make_host(monitor=flood) as host:
        assert await host.call(plugin, "chatter", lines=5_000) == 5_000
        assert await host.call("acme.watch", "events") == []  # others keep serving
        await until(
            lambda: any("dropped" in r["message"] for r in host.logs(plugin, limit=1000)),
            "the loss is said",
        )
        kept = host.logs(plugin, limit=10_000)
        assert len(kept) <= 500
        if plugin == "acme.bad":
            assert host.monitor.logs.dropped()[plugin] > 4_000  # type: ignore[union-attr]


def test_log_retention_keeps_the_newest_per_plugin(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        store.add_logs([(float(i), "a", "1", 20, "x", f"m{i}", None) for i in range(50)])
        store.add_logs([(1e12, "b", "1", 20, "x", "future", None)])
        assert store.prune_logs(older_than=10.0, per_plugin=20) == 10 + 20
        assert [r["message"] for r in store.logs("a", limit=100)] == [
            f"m{i}" for i in range(30, 50)
        ]
        assert len(store.logs("b")) == 1


# --------------------------------------------------------------------------- metrics


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_a_workers_own_counters_go_on_across_a_reload_and_a_crash(
    misbehaving: PluginFactory, make_host: Callable[..., Host]
) -> None:
    # a new worker counts from zero: its 2 replaced the 2 before, and Prometheus saw no
    # increase (or a drop) where 4 calls had counted
    pv = (("plugin", "acme.boxed"), ("version", "1.0.0"))
    jobs = ("plugbay_custom_jobs_total", (("kind", "even"), *pv))
    timed = ("plugbay_custom_job_seconds_count", (("kind", "any"), *pv))

    def figures(want: float) -> dict[Any, float] | None:
        got = samples(host.render_metrics().decode())
        return got if got.get(jobs) == want else None

    async with make_host(monitor=FAST) as host:
        await host.call("acme.boxed", "measure", n=4)
        await until(lambda: figures(2), "the first worker's figures")
        await host.reload("acme.boxed")
        await host.call("acme.boxed", "measure", n=4)
        got = await until(lambda: figures(4), "the counter going on after the reload")
        assert got[timed] == 8
        with contextlib.suppress(PlugbayError):
            await host.call("acme.boxed", "crash")
        await until(lambda: str(host.plugin("acme.boxed").state) == "active", "restarted")
        await host.call("acme.boxed", "measure", n=2)
        got = await until(lambda: figures(5), "the counter going on after the crash")
        assert got[timed] == 10


async def test_every_listed_metric_is_exposed_and_promtool_accepts_it(
    misbehaving: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make promtool` installs Debian's prometheus package"
    async with make_host(monitor=FAST) as host:
        for pid in ("acme.bad", "acme.boxed"):
            await host.call(pid, "measure", n=4)
            for x in (1, 1, 2):
                await host.call(pid, "square", x=x)
            with contextlib.suppress(PlugbayError):
                await host.call(pid, "work", fail=True)
        # a worker sends its plugin's own figures with its heartbeat
        await until(
            lambda: (
                b'plugbay_custom_jobs_total{kind="odd",plugin="acme.boxed"' in host.render_metrics()
            ),
            "the worker's metrics",
        )
        await until(lambda: b"plugbay_plugin_memory_bytes{" in host.render_metrics(), "usage")
        text = host.render_metrics().decode()
    checked = await asyncio.to_thread(
        subprocess.run,
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    got = samples(text)
    for pid in ("acme.bad", "acme.boxed"):
        pv = (("plugin", pid), ("version", "1.0.0"))
        assert got[("plugbay_custom_jobs_total", (("kind", "even"), *pv))] == 2
        assert got[("plugbay_custom_cache_hits_total", (("cache", "squares"), *pv))] == 1
        assert got[("plugbay_custom_cache_misses_total", (("cache", "squares"), *pv))] == 2
        assert got[("plugbay_custom_job_seconds_count", (("kind", "any"), *pv))] == 4
        assert got[("plugbay_custom_backlog", pv)] == 4
        errors = [
            v for (n, lb), v in got.items() if n == "plugbay_call_errors_total" and lb[-2:] == pv
        ]
        assert errors == [1]
        assert got[("plugbay_plugin_error_ratio", pv)] == pytest.approx(1 / 5)
        assert got[("plugbay_plugin_success_ratio", pv)] == pytest.approx(4 / 5)
        assert ("plugbay_plugin_init_seconds", pv) in got
        assert ("plugbay_plugin_uptime_seconds", pv) in got
        assert got[("plugbay_plugin_inflight", pv)] == 0
        assert got[("plugbay_plugin_instances", pv)] == 1
        assert (
            got[
                (
                    "plugbay_plugin_health",
                    (("plugin", pid), ("status", "green"), ("version", "1.0.0")),
                )
            ]
            == 1
        )
    boxed = (("plugin", "acme.boxed"), ("version", "1.0.0"))
    for name in ("memory_bytes", "memory_unique_bytes", "cpu_seconds_total", "open_files",
                 "threads", "storage_read_bytes_total", "storage_write_bytes_total"):  # fmt: skip
        assert (f"plugbay_plugin_{name}", boxed) in got, name
    assert (
        got[
            (
                "plugbay_plugin_events_delivered_total",
                (("plugin", "acme.watch"), ("version", "1.0.0")),
            )
        ]
        >= 0
    )
    assert ("plugbay_host_memory_bytes", ()) in got


MEASURED = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def clash(self) -> None:
        self.context.metrics.increment("requests")
        self.context.metrics.gauge("requests", 1)

    @command
    def reserved(self) -> None:
        self.context.metrics.increment("hits", plugin="other")

    @command
    def explode(self, n: int) -> int:
        for user in range(n):
            self.context.metrics.increment("per_user", user=str(user))
        return n
"""


async def test_clashing_names_reserved_labels_and_label_explosions(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.metrics", MEASURED)
    async with make_host(monitor=FAST) as host:
        with pytest.raises(
            PlugbayError, match="the gauge 'requests' clashes with the counter 'requests'"
        ):
            await host.call("acme.metrics", "clash")
        with pytest.raises(PlugbayError, match="the label 'plugin', which the host sets itself"):
            await host.call("acme.metrics", "reserved")
        assert await host.call("acme.metrics", "explode", n=500) == 500
        got = samples(host.render_metrics().decode())
        series = [k for k in got if k[0] == "plugbay_custom_per_user_total"]
        assert len(series) == 100
        pv = (("plugin", "acme.metrics"), ("version", "1.0.0"))
        assert (
            got[("plugbay_plugin_metric_series_dropped_total", (("metric", "per_user"), *pv))]
            == 400
        )
        await until(
            lambda: any(
                "reached 100 label sets" in r["message"] for r in host.logs("acme.metrics")
            ),
            "said once in the plugin's log",
        )
    from plugbay.monitor.metrics import PluginMetrics

    made = PluginMetrics("x")
    made.observe("t", 1.0)
    with pytest.raises(MetricError, match="the counter 't' clashes with the histogram 't'"):
        made.increment("t")


async def test_a_scrape_during_reloads_is_always_whole(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    directory = plugins("acme.bad", MISBEHAVING)
    async with make_host(monitor=FAST) as host:
        stop = False

        async def scrape() -> int:
            count = 0
            while not stop:
                text = await asyncio.to_thread(host.render_metrics)
                assert b"plugbay_plugin_up" in text
                list(text_string_to_metric_families(text.decode()))
                count += 1
            return count

        scraping = asyncio.ensure_future(scrape())
        await asyncio.sleep(0.05)
        for minor in range(1, 4):
            manifest = directory / "plugin.toml"
            manifest.write_text(
                manifest.read_text().replace(f'"1.{minor - 1}.0"', f'"1.{minor}.0"')
            )
            await host.reload("acme.bad")
            await host.call("acme.bad", "work")
            await asyncio.sleep(0.02)
        stop = True
        assert await scraping > 0
        assert 'version="1.3.0"' in host.render_metrics().decode()


# --------------------------------------------------------------------------- profile, config


@pytest.mark.parametrize("plugin", ["acme.bad", "acme.boxed"])
async def test_profile_runs_in_the_plugins_own_backend(
    misbehaving: PluginFactory, make_host: Callable[..., Host], plugin: str
) -> None:
    async with make_host(monitor=FAST) as host:
        result, report = await host.profile(plugin, "square", {"x": "7"})
    assert result == 49
    assert "square" in report and "cumulative" in report
    if plugin == "acme.boxed":
        assert "worker.py" in report  # measured in the worker, not in the host


async def test_bad_monitor_settings_are_refused_with_the_key(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    host = make_host(monitor={"alerts": {"error-rate": {"treshold": 0.5}}})
    with pytest.raises(ConfigError, match="treshold"):
        await host.start()
    await host.stop()
    config = tmp_path / "plugbay.toml"
    config.write_text("[monitor]\ninterval = 0\n")
    host = make_host(config_file=config)
    with pytest.raises(ConfigError, match=r"monitor\.interval must be above 0"):
        await host.start()
    await host.stop()
    config.write_text("[monitor.alerts.queue]\nmax = 7\n")
    async with make_host(config_file=config) as host:
        assert host.monitor is not None and host.monitor.settings.alerts.queue.max == 7


NOSY = """
import socket
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def phone_home(self) -> str:
        socket.create_connection(("127.0.0.1", 9), timeout=1).close()
        return "connected"
"""


async def test_a_sandbox_denial_is_a_security_record_in_the_plugins_log(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.nosy", NOSY)
    async with Host(
        plugins.root, state_dir=tmp_path / "state", entry_points=False, monitor=FAST
    ) as host:  # the default policy: a sandboxed worker
        with pytest.raises(PlugbayError):
            await host.call("acme.nosy", "phone_home")
        record = await until(
            lambda: next((r for r in host.logs("acme.nosy") if r["fields"].get("security")), None),
            "the denial in the plugin's log",
        )
        assert record["level"] == 30 and record["plugin"] == "acme.nosy"
        assert record["message"].startswith("permission denied: ")
        # a sandboxed worker's data directory is measured against its storage quota
        monitor = host.monitor
        assert monitor is not None
        await until(
            lambda: monitor.collect_metrics("acme.nosy")["utilization"].get("storage") is not None,
            "storage measured",
        )
        assert 0 <= monitor.collect_metrics("acme.nosy")["utilization"]["storage"] < 1
    with StateStore.open(tmp_path / "state") as store:
        assert any(r["fields"].get("security") for r in store.logs("acme.nosy"))
