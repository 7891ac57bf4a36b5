"""Monitoring's figures: its cost on the inline call path, and a /metrics scrape at 100 plugins."""

from __future__ import annotations

import asyncio
import shutil
import statistics
import time
from pathlib import Path

from bench._report import Figure, print_figures

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"

CODE = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def echo(self, x: int) -> int:
        return x
"""


def _plugins(count: int) -> Path:
    root = WORK / f"monitor-plugins-{count}"
    shutil.rmtree(root, ignore_errors=True)
    for i in range(count):
        d = root / f"p{i}"
        d.mkdir(parents=True)
        (d / "plugin.toml").write_text(
            f'id = "bench.p{i}"\nversion = "1.0.{i}"\ntype = "utility"\nentry = "main:P"\n'
        )
        (d / "main.py").write_text(CODE)
    return root


async def _paired(n: int, pairs: int) -> tuple[float, float]:
    """(calls/s with monitoring on, calls/s with it off), from paired batches.

    Both hosts are up at once; each pair is one batch of ``n`` calls on each,
    back to back, in alternating order, so both see the same moment of a machine
    that five engineers share. The on host's monitor (its tick, loop watchdog and
    log handler) runs all along. The figure is the median of the pairs' speed
    ratios, applied to the median rate with monitoring off: a slow moment slows
    both halves of a pair alike, so the ratio stays.
    """
    from plugbay.runtime.host import Host

    root = _plugins(1)
    on = Host(root, state_dir=None, entry_points=False, monitoring=True, inline=["*"])
    off = Host(root, state_dir=None, entry_points=False, monitoring=False, inline=["*"])

    async def batch(host: Host) -> float:
        call = host.call
        start = time.perf_counter()
        for i in range(n):
            await call("bench.p0", "echo", x=i)
        return time.perf_counter() - start

    await on.start()
    await off.start()
    try:
        ratios, rates = [], []
        for k in range(pairs):
            if k % 2:
                t_on, t_off = await batch(on), await batch(off)
            else:
                t_off, t_on = await batch(off), await batch(on)
            ratios.append(t_off / t_on)
            rates.append(n / t_off)
    finally:
        await on.stop()
        await off.stop()
    base = statistics.median(rates)
    return base * statistics.median(ratios), base


async def _scrape(count: int) -> tuple[float, float, int]:
    from plugbay.runtime.host import Host

    # inline (trusted): 100 sandboxed workers would measure the sandbox, not the scrape
    async with Host(_plugins(count), state_dir=None, entry_points=False, inline=["*"]) as host:
        for i in range(count):
            for x in range(20):
                await host.call(f"bench.p{i}", "echo", x=x)
        times = []
        size = 0
        for _ in range(20):
            start = time.perf_counter()
            size = len(host.render_metrics())
            times.append(time.perf_counter() - start)
        listing = []
        for _ in range(20):
            start = time.perf_counter()
            [r.to_dict() for r in host.plugins()]
            listing.append(time.perf_counter() - start)
        return min(times), min(listing), size


def run() -> int:
    on, off = asyncio.run(_paired(500, 400))
    scrape, listing, size = asyncio.run(_scrape(100))
    figures = [
        Figure(
            "inline calls/s with monitoring on (paired with off, median)",
            on,
            "the same with monitoring off",
            off,
            "≤ 5% slower",
            on >= 0.95 * off,
            unit="calls/s",
            note=f"monitoring costs {(1 / on - 1 / off) * 1e9:.0f} ns a call",
        ),
        Figure(
            f"/metrics scrape, 100 plugins × 1 command ({size / 1024:.0f} KiB)",
            scrape,
            "listing the same 100 plugin records",
            listing,
            "under 50 ms",
            scrape < 0.050,
        ),
    ]
    print_figures("monitor (call path, Prometheus exposition)", figures)
    return sum(1 for f in figures if f.passed is False)
