"""Many plugins on a simulated cluster: what the host pays per plugin (docs/scale-out.md).

A ``ray.cluster_utils.Cluster`` of this machine (a head and three nodes, one CPU
each) and ``PLUGBAY_SCALE_PLUGINS`` (default 200) untrusted plugins asking for no
CPU, spread by plugbay over the four nodes, each a sandboxed worker forked by its
node's agent. Measured: the time to start them all, the host's memory, descriptors
and idle CPU (heartbeats) per plugin, the /metrics page per plugin, a call's p50
with every plugin loaded beside one with a single plugin, and calls/s when 32
callers fan in over all of them. ``docs/scale-out.md`` extrapolates these to
10,000 plugins on 100 nodes.
"""

from __future__ import annotations

import asyncio
import collections
import os
import shutil
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import psutil

from bench._report import Figure, print_figures

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "ray-scale"
PLUGINS = int(os.environ.get("PLUGBAY_SCALE_PLUGINS", "200"))
NODES = 4

CODE = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def add(self, a: int, b: int) -> int:
        return a + b
"""


def _write(root: Path, n: int) -> None:
    directory = root / f"p{n:05d}"
    directory.mkdir(parents=True)
    (directory / "main.py").write_text(CODE)
    (directory / "plugin.toml").write_text(
        f'id = "scale.p{n:05d}"\nversion = "1.0.0"\ntype = "utility"\nentry = "main:P"\n'
    )


async def _p50(host: Any, plugin: str, n: int = 1000) -> float:
    samples = []
    for i in range(n + 100):
        start = time.perf_counter()
        await host.call(plugin, "add", a=1, b=2)
        if i >= 100:
            samples.append(time.perf_counter() - start)
    return statistics.median(samples)


async def _fan_in(host: Any, ids: list[str], seconds: float = 3.0) -> float:
    stop = time.perf_counter() + seconds
    done = 0

    async def caller(k: int) -> None:
        nonlocal done
        i = k
        while time.perf_counter() < stop:
            await host.call(ids[i % len(ids)], "add", a=1, b=2)
            i += 32
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(caller(k) for k in range(32)))
    return done / (time.perf_counter() - start)


async def _measure(cluster: Any) -> dict[str, Any]:
    from plugbay.isolation.policy import IsolationPolicy
    from plugbay.runtime.host import Host
    from plugbay.runtime.prometheus import exposition

    me = psutil.Process()
    shutil.rmtree(WORK, ignore_errors=True)
    one, many = WORK / "one", WORK / "many"
    _write(one, 0)
    for n in range(PLUGINS):
        _write(many, n)
    policy = IsolationPolicy.from_config(
        {"ray": {"address": cluster.address, "plugins": ["scale.*"], "start-timeout": 300}}
    )
    options: dict[str, Any] = {
        "entry_points": False, "policy": policy, "init_timeout": 120,
        "monitor": {"interval": 3600},
    }  # fmt: skip
    out: dict[str, Any] = {}
    begin = time.perf_counter()
    async with Host(one, state_dir=WORK / "state-one", **options) as host:
        out["start_one"] = time.perf_counter() - begin
        out["p50_one"] = await _p50(host, "scale.p00000")
        out["rss_one"], out["fds_one"] = me.memory_info().rss, me.num_fds()
        cpu0, t0 = sum(me.cpu_times()[:2]), time.perf_counter()
        await asyncio.sleep(3.0)
        out["idle_cpu_one"] = (sum(me.cpu_times()[:2]) - cpu0) / (time.perf_counter() - t0)
        out["fan_in_one"] = await _fan_in(host, ["scale.p00000"])
    base_fds = me.num_fds()
    # what the host's Python objects take per plugin (its RSS keeps what the first host
    # freed, so its growth says little)
    tracemalloc.start()
    begin = time.perf_counter()
    async with Host(many, state_dir=WORK / "state-many", **options) as host:
        out["start_all"] = time.perf_counter() - begin
        records = host.plugins()
        active = [r for r in records if str(r.state) == "active"]
        out["active"] = len(active)
        ids = [r.id for r in active]
        out["per_node"] = collections.Counter(
            getattr(r.handle, "node", "?")[:8] for r in active
        ).most_common()
        await asyncio.sleep(1.0)
        out["rss_per_plugin"] = tracemalloc.get_traced_memory()[0] / len(active)
        tracemalloc.stop()
        out["fds_per_plugin"] = (me.num_fds() - base_fds) / len(active)
        cpu0, t0 = sum(me.cpu_times()[:2]), time.perf_counter()
        await asyncio.sleep(5.0)  # idle: only heartbeats and the channels' upkeep
        out["idle_cpu"] = (sum(me.cpu_times()[:2]) - cpu0) / (time.perf_counter() - t0)
        page = exposition(host.manager)
        out["metrics_bytes_per_plugin"] = len(page) / len(active)
        out["series_per_plugin"] = sum(
            1 for line in page.decode().splitlines() if line and not line.startswith("#")
        ) / len(active)
        out["p50_many"] = await _p50(host, ids[len(ids) // 2])
        out["fan_in"] = await _fan_in(host, ids)
        usage = [host.manager.monitor_usage(i) for i in ids[:20]]
        uss = [u["uss_bytes"] for u in usage if "uss_bytes" in u]
        out["worker_uss"] = statistics.median(uss) if uss else float("nan")
        stop_begin = time.perf_counter()
    out["stop_all"] = time.perf_counter() - stop_begin
    # the same plugins in sandboxed workers of this machine (the process backend)
    local = {k: v for k, v in options.items() if k != "policy"}
    begin = time.perf_counter()
    async with Host(many, state_dir=WORK / "state-local", **local) as host:
        out["start_all_local"] = time.perf_counter() - begin
        ids = [r.id for r in host.plugins() if str(r.state) == "active"]
        out["fan_in_local"] = await _fan_in(host, ids)
        cpu0, t0 = sum(me.cpu_times()[:2]), time.perf_counter()
        await asyncio.sleep(5.0)
        out["idle_cpu_local"] = (sum(me.cpu_times()[:2]) - cpu0) / (time.perf_counter() - t0)
    return out


def run() -> int:
    try:
        from ray.cluster_utils import Cluster
    except ImportError:
        print("\n== Ray at scale: skipped (Ray is not installed: pip install 'plugbay[ray]')")
        return 0
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    tmp = tempfile.mkdtemp(prefix="pbs-", dir="/tmp")
    os.environ["RAY_TMPDIR"] = tmp
    os.makedirs(os.path.join(tmp, "ray"))
    store = 80 * 2**20
    cluster = Cluster(
        initialize_head=True,
        connect=True,
        head_node_args={
            "num_cpus": 1, "include_dashboard": False, "object_store_memory": store,
            "temp_dir": os.path.join(tmp, "ray"),
        },
    )  # fmt: skip
    try:
        for _ in range(NODES - 1):
            cluster.add_node(num_cpus=1, object_store_memory=store)
        cluster.wait_for_nodes()
        m = asyncio.run(_measure(cluster))
    finally:
        import ray

        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    n = m["active"]
    figures = [
        Figure(
            f"{n} sandboxed plugins started over {NODES} nodes (host start → all active)",
            m["start_all"], "the same plugins in local sandboxed workers", m["start_all_local"],
            f"reported: {m['start_all'] / n * 1e3:.1f} ms per plugin; per node "
            + ", ".join(f"{node} {count}" for node, count in m["per_node"]), None,
        ),
        Figure(
            f"call p50 with {n} plugins loaded", m["p50_many"], "call p50 with one plugin",
            m["p50_one"], "≤ 1.2× (the routing table is a dict)",
            m["p50_many"] <= 1.2 * m["p50_one"],
        ),
        Figure(
            f"32 callers fanning in over {n} plugins", m["fan_in"],
            "the same over local sandboxed workers", m["fan_in_local"], "reported", None,
            unit="calls/s", note=f"32 callers of one plugin on Ray: {m['fan_in_one']:,.0f} calls/s",
        ),
        Figure(
            "host memory per remote plugin (Python heap, tracemalloc)",
            m["rss_per_plugin"] / 2**10,
            "the host's memory with one plugin", m["rss_one"] / 2**10, "reported", None,
            unit="KiB",
        ),
        Figure(
            "host descriptors per remote plugin", m["fds_per_plugin"],
            "the host's descriptors with one plugin", m["fds_one"], "reported", None,
            unit="fds",
        ),
        Figure(
            f"host idle CPU with {n} plugins (heartbeats)", m["idle_cpu"] * 100,
            "the same plugins in local sandboxed workers", m["idle_cpu_local"] * 100,
            f"reported (one plugin on Ray: {m['idle_cpu_one'] * 100:.1f} %)", None,
            unit="% of a core",
        ),
        Figure(
            "/metrics series per plugin", m["series_per_plugin"],
            "the page's series per plugin (itself)", m["series_per_plugin"],
            f"reported ({m['metrics_bytes_per_plugin'] / 1024:.1f} KiB per plugin)", None,
            unit="series",
        ),
        Figure(
            "a sandboxed worker's USS on its node", m["worker_uss"] / 2**20,
            "the host's memory with one plugin", m["rss_one"] / 2**20, "reported", None,
            unit="MiB",
        ),
        Figure(f"host stop with {n} plugins", m["stop_all"], "host start with them",
               m["start_all"], "reported", None),
    ]  # fmt: skip
    print_figures(f"Ray at scale (a simulated {NODES}-node cluster of this machine)", figures)
    return sum(1 for f in figures if f.passed is False)


if __name__ == "__main__":
    raise SystemExit(run())
