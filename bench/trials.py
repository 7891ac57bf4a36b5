"""Upgrades that prove themselves: what the recorder, a canary and replay cost.

* recording overhead on a sandboxed call: calls to a plugin in a worker with its
  flight recorder on, beside the same calls with it off, in the same run. The recorder
  is started as ``plugbay record`` starts it; then, for each short block of calls, the
  plugin's route goes in the routing table with the recorder (on) or as an untapped
  plugin's (off), blocks on and off alternating (their order too), each call timed. On
  this shared machine the load changes more between two blocks of 200 calls than the
  recorder costs; blocks of 10 calls put on and off calls milliseconds apart. The
  calls fall in rounds: a round's ratio is the median of its on calls over the median
  of its off calls, and the figure is the median of the rounds' ratios, with their
  interquartile range. Beside it, the host process's own CPU per call, on and off (its
  CPU time over each block: what the recorder adds to the host, less noisy than a
  latency on a shared machine). Goal: ≤ 1.10×;
* canary routing overhead on an inline call: calls while a canary takes 10% of them
  (its version the same code, so only the routing and its figures are measured),
  beside the same calls with no canary. Goal: ≤ 1.05×. The difference is a few
  percent of a 1.5 µs call, below what one timing on a shared machine can tell, so
  the figure is the median of many paired rounds, each timed in the thread's CPU time
  (time another process takes from this one is not counted): calls to a plugin with
  its canary, then to its twin (the same code, no canary), in alternating order; then
  the same with the canary on the twin (the geometric mean of the two medians: what
  makes one plugin a little faster than its twin cancels out);
* replay throughput: a recording of those calls replayed against the same version
  in a sandbox of its own (``plugbay replay``), in calls per second, beside live calls
  per second to the running host (no goal: replay starts a host, then calls one at
  a time, as recorded).
"""

from __future__ import annotations

import asyncio
import math
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._report import Figure, print_figures

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "trials"

CALLS = 200
#: the recorder's rounds, each of BLOCKS pairs of blocks of BLOCK calls (on, off; the order
#: alternating): a round's ratio is its on calls' median over its off calls'
ROUNDS = 30
BLOCKS = 50
BLOCK = 10
#: the canary's paired rounds, and calls in each
CANARY_ROUNDS = 1000
CANARY_CALLS = 500

CODE = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def add(self, a: int, b: int) -> int:
        return a + b
"""


def _plugin(directory: Path, plugin_id: str, version: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "plugin.toml").write_text(
        f'id = "{plugin_id}"\nversion = "{version}"\ntype = "utility"\nentry = "main:P"\n'
    )
    (directory / "main.py").write_text(CODE)
    return directory


async def _per_call(
    host: object, plugin_id: str, n: int = CALLS, clock: Callable[[], float] = time.perf_counter
) -> float:
    call = host.manager.call  # type: ignore[attr-defined]
    started = clock()
    for i in range(n):
        await call(plugin_id, "add", {"a": i, "b": 1})
    return (clock() - started) / n


async def _recorded_block(call: Callable[..., Any], calls: int, seconds: list[float]) -> float:
    """One block of ``calls`` calls, each one's seconds appended to ``seconds``; the host
    process's CPU seconds over the block."""
    clock = time.perf_counter
    cpu = time.process_time()
    for i in range(calls):
        started = clock()
        await call("bench.calc", "add", {"a": i, "b": 1})
        seconds.append(clock() - started)
    return time.process_time() - cpu


@dataclass
class Recorded:
    """The recorder's figures (see the module docstring)."""

    on: float  # median seconds per call, recorder on (all its calls)
    off: float
    ratio: float  # median of the rounds' ratios
    spread: float  # their interquartile range
    cpu_on: float  # the host process's CPU seconds per call (all the blocks)
    cpu_off: float
    cpu_ratio: float  # median of the rounds' ratios
    cpu_spread: float  # their interquartile range
    path: Path  # a recording of CALLS calls
    live_rate: float  # calls per second, recording


async def _recording() -> Recorded:
    """The recorder on and off in alternating blocks of BLOCK calls, the same plugin, the
    same run: the recorder started as ``plugbay record`` starts it, and its plugin's route
    put in the routing table with it (on) or as an untapped plugin's (off) for each block,
    so that on and off calls are a few milliseconds apart (on this shared machine the
    load changes more between two blocks of 200 calls than the recorder costs)."""
    from plugbay.runtime.host import Host
    from plugbay.runtime.tap import untapped

    work = WORK / "record"
    shutil.rmtree(work, ignore_errors=True)
    _plugin(work / "plugins" / "calc", "bench.calc", "1.0.0")
    ratios: list[float] = []
    cpu_ratios: list[float] = []
    seconds: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, float] = {False: 0.0, True: 0.0}
    async with Host(work / "plugins", state_dir=work / "state", entry_points=False) as host:
        assert host.plugin("bench.calc").isolation == "process"
        await _per_call(host, "bench.calc", 500)  # warm up
        host.trials.record("bench.calc", calls=CALLS)
        await host.events.drain()
        manager = host.manager
        routes = manager._routes  # the routing table: one assignment switches a route
        tapped = routes["bench.calc"]
        assert tapped.heard is not None
        ways = {True: tapped, False: untapped(tapped)}
        for k in range(ROUNDS):
            round_seconds: dict[bool, list[float]] = {False: [], True: []}
            round_cpu = {False: 0.0, True: 0.0}
            for b in range(BLOCKS):
                for recording in (False, True) if (k + b) % 2 else (True, False):
                    routes["bench.calc"] = ways[recording]
                    round_cpu[recording] += await _recorded_block(
                        manager.call, BLOCK, round_seconds[recording]
                    )
            on, off = (statistics.median(round_seconds[r]) for r in (True, False))
            ratios.append(on / off)
            cpu_ratios.append(round_cpu[True] / round_cpu[False])
            for recording in (True, False):
                seconds[recording] += round_seconds[recording]
                cpu[recording] += round_cpu[recording]
        routes["bench.calc"] = tapped
        seen = host.trials.recording_status("bench.calc")[0]["seen"]
        assert seen == len(seconds[True]), (seen, len(seconds[True]))  # each on call recorded
        path = work / "recording.jsonl"
        live = await _per_call(host, "bench.calc")
        path.write_bytes(host.trials.recording("bench.calc"))
    n = len(seconds[True])
    return Recorded(
        statistics.median(seconds[True]), statistics.median(seconds[False]),
        statistics.median(ratios), _iqr(ratios),
        cpu[True] / n, cpu[False] / n, statistics.median(cpu_ratios), _iqr(cpu_ratios),
        path, 1 / live,
    )  # fmt: skip


def _iqr(values: list[float]) -> float:
    quartiles = statistics.quantiles(values, n=4)
    return quartiles[2] - quartiles[0]


async def _canary() -> tuple[float, float, float]:
    """(per inline call without a canary, the ratio with a 10% canary, the spread of the
    paired rounds' ratios): see the module docstring."""
    from plugbay.runtime.canary import CanarySettings
    from plugbay.runtime.host import Host

    work = WORK / "canary"
    shutil.rmtree(work, ignore_errors=True)
    twins = ("bench.calc", "bench.twin")
    settings = CanarySettings(share=0.1, window_calls=10**9, max_latency_ratio=1000.0)
    medians: list[float] = []
    spreads: list[float] = []
    plain: list[float] = []
    for plugin_id in twins:
        _plugin(work / "plugins" / plugin_id, plugin_id, "1.0.0")
    async with Host(
        work / "plugins", state_dir=work / "state", entry_points=False, inline=["*"]
    ) as host:
        for plugin_id in twins:
            host.install(_plugin(work / "src" / plugin_id, plugin_id, "1.0.1"))
            await _per_call(host, plugin_id, 2000)
        for tested, twin in (twins, twins[::-1]):
            await host.trials.canary(tested, settings=settings)
            canary = host.trials.canaries[tested]
            await _per_call(host, tested, 2000)
            on: list[float] = []
            off: list[float] = []
            for k in range(CANARY_ROUNDS // 2):
                for plugin_id in (tested, twin) if k % 2 else (twin, tested):
                    per_call = await _per_call(host, plugin_id, CANARY_CALLS, time.thread_time)
                    (on if plugin_id == tested else off).append(per_call)
            assert canary.state == "running" and canary.new.calls >= len(on) * CANARY_CALLS // 11
            await host.trials.stop_canary(tested)
            ratios = [a / b for a, b in zip(on, off, strict=True)]
            quartiles = statistics.quantiles(ratios, n=4)
            medians.append(statistics.median(ratios))
            spreads.append(quartiles[2] - quartiles[0])
            plain += off
    return statistics.median(plain), math.sqrt(medians[0] * medians[1]), max(spreads)


async def _replay(path: Path) -> tuple[float, int]:
    from plugbay.runtime.recorder import read_recording
    from plugbay.runtime.replay import replay

    work = WORK / "record"
    report = await replay(
        read_recording(path), "1.0.0", plugin_dirs=[work / "plugins"], state_dir=work / "state"
    )
    assert not report.failed, report.to_dict()
    return report.calls_per_second or 0.0, report.replayed


def run() -> int:
    rec = asyncio.run(_recording())
    without, ratio, spread = asyncio.run(_canary())
    replay_rate, replayed = asyncio.run(_replay(rec.path))
    live_rate = rec.live_rate
    figures = [
        Figure(
            "a sandboxed call, flight recorder on", rec.on, "the same call, recorder off",
            rec.on / rec.ratio, "≤ 1.10×", rec.ratio <= 1.10,
            note=f"{ROUNDS} rounds of {BLOCKS} pairs of blocks of {BLOCK} calls, recorder on and"
            f" off in alternating order: the median of the rounds' ratios of their calls'"
            f" medians (interquartile range {rec.spread:.3f}); all the calls' medians:"
            f" {rec.on * 1e6:.2f} µs on, {rec.off * 1e6:.2f} µs off. The host process's own"
            f" CPU per call: {rec.cpu_on * 1e6:.2f} µs on, {rec.cpu_off * 1e6:.2f} µs off"
            f" ({rec.cpu_ratio:.3f}×, the rounds' interquartile range {rec.cpu_spread:.3f}; the"
            f" recorder's share {(rec.cpu_on - rec.cpu_off) * 1e6:+.2f} µs)",
        ),
        Figure(
            "an inline call, a canary taking 10%", without * ratio, "the same call, no canary",
            without, "≤ 1.05×", ratio <= 1.05,
            note=f"{CANARY_ROUNDS} paired rounds of {CANARY_CALLS} calls, a plugin with its "
            f"canary beside its twin, then the other way round (thread CPU time; median ratios,"
            f" interquartile range up to {spread:.3f}); the canary runs the same code, so only"
            " its routing and figures are measured",
        ),
        Figure(
            "replay, recorded calls per second", replay_rate, "live calls per second",
            live_rate, "none (a sandbox of its own, calls one at a time)", None, unit="calls/s",
            note=f"{replayed} calls replayed against the same version (no difference)",
        ),
    ]  # fmt: skip
    print_figures("upgrade trials: recorder, canary, replay", figures)
    return sum(1 for f in figures if f.passed is False)
