"""The Ray backend beside raw Ray, on a private single-node cluster of this machine.

Each figure beside its anchor, measured in the same run, on the same cluster:

* a call to a trusted plugin (a bare actor) p50, beside a raw actor method call
  awaited from the same event loop (goal ≤ 1.2×); through the sandbox (a worker of
  the node's plugbay agent) p50, beside both;
* 16 concurrent callers: calls/s, beside 16 callers of raw pipelined actor calls
  (goal ≥ 0.8×);
* a plugin's start on Ray (load → serving), beside a raw actor's start (created →
  first call answered);
* a hot reload on Ray (file written → the new version answering), beside the
  plugin's start;
* a lost plugin process (its bare actor, its node's agent: SIGKILL) → the call in
  flight fails with ``PluginCrashed``, beside the heartbeat's timeout (goal ≤ 1 s).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._report import Figure, print_figures

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "ray"

CALLS = 2000
CONCURRENT = 16
SECONDS = 3.0

CODE = """
import asyncio
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def add(self, a: int, b: int) -> int:
        return a + b

    @command
    def label(self) -> str:
        return "{label}"

    @command
    def keep(self, key: str, value: int) -> None:
        self.context.storage.set(key, value)

    @command
    async def wait(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "done"
"""


class Raw:
    """The anchor: a plain actor with the same method."""

    def add(self, a: int, b: int) -> int:
        return a + b


def _write(directory: Path, plugin_id: str, label: str, version: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "main.py").write_text(CODE.format(label=label))
    (directory / "plugin.toml").write_text(
        f'id = "{plugin_id}"\nversion = "{version}"\ntype = "utility"\nentry = "main:P"\n'
    )


def _p50(samples: list[float]) -> float:
    return statistics.median(samples)


async def _latencies(call: Any, n: int = CALLS) -> list[float]:
    for _ in range(200):  # warm up
        await call()
    out = []
    clock = time.perf_counter
    for _ in range(n):
        start = clock()
        await call()
        out.append(clock() - start)
    return out


async def _throughput(call: Any) -> float:
    stop = time.perf_counter() + SECONDS
    done = 0

    async def one() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await call()
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(CONCURRENT)))
    return done / (time.perf_counter() - start)


async def _crash_latency(host: Any, plugin_id: str, kill: Any) -> float:
    from plugbay.api.errors import PluginCrashed

    in_flight = asyncio.create_task(host.call(plugin_id, "wait", seconds=60.0))
    await asyncio.sleep(0.2)
    start = time.perf_counter()
    kill()
    try:
        await in_flight
    except PluginCrashed:
        return time.perf_counter() - start
    raise AssertionError("the call did not fail with PluginCrashed")


async def _measure() -> dict[str, float]:
    import ray

    from plugbay.isolation.policy import IsolationPolicy
    from plugbay.runtime.host import Host

    shutil.rmtree(WORK, ignore_errors=True)
    plugins = WORK / "plugins"
    _write(plugins / "bare", "bench.bare", "v0", "1.0.0")
    _write(plugins / "boxed", "bench.boxed", "v0", "1.0.0")
    _write(plugins / "local", "local.boxed", "v0", "1.0.0")  # a local sandboxed worker
    policy = IsolationPolicy.from_config(
        {
            "ray": {"address": "local", "plugins": ["bench.*"], "num-cpus": 2},
            "policy": {"inline": ["bench.bare"]},
        }
    )
    out: dict[str, float] = {}
    async with Host(
        plugins,
        state_dir=WORK / "state",
        entry_points=False,
        policy=policy,
        init_timeout=60,
        restart_backoff=0.05,
        probation=0.2,
        monitor={"interval": 3600},
    ) as host:
        for pid in ("bench.bare", "bench.boxed", "local.boxed"):
            assert host.plugin(pid).state == "active", host.plugin(pid).reason
        raw = ray.remote(num_cpus=0)(Raw).remote()
        await raw.add.remote(1, 2)

        async def raw_call() -> Any:
            return await raw.add.remote(1, 2)

        async def bare() -> Any:
            return await host.call("bench.bare", "add", a=1, b=2)

        async def boxed() -> Any:
            return await host.call("bench.boxed", "add", a=1, b=2)

        # the anchors: the faster of Ray's own two ways (awaited here, or ray.get in a thread)
        def raw_sync_p50() -> float:
            samples = []
            for n in range(CALLS + 200):
                start = time.perf_counter()
                ray.get(raw.add.remote(1, 2))
                if n >= 200:
                    samples.append(time.perf_counter() - start)
            return _p50(samples)

        def raw_sync_rate() -> float:
            stop = time.perf_counter() + SECONDS
            done, start = 0, time.perf_counter()
            while time.perf_counter() < stop:  # CONCURRENT calls in flight at once
                ray.get([raw.add.remote(1, 2) for _ in range(CONCURRENT)])
                done += CONCURRENT
            return done / (time.perf_counter() - start)

        out["raw_p50"] = min(
            _p50(await _latencies(raw_call)), await asyncio.to_thread(raw_sync_p50)
        )
        out["bare_p50"] = _p50(await _latencies(bare))
        out["boxed_p50"] = _p50(await _latencies(boxed))

        async def keep() -> Any:  # one synced write to the store the host keeps for it
            return await host.call("bench.boxed", "keep", key="k", value=1)

        async def keep_here() -> Any:  # the same in a local sandboxed worker: its own file
            return await host.call("local.boxed", "keep", key="k", value=1)

        out["keep_p50"] = _p50(await _latencies(keep, 300))
        out["keep_here_p50"] = _p50(await _latencies(keep_here, 300))
        out["raw_rate"] = max(await _throughput(raw_call), await asyncio.to_thread(raw_sync_rate))
        out["bare_rate"] = await _throughput(bare)
        out["boxed_rate"] = await _throughput(boxed)

        # starts: a raw actor (created → first call), a plugin (load → serving)
        starts = []
        for _ in range(5):
            begin = time.perf_counter()
            actor = ray.remote(num_cpus=0)(Raw).remote()
            await actor.add.remote(1, 2)
            starts.append(time.perf_counter() - begin)
            ray.kill(actor)
        out["raw_start"] = statistics.median(starts)
        plugin_starts = []
        for n in range(5):
            await host.unload("bench.boxed")
            begin = time.perf_counter()
            await host.load("bench.boxed")
            assert await boxed() == 3
            plugin_starts.append(time.perf_counter() - begin)
            del n
        out["plugin_start"] = statistics.median(plugin_starts)
        # the same, with code the node has not seen (packed, put, fetched, checked, unpacked)
        cold_starts = []
        for n in range(3):
            await host.unload("bench.boxed")
            _write(plugins / "boxed", "bench.boxed", f"cold{n}", "1.0.0")
            begin = time.perf_counter()
            await host.load("bench.boxed")
            assert await boxed() == 3
            cold_starts.append(time.perf_counter() - begin)
        out["cold_start"] = statistics.median(cold_starts)
        bare_starts = []
        for _ in range(3):
            await host.unload("bench.bare")
            begin = time.perf_counter()
            await host.load("bench.bare")
            assert await bare() == 3
            bare_starts.append(time.perf_counter() - begin)
        out["bare_start"] = statistics.median(bare_starts)

        # hot reload: written → the new version answering
        reloads = []
        for n in range(1, 6):
            begin = time.perf_counter()
            _write(plugins / "boxed", "bench.boxed", f"v{n}", f"1.0.{n}")
            await host.reload("bench.boxed")
            assert await host.call("bench.boxed", "label") == f"v{n}"  # calls switched
            reloads.append(time.perf_counter() - begin)
        out["reload"] = statistics.median(reloads)

        # a lost process → PluginCrashed for the call in flight
        def kill_bare() -> None:
            handle = host.plugin("bench.bare").handle
            assert handle is not None and handle.pid is not None
            os.kill(handle.pid, signal.SIGKILL)  # the actor's process, which this run started

        out["crash_actor"] = await _crash_latency(host, "bench.bare", kill_bare)
        backend: Any = host.manager.backends["ray"]
        agents = list(backend._agents.values())
        agent_pid = (await agents[0].ready.remote())["pid"]

        def kill_agent() -> None:
            os.kill(agent_pid, signal.SIGKILL)  # the node's agent, as when its node dies

        out["crash_agent"] = await _crash_latency(host, "bench.boxed", kill_agent)
    return out


def run() -> int:
    try:
        import ray  # noqa: F401
    except ImportError:
        print("\n== Ray backend: skipped (Ray is not installed: pip install 'plugbay[ray]')")
        return 0
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    tmp = tempfile.mkdtemp(prefix="pbb-", dir="/tmp")
    os.environ["RAY_TMPDIR"] = tmp
    try:
        m = asyncio.run(_measure())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    figures = [
        Figure(
            "call to a trusted plugin on Ray (bare actor), p50",
            m["bare_p50"], "raw Ray actor method call, p50", m["raw_p50"],
            "≤ 1.2× the raw actor call", m["bare_p50"] <= 1.2 * m["raw_p50"],
            note="plugbay's frames on a TCP channel to the actor, not an actor call per call",
        ),
        Figure(
            "call through the sandbox (a worker of the node's plugbay agent), p50",
            m["boxed_p50"], "raw Ray actor method call, p50", m["raw_p50"],
            f"reported (bare actor p50: {m['bare_p50'] * 1e3:.3f} ms)", None,
        ),
        Figure(
            f"{CONCURRENT} concurrent callers of the bare-actor plugin",
            m["bare_rate"], f"raw pipelined actor calls ({CONCURRENT} in flight)", m["raw_rate"],
            "≥ 0.8× the raw calls/s", m["bare_rate"] >= 0.8 * m["raw_rate"], unit="calls/s",
        ),
        Figure(
            f"{CONCURRENT} concurrent callers through the sandbox agent",
            m["boxed_rate"], f"raw pipelined actor calls ({CONCURRENT} in flight)", m["raw_rate"],
            "reported", None, unit="calls/s",
        ),
        Figure(
            "plugin start on Ray (sandboxed, load → serving)",
            m["plugin_start"], "raw actor start (created → first call)", m["raw_start"],
            "reported", None,
            note="a forked worker from the node's warm zygote, with every sandbox layer",
        ),
        Figure(
            "plugin start on Ray with new code (shipped: packed, fetched, checked, unpacked)",
            m["cold_start"], "raw actor start (created → first call)", m["raw_start"],
            "reported", None, note=f"warm (its digest cached on the node): {m['plugin_start'] * 1e3:.0f} ms",
        ),
        Figure(
            "context.storage.set from a sandboxed plugin on Ray (kept by the host), p50",
            m["keep_p50"], "the same in a local sandboxed worker (its own file), p50",
            m["keep_here_p50"], "reported", None,
            note=f"a host call on its channel, answered by the broker, and one synced SQLite "
            f"write; a call to it: {m['boxed_p50'] * 1e6:.0f} µs",
        ),
        Figure(
            "plugin start on Ray (trusted, a bare actor: load → serving)",
            m["bare_start"], "raw actor start (created → first call)", m["raw_start"],
            "reported", None, note="a new Ray worker process, as the raw actor's",
        ),
        Figure(
            "hot reload on Ray (written → new version answering)",
            m["reload"], "plugin start on Ray", m["plugin_start"], "reported", None,
        ),
        Figure(
            "bare actor killed → PluginCrashed for the call in flight",
            m["crash_actor"], "heartbeat timeout", 1.0, "≤ 1 s",
            m["crash_actor"] <= 1.0,
            note="this run's SIGKILL: Ray's raylet prints a 'worker died … SYSTEM_ERROR' line for it",
        ),
        Figure(
            "node's agent killed → PluginCrashed for the call in flight",
            m["crash_agent"], "heartbeat timeout", 1.0, "≤ 1 s",
            m["crash_agent"] <= 1.0,
            note="this run's SIGKILL too, and the raylet's second such line",
        ),
    ]  # fmt: skip
    print_figures("Ray backend (a private single-node cluster of this machine)", figures)
    return sum(1 for f in figures if f.passed is False)


if __name__ == "__main__":
    raise SystemExit(run())
