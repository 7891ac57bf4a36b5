"""Upgrades that prove themselves: what the recorder, a canary and replay cost.

* recording overhead on a sandboxed call: calls to a plugin in a worker with its
  flight recorder on, beside the same calls with it off, in the same run
  (alternating rounds; the best round of each). Goal: ≤ 1.10×;
* canary routing overhead on an inline call: calls while a canary takes 10% of them
  (its version the same code, so only the routing and its figures are measured),
  beside the same calls with no canary. Goal: ≤ 1.05×;
* replay throughput: a recording of those calls replayed against the same version
  in a sandbox of its own (``plugbay replay``), in calls per second, beside live calls
  per second to the running host (no goal: replay starts a host, then calls one at
  a time, as recorded).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

from bench._report import Figure, print_figures

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "trials"

CALLS = 500
#: short rounds, alternating, many: on a shared machine the best of each is the figure
ROUNDS = 20

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


async def _per_call(host: object, plugin_id: str, n: int = CALLS) -> float:
    call = host.manager.call  # type: ignore[attr-defined]
    started = time.perf_counter()
    for i in range(n):
        await call(plugin_id, "add", {"a": i, "b": 1})
    return (time.perf_counter() - started) / n


async def _recording() -> tuple[float, float, Path, float]:
    """(per call with recording, per call without, the recording's file, live calls/s)."""
    from plugbay.runtime.host import Host

    work = WORK / "record"
    shutil.rmtree(work, ignore_errors=True)
    _plugin(work / "plugins" / "calc", "bench.calc", "1.0.0")
    on: list[float] = []
    off: list[float] = []
    async with Host(work / "plugins", state_dir=work / "state", entry_points=False) as host:
        assert host.plugin("bench.calc").isolation == "process"
        await _per_call(host, "bench.calc", 200)  # warm up
        for _ in range(ROUNDS):
            off.append(await _per_call(host, "bench.calc"))
            host.trials.record("bench.calc", calls=CALLS)
            on.append(await _per_call(host, "bench.calc"))
            host.trials.stop_recording("bench.calc")
        path = work / "recording.jsonl"
        host.trials.record("bench.calc", calls=CALLS)
        live = await _per_call(host, "bench.calc")
        path.write_bytes(host.trials.recording("bench.calc"))
    return min(on), min(off), path, 1 / live


async def _canary() -> tuple[float, float]:
    """(per inline call with a 10% canary, per inline call without)."""
    from plugbay.runtime.canary import CanarySettings
    from plugbay.runtime.host import Host

    work = WORK / "canary"
    shutil.rmtree(work, ignore_errors=True)
    _plugin(work / "plugins" / "calc", "bench.calc", "1.0.0")
    source = _plugin(work / "src" / "calc", "bench.calc", "1.0.1")
    settings = CanarySettings(share=0.1, window_calls=10**9, max_latency_ratio=1000.0)
    with_canary: list[float] = []
    without: list[float] = []
    async with Host(
        work / "plugins", state_dir=work / "state", entry_points=False, inline=["*"]
    ) as host:
        host.install(source)
        await _per_call(host, "bench.calc", 500)
        await host.trials.canary("bench.calc", settings=settings)
        taps = host.manager.taps.of("bench.calc")
        canary = taps.canary
        for _ in range(ROUNDS):
            # the same canary, out of the route and back in (starting one per round would
            # measure its start, not its routing)
            taps.canary = None
            host.trials.retap("bench.calc")
            without.append(await _per_call(host, "bench.calc", CALLS * 4))
            taps.canary = canary
            host.trials.retap("bench.calc")
            with_canary.append(await _per_call(host, "bench.calc", CALLS * 4))
        await host.trials.stop_canary("bench.calc")
    return min(with_canary), min(without)


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
    on, off, path, live_rate = asyncio.run(_recording())
    with_canary, without = asyncio.run(_canary())
    replay_rate, replayed = asyncio.run(_replay(path))
    figures = [
        Figure(
            "a sandboxed call, flight recorder on", on, "the same call, recorder off", off,
            "≤ 1.10×", on / off <= 1.10,
            note=f"best of {ROUNDS} alternating rounds of {CALLS} calls each",
        ),
        Figure(
            "an inline call, a canary taking 10%", with_canary, "the same call, no canary",
            without, "≤ 1.05×", with_canary / without <= 1.05,
            note=f"best of {ROUNDS} alternating rounds of {CALLS * 4} calls each; the canary "
            "runs the same code, so only routing and its figures are measured",
        ),
        Figure(
            "replay, recorded calls per second", replay_rate, "live calls per second",
            live_rate, "none (a sandbox of its own, calls one at a time)", None, unit="calls/s",
            note=f"{replayed} calls replayed against the same version (no difference)",
        ),
    ]  # fmt: skip
    print_figures("upgrade trials: recorder, canary, replay", figures)
    return sum(1 for f in figures if f.passed is False)
