"""What the workers use: which are read on a tick, and how much each read costs.

Reading a worker's usage in full (psutil: memory, its private memory, CPU, I/O,
open files, threads) costs a few hundred microseconds to a millisecond and more;
a thousand workers read every second kept a core busy, and even a rota of a few a
tick was a third of what a thousand idle plugins cost the host. So a tick reads
in full only:

- the workers of the plugins called since the last tick (their memory may have
  moved), until the tick's :data:`BUDGET` of CPU is spent;
- every :data:`REFRESH_TICKS` ticks one more: a worker never read yet (new, replacing
  a plugin's last one, or whose memory moved), else the one read in full longest ago,
  so every figure is refreshed in turn.

The other workers of the plugins a tick looks at (its sweep, ``monitor.tracks``) are
*probed* instead: one read of ``/proc/PID/stat`` (some 20 µs) gives their CPU time,
resident memory and threads, current; a new worker is probed on its first tick. A
memory that moved makes the alert rules look at the plugin. ``PluginMonitor.collect_metrics`` reads a worker in full when
asked, so the API shows current figures of a plugin nobody called for hours.
Inline plugins share the host's process and cost nothing to ask: always included.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

if TYPE_CHECKING:
    from plugbay.monitor.source import HandleView, PluginView

__all__ = [
    "BUDGET", "RSS_NOISE", "SampleRota", "cpu_percent", "probe", "sample_usage", "utilization",
]  # fmt: skip

#: CPU seconds one tick may spend reading workers in full (at least one is read)
BUDGET: Final = 0.004
#: one worker not called is read in full every this many ticks (a new one first)
REFRESH_TICKS: Final = 5
#: a probe's resident memory this close to the last figure is no change: /proc/PID/stat
#: gives the kernel's per-CPU approximation, while a full read (psutil: /proc/PID/statm)
#: gives the exact sum on recent kernels, some hundreds of KiB apart for the same memory
#: (so every probe after a full read looked like a move, and a read in full followed)
RSS_NOISE: Final = 1 << 20

H = TypeVar("H")

_TICK: Final = os.sysconf("SC_CLK_TCK")
_PAGE: Final = os.sysconf("SC_PAGE_SIZE")


class SampleRota:
    """Which workers are read in full on a tick besides the called ones: one never read
    (new or replaced) first, else the one read longest ago."""

    def __init__(self, budget: float = BUDGET) -> None:
        self.budget = budget
        #: plugin id → id(handle) read, the one read longest ago first
        self._order: dict[str, int] = {}
        #: plugin id → id(handle) never read yet, in the order they came
        self._new: dict[str, int] = {}

    def add(self, plugin_id: str, handle: object) -> None:
        """A worker to read once soon (it is new, or replaced the plugin's last one)."""
        if self._order.get(plugin_id) != id(handle):
            self._new[plugin_id] = id(handle)

    def soon(self, plugin_id: str) -> None:
        """Read this worker again soon (its memory moved), before the ones read long ago."""
        known = self._order.get(plugin_id)
        if known is not None:
            self._new.setdefault(plugin_id, known)

    def due(
        self, first: Mapping[str, H], handle_of: Callable[[str], H | None], extra: int = 1
    ) -> dict[str, H]:
        """``first`` (the called ones), then ``extra`` more: never read ones, else the ones
        read longest ago."""
        out = dict(first)
        wanted = len(out) + extra
        for pid in (*self._new, *self._order) if self._new else self._order:
            if len(out) >= wanted:
                break
            handle = handle_of(pid)
            if handle is not None:
                out.setdefault(pid, handle)
        return out

    def known(self, plugin_id: str, handle: object) -> bool:
        """Whether this very handle was read in full already (or is about to be)."""
        return id(handle) in (self._order.get(plugin_id), self._new.get(plugin_id))

    def measured(self, handles: Mapping[str, object]) -> None:
        """These handles were read in full now."""
        for pid, handle in handles.items():
            self._new.pop(pid, None)
            self._order.pop(pid, None)
            self._order[pid] = id(handle)

    def forget(self, plugin_ids: Iterable[str]) -> None:
        for pid in plugin_ids:
            self._order.pop(pid, None)
            self._new.pop(pid, None)


def probe(pid: int) -> tuple[float, int, int] | None:
    """CPU seconds, resident bytes and threads of process ``pid``: one read of
    ``/proc/PID/stat`` (None when it is gone)."""
    try:  # os.open and os.read: a file object costs a third more than the read
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
        try:
            data = os.read(fd, 2048)
        finally:
            os.close(fd)
        fields = data.rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK, int(fields[21]) * _PAGE, int(fields[17])


def sample_usage(
    handles: dict[str, HandleView],
    budget: float = float("inf"),
    probes: Mapping[str, int] | None = None,
    fds: bool = True,
) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[float, int, int]], dict[str, Any]]:
    """In a thread: what each worker of ``handles`` uses now, read in full in order until
    ``budget`` seconds of CPU are spent; what :func:`probe` reads of the ``probes`` (plugin
    id → pid; those gone left out); and the host process (inline plugins share it; its
    descriptors counted when ``fds``)."""
    out: dict[str, dict[str, Any]] = {}
    until = time.thread_time() + budget
    for pid, handle in handles.items():
        if time.thread_time() > until and getattr(handle, "isolated", False):
            continue
        try:
            figures = handle.usage()
        except Exception as exc:
            figures = {"error": str(exc)}
        if figures is None:  # it shares the host's process
            out[pid] = {"shared": True}
            continue
        if "pid" in figures and "node" not in figures:  # a remote pid is on its node
            figures.update(_network(int(figures["pid"])))
        out[pid] = figures
    probed: dict[str, tuple[float, int, int]] = {}
    for plugin_id, os_pid in (probes or {}).items():
        now = probe(os_pid)
        if now is not None:
            probed[plugin_id] = now
    host = _host(fds)
    return out, probed, host


def _host(fds: bool) -> dict[str, Any]:
    """The host process's CPU, memory and threads (one read), and its descriptors when
    ``fds``: with a thousand workers it holds thousands, and listing them cost more
    than everything else a tick reads."""
    figures = probe(os.getpid())
    if figures is None:  # no /proc/self/stat here: psutil's way
        import psutil

        proc = psutil.Process()
        with proc.oneshot():
            times = proc.cpu_times()
            figures = (times.user + times.system, proc.memory_info().rss, proc.num_threads())
    cpu, rss, threads = figures
    host: dict[str, Any] = {"rss_bytes": rss, "cpu_seconds": cpu, "threads": threads}
    if fds:
        import psutil

        host["open_files"] = psutil.Process().num_fds()
    return host


def _network(pid: int) -> dict[str, Any]:
    """Bytes through the worker's own network namespace (none when it shares the host's)."""
    try:
        if os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net"):
            return {}
        rx = tx = 0
        for line in Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]:
            _, _, figures = line.partition(":")
            cols = figures.split()
            rx, tx = rx + int(cols[0]), tx + int(cols[8])
    except (OSError, ValueError, IndexError):
        return {}
    return {"net_rx_bytes": rx, "net_tx_bytes": tx}


def cpu_percent(
    usage: dict[str, Any] | None, last: tuple[float, float] | None, now: float
) -> tuple[float | None, tuple[float, float] | None]:
    """CPU percent since the ``last`` (monotonic, CPU seconds) reading, and this one."""
    if usage is None or usage.get("shared") or "cpu_seconds" not in usage:
        return None, last
    seconds = float(usage["cpu_seconds"])
    percent = None
    if last is not None and now > last[0]:
        percent = max(0.0, (seconds - last[1]) / (now - last[0]) * 100)
    return percent, (now, seconds)


def utilization(rec: PluginView, usage: dict[str, Any] | None) -> dict[str, float]:
    """Each limit the plugin runs under (its placement's, else its manifest's), and the
    share of it in use (1 = at the limit)."""
    from plugbay.model.manifest import parse_size

    if rec.manifest is None or usage is None or usage.get("shared"):
        return {}
    limits: dict[str, Any] = dict(rec.placement.limits) if rec.placement is not None else {}
    if not limits:
        res = rec.manifest.resources
        limits = {"memory": parse_size(res.memory), "cpu-seconds": res.cpu_seconds,
                  "open-files": res.open_files, "threads": res.threads}  # fmt: skip
    out: dict[str, float] = {}
    for limit, figure in (("memory", "rss_bytes"), ("cpu-seconds", "cpu_seconds"),
                          ("open-files", "open_files"), ("threads", "threads"),
                          ("storage", "storage_bytes")):  # fmt: skip
        bound, value = limits.get(limit), usage.get(figure)
        if bound and value is not None:
            out[limit] = float(value) / float(bound)
    return out
