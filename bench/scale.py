"""How the cost of many plugins grows: start-up, idle CPU and memory at 10, 100, 1,000.

Sandboxed: N echo plugins, each in its own sandboxed worker with every kernel
layer and its storage image, started by one host; the time until all are
active is set beside N × one worker start measured in the same run (a linear
start costs 1×). Once they are up, the CPU the host and every worker use while
nobody calls (heartbeats, the monitor, storage looks) is measured over a window
and given as a share of one core, and the host's part of it. Inline: N trusted plugins in the host's own
process, and what each adds to its RSS (measured first, in a fresh process).

The largest N is ``PLUGBAY_BENCH_SCALE`` (default 1000; each sandboxed worker
needs about 8 MiB and a loop device, so a small machine may want 300); the
goals are judged at the largest N measured, and the line says when that is not
1,000.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from bench._report import Figure, print_figures

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"

ECHO = """
from plugbay import UtilityPlugin, command

class Echo(UtilityPlugin):
    @command
    def echo(self, x: int) -> int:
        return x
"""

IDLE_SECONDS = 12.0


def _plugins(root: Path, n: int, isolation: str) -> Path:
    shutil.rmtree(root, ignore_errors=True)
    for i in range(n):
        d = root / f"echo{i}"
        d.mkdir(parents=True)
        (d / "plugin.toml").write_text(
            f'id = "scale.echo{i}"\nversion = "1.0.0"\ntype = "utility"\nentry = "echo:Echo"\n'
            + (f'isolation = "{isolation}"\n' if isolation == "process" else "")
        )
        (d / "echo.py").write_text(ECHO)
    return root


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _GcTime:
    """CPU seconds the garbage collector takes while inside."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._start = 0.0

    def _note(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.thread_time()
        else:
            self.seconds += time.thread_time() - self._start

    def __enter__(self) -> None:
        gc.callbacks.append(self._note)

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._note)


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _one_worker_start(runs: int = 15) -> float:
    """p50 of one sandboxed worker start (zygote fork → plugin initialized), in the same host
    setup as the N-plugin runs."""
    from plugbay.runtime.host import Host

    root = _plugins(WORK / "scale-one", 1, "process")
    state = WORK / "scale-one-state"
    shutil.rmtree(state, ignore_errors=True)
    async with Host(root, state_dir=state, entry_points=False) as host:
        backend = host.manager.backends["process"]
        manifest = host.registry.get("scale.echo0")
        rec = host.plugin("scale.echo0")
        assert rec.placement is not None and rec.placement.sandboxed
        data_dir = host.manager.settings.data_root / "scale.echo0"
        starts = []
        for _ in range(runs):
            t = time.perf_counter()
            worker = await backend.start(manifest, rec.placement, data_dir)  # type: ignore[call-arg]
            ctx = host.manager._context_for(manifest, {}, rec.metrics, "process", rec.placement)  # type: ignore[arg-type]
            await worker.initialize(ctx, 30)
            starts.append(time.perf_counter() - t)
            await worker.cleanup(5)
            worker.release()
            if worker._reaper is not None:
                await worker._reaper
    return statistics.median(starts)


async def _sandboxed(n: int) -> dict[str, Any]:
    from plugbay.runtime.host import Host

    root = _plugins(WORK / f"scale-{n}", n, "process")
    state = WORK / f"scale-{n}-state"
    shutil.rmtree(state, ignore_errors=True)
    out: dict[str, Any] = {}
    host = Host(root, state_dir=state, entry_points=False)
    try:
        await host.open()
        starting = _GcTime()
        t, cpu = time.perf_counter(), time.process_time()
        with starting:
            await host.start()
        out["start"] = time.perf_counter() - t
        out["start_cpu"] = time.process_time() - cpu  # the host's own (all its threads)
        out["start_gc"] = starting.seconds
        records = host.plugins()
        active = [r for r in records if str(r.state) == "active"]
        if len(active) != n:
            failed = [(r.id, r.reason) for r in records if str(r.state) != "active"][:3]
            raise RuntimeError(f"{len(active)} of {n} sandboxed plugins active: {failed}")
        pids = [int(getattr(r.handle, "pid", 0)) for r in active]
        zygote = host.manager.backends["process"].zygote.pid  # type: ignore[attr-defined]
        everyone = [os.getpid(), *pids, *([zygote] if zygote else [])]
        # Past start-up: the idle cadence. The bench's process also holds what the runs
        # before this one left (smaller hosts, the inline plugins) and what a thousand
        # starts allocated: the garbage collector's full pass over all of it, due soon
        # after, is start-up's cost, not idling's, so it runs now; any pass during the
        # window is counted and said.
        gc.collect()
        await asyncio.sleep(3)
        collecting = _GcTime()
        before = [_cpu_seconds(p) for p in everyone]  # the host's first
        t = time.perf_counter()
        with collecting:
            await asyncio.sleep(IDLE_SECONDS)
        wall = time.perf_counter() - t
        used = [_cpu_seconds(p) - b for p, b in zip(everyone, before, strict=True)]
        out["gc"] = collecting.seconds / wall
        out["idle_cpu"] = sum(used) / wall
        out["host_idle_cpu"] = used[0] / wall
        await host.call(f"scale.echo{n - 1}", "echo", x=1)  # still answering
    finally:
        await host.stop()
        shutil.rmtree(state, ignore_errors=True)
    return out


async def _inline(n: int) -> tuple[float, int]:
    """Host RSS growth per inline plugin (bytes), and the host's RSS before."""
    from plugbay.runtime.host import Host

    root = _plugins(WORK / f"scale-inline-{n}", n, "inline")
    before = _rss(os.getpid())
    async with Host(
        root, state_dir=None, entry_points=False, inline=[f"scale.echo{i}" for i in range(n)]
    ) as host:
        assert all(str(r.state) == "active" for r in host.plugins())
        after = _rss(os.getpid())
    return (after - before) / n, before


def run() -> int:
    largest = int(os.environ.get("PLUGBAY_BENCH_SCALE", "1000"))
    sizes = [n for n in (10, 100, 1000) if n <= largest]
    if largest not in sizes:
        sizes.append(largest)
    load = os.getloadavg()[0]  # the machine may be shared: its load is said beside the figures
    inline = {n: asyncio.run(_inline(n)) for n in sizes}  # first: a fresh process's RSS
    one = asyncio.run(_one_worker_start())
    rows: dict[int, dict[str, Any]] = {}
    for n in sizes:
        try:
            rows[n] = asyncio.run(_sandboxed(n))
        except Exception as exc:  # a machine out of loop devices, memory, ...: said, not hidden
            print(f"\n  {n} sandboxed plugins could not all start here: {exc}")
            break
    sizes = [n for n in sizes if n in rows]
    top = sizes[-1]
    short = "" if top == 1000 else f" (measured up to {top} here: PLUGBAY_BENCH_SCALE)"
    scaling = "; ".join(
        f"{n}: {rows[n]['start']:.2f} s = {rows[n]['start'] / (n * one):.2f}× linear, "
        f"{rows[n]['start'] / n * 1000:.1f} ms a plugin (the host's CPU "
        f"{rows[n]['start_cpu'] / n * 1000:.1f} ms, its garbage collector "
        f"{rows[n]['start_gc'] / n * 1000:.2f} ms)"
        for n in sizes
    )
    idle = ", ".join(f"{n}: {rows[n]['idle_cpu'] * 100:.2f}%" for n in sizes)
    per = ", ".join(f"{n}: {inline[n][0] / 1024:.0f} KiB" for n in sizes)
    figures = [
        Figure(
            f"{top} sandboxed plugins → all active{short}",
            rows[top]["start"],
            f"{top} × one worker start p50 ({one * 1000:.1f} ms)",
            top * one,
            "≤ 1.5× (linear)",
            rows[top]["start"] <= 1.5 * top * one,
            note=f"scaling: {scaling}; the machine's load average {load:.1f} before the "
            f"runs, {os.getloadavg()[0]:.1f} after",
        ),
        Figure(
            f"{top} idle sandboxed plugins: host + workers CPU{short}",
            rows[top]["idle_cpu"] * 100,
            "one core",
            100.0,
            "≤ 2% of one core",
            rows[top]["idle_cpu"] <= 0.02,
            unit="%",
            note=f"scaling: {idle} (over {IDLE_SECONDS:g} s with the monitor on); at {top}: "
            f"the host {rows[top]['host_idle_cpu'] * 100:.2f}% (its garbage collector "
            f"{rows[top]['gc'] * 100:.2f}%), its workers and zygote "
            f"{(rows[top]['idle_cpu'] - rows[top]['host_idle_cpu']) * 100:.2f}%",
        ),
        Figure(
            f"host RSS per inline plugin ({top} plugins)",
            inline[top][0] / 1024,
            "the host's RSS before any plugin",
            inline[top][1] / 1024,
            "(reported)",
            None,
            unit="KiB",
            note=f"scaling: {per}",
        ),
    ]
    print_figures("scale (many plugins: start-up, idle cost, memory)", figures)
    return sum(1 for f in figures if f.passed is False)
