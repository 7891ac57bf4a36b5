"""The last minutes of every plugin's figures, for the dashboard's charts.

Every ``interval`` seconds the sampler reads each plugin's cumulative counters
(calls, errors, the latency histogram) and keeps the difference from the last
sample: calls per second, error rate, p50 and p99 over that interval, and the
memory of the process the plugin runs in. Reading is cheap (the counters are
there already), so the call path pays nothing for the charts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Final

import psutil

from plugbay.monitor.metrics import BUCKETS

if TYPE_CHECKING:
    from plugbay.runtime.host import Host
    from plugbay.runtime.manager import PluginRecord

__all__ = ["Series"]

log = logging.getLogger("plugbay.web")

_BOUNDS: Final = (*BUCKETS, BUCKETS[-1])


def _quantile(buckets: list[int], total: int, q: float) -> float | None:
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for bound, n in zip(_BOUNDS, buckets, strict=False):
        seen += n
        if n and seen >= rank:
            return bound
    return _BOUNDS[-1]


#: whose memory a point's ``memory_mb`` is, by isolation (any other: its worker's)
_MEMORY_OF: Final = {"inline": "host", "wasm": "module"}


class Series:
    """Per-plugin points over the last ``keep`` samples; see the module docstring."""

    def __init__(self, host: Host, *, interval: float = 1.0, keep: int = 300) -> None:
        self.host = host
        self.interval = interval
        self.keep = keep
        self.points: dict[str, deque[dict[str, Any]]] = {}
        self.latest: dict[str, dict[str, Any]] = {}
        self.sampled_at = 0.0
        self._last: dict[str, tuple[float, int, int, list[int], int]] = {}
        self._process = psutil.Process()
        self._workers: dict[int, psutil.Process] = {}
        self._changed = asyncio.Condition()

    async def run(self) -> None:
        """Sample until cancelled."""
        while True:
            try:
                self.sample()
            except Exception:  # a chart must never take the host down; say so and go on
                log.exception("sampling the plugins' figures failed")
            async with self._changed:
                self._changed.notify_all()
            await asyncio.sleep(self.interval)

    async def wake(self) -> None:
        """Wake every waiter now (the server is closing: streams end at once)."""
        async with self._changed:
            self._changed.notify_all()

    async def wait(self, timeout: float) -> None:
        """Until the next sample (or ``timeout``)."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)

    def sample(self) -> dict[str, dict[str, Any]]:
        now = time.time()
        host_rss = self._process.memory_info().rss
        seen = set()
        for rec in self.host.plugins():
            seen.add(rec.id)
            point = self._point(rec, now, host_rss)
            self.latest[rec.id] = point
            ring = self.points.get(rec.id)
            if ring is None:
                ring = self.points[rec.id] = deque(maxlen=self.keep)
            ring.append(point)
        live = {r.handle.pid for r in self.host.plugins() if r.handle is not None}
        for pid in set(self._workers) - live:
            del self._workers[pid]  # a stopped worker: its pid may be reused
        for gone in set(self.points) - seen:
            self.points.pop(gone, None)
            self.latest.pop(gone, None)
            self._last.pop(gone, None)
        self.sampled_at = now
        return self.latest

    def _point(self, rec: PluginRecord, now: float, host_rss: int) -> dict[str, Any]:
        calls, errors, buckets = _totals(rec)
        ident = id(rec.metrics)
        last = self._last.get(rec.id)
        if last is not None and (last[4] != ident or last[1] > calls):
            # new counters (the plugin was loaded again): they started from zero
            last = (last[0], 0, 0, [0] * len(_BOUNDS), ident)
        self._last[rec.id] = (now, calls, errors, buckets, ident)
        point: dict[str, Any] = {
            "t": round(now, 3),
            "state": str(rec.state),
            "version": rec.version,
            "reason": rec.reason,
            "uptime_seconds": round(now - rec.started_at, 3)
            if rec.started_at is not None and str(rec.state) == "active"
            else None,
            "calls": calls,
            "errors": errors,
            "calls_per_s": 0.0,
            "error_rate": 0.0,
            "p50_ms": None,
            "p99_ms": None,
            "memory_mb": self._memory_mb(rec, host_rss),
            "memory_shared": rec.isolation == "inline",
            "memory_of": _MEMORY_OF.get(rec.isolation, "worker"),
        }
        if last is not None:
            point.update(_rates(now, calls, errors, buckets, last))
        return point

    def _memory_mb(self, rec: PluginRecord, host_rss: int) -> float | None:
        if rec.handle is None or rec.handle.location() is not None:
            return None  # a remote plugin's pid is on its node: the monitor reads it there
        if rec.isolation == "wasm":  # its pid is the host's: the module's own memory
            rss = (rec.handle.usage() or {}).get("linear_memory_bytes")
        else:
            rss = host_rss if rec.isolation == "inline" else self._rss(rec.handle.pid)
        return round(rss / 2**20, 2) if rss is not None else None

    def _rss(self, pid: int | None) -> int | None:
        if pid is None:
            return None
        proc = self._workers.get(pid)
        try:
            if proc is None:
                proc = self._workers[pid] = psutil.Process(pid)
            return int(proc.memory_info().rss)
        except psutil.Error:  # a worker that just died has no figures; that is all
            self._workers.pop(pid, None)
            return None

    def history(self, plugin_id: str) -> list[dict[str, Any]]:
        return list(self.points.get(plugin_id, ()))


def _totals(rec: PluginRecord) -> tuple[int, int, list[int]]:
    """A plugin's cumulative calls, errors and latency buckets, over all its commands."""
    buckets = [0] * len(_BOUNDS)
    if rec.metrics is None:
        return 0, 0, buckets
    errors = 0
    for stats in list(rec.metrics.commands.values()):
        for i, n in enumerate(stats.buckets):
            buckets[i] += n
        errors += stats.errors
    return sum(buckets), errors, buckets


def _rates(
    now: float, calls: int, errors: int, buckets: list[int], last: tuple[Any, ...]
) -> dict[str, Any]:
    """The figures of the interval since the previous sample ``last``."""
    span = max(now - last[0], 1e-6)
    delta = calls - last[1]
    window = [a - b for a, b in zip(buckets, last[3], strict=True)]
    out: dict[str, Any] = {
        "calls_per_s": round(delta / span, 3),
        "error_rate": round((errors - last[2]) / delta, 4) if delta > 0 else 0.0,
    }
    for key, q in (("p50_ms", 0.5), ("p99_ms", 0.99)):
        value = _quantile(window, delta, q)
        out[key] = round(value * 1000, 4) if value is not None else None
    return out
