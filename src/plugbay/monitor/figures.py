"""What each plugin's worker uses, as the monitor's tick reads and keeps it.

A tick reads some workers in full and probes the others it looks at
(``monitor.sampling``), and probes the workers of its sweep (``monitor.tracks``).
The sweep is the safety net that finds a worker whose memory moved while nothing
marked its plugin (a background thread of an idle plugin): with a thousand idle
plugins it probes a few dozen workers a tick, and on a virtual machine every
object a visit touches after an idle second costs tens of microseconds. So a swept
worker costs one read of ``/proc`` and a comparison: the pid kept when its plugin
was last looked at (a new worker comes with a state change, which marks the
plugin), and what its last probe read while it used no CPU. When the read is the
same, nothing else of it is touched; when it differs, its figures are kept as any
probe's, and a memory that moved makes the tick look at the plugin.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from plugbay.monitor.sampling import (
    REFRESH_TICKS,
    RSS_NOISE,
    SampleRota,
    cpu_percent,
    sample_usage,
)
from plugbay.monitor.source import HandleView, PluginView
from plugbay.monitor.tracks import Track

__all__ = ["INLINE_PROBES", "WorkerFigures", "shown"]

#: a tick that reads no worker in full probes up to this many on the loop's thread (each
#: one read of /proc/PID/stat, 20 µs and more): waking a thread for them would cost more
#: than the reads (an idle tick of a thousand plugins sweeps some 80)
INLINE_PROBES: Final = 128

Probe = tuple[float, int, int]  # CPU seconds, resident bytes, threads (sampling.probe)


def shown(percent: float | None) -> float | None:
    """A CPU percent as the snapshot shows it: to a tenth, so a worker's few clock ticks a
    minute (a heartbeat answered) do not change its row."""
    return None if percent is None else round(percent, 1)


class WorkerFigures:
    """The tick's reads of the workers, and what is kept of them in each :class:`Track`.

    ``mark`` is told the plugins whose row in the snapshot shows new figures."""

    def __init__(
        self,
        records: Callable[[], Mapping[str, PluginView]],
        tracks: dict[str, Track],
        mark: Callable[[Iterable[str]], None],
    ) -> None:
        self._records = records
        self._tracks = tracks
        self._mark = mark
        self.rota = SampleRota()  # which workers are read in full on a tick
        #: the pid of each plugin's local worker, as of when the plugin was last looked at
        self._pids: dict[str, int] = {}
        #: the last probe of the workers that used no CPU then (a sweep passes them by
        #: while they read the same)
        self._quiet: dict[str, Probe] = {}
        #: plugins with no worker on this machine (inline, Wasm, Ray): never probed
        self._elsewhere: set[str] = set()

    def to_read(
        self, visit: set[str], swept: list[str], called: set[str], tick: int
    ) -> tuple[dict[str, HandleView], dict[str, int]]:
        """The workers read in full this tick (the called ones, then a new one or the one
        read longest ago), and the pids of the local workers probed: those looked at, and
        those swept."""
        by_id, rota, pids = self._records(), self.rota, self._pids
        first: dict[str, HandleView] = {}
        for pid in visit:
            rec = by_id.get(pid)
            handle = self._locate(pid, rec)
            if handle is None:
                continue
            if pid in called:
                first[pid] = handle
            elif not rota.known(pid, handle):
                rota.add(pid, handle)
        full = rota.due(first, self._handle_of, int(tick % REFRESH_TICKS == 1))
        # those read in full too: one the tick's budget leaves unread has its probe
        probes = {pid: pids[pid] for pid in visit if pid in pids}
        elsewhere = self._elsewhere
        for pid in swept:  # by the pid kept: see the module's docstring
            if pid in probes:
                continue
            if pid not in pids and pid not in elsewhere:  # not known yet
                self._locate(pid, by_id.get(pid))
            if pid in pids:
                probes[pid] = pids[pid]
        return full, probes

    def _locate(self, plugin_id: str, rec: PluginView | None) -> HandleView | None:
        """Keep where a plugin's worker is: its pid when it runs on this machine, else
        that it runs elsewhere (inline, Wasm, a Ray node); its handle, if it has one."""
        handle = rec.handle if rec is not None else None
        self._pids.pop(plugin_id, None)
        self._elsewhere.discard(plugin_id)
        if rec is None or handle is None:
            return handle
        # a worker on this machine (a Ray worker's pid is on its node)
        if rec.isolation == "process" and handle.pid:
            self._pids[plugin_id] = handle.pid
        else:
            self._elsewhere.add(plugin_id)
        return handle

    async def read(
        self, full: dict[str, HandleView], probes: dict[str, int], fds: bool
    ) -> tuple[dict[str, dict[str, Any]], dict[str, Probe], dict[str, Any]]:
        """``sample_usage`` in a thread, or here when it is only a few reads of
        /proc/PID/stat: no thread is woken for those."""
        budget = self.rota.budget
        if full or fds or len(probes) > INLINE_PROBES:
            return await asyncio.to_thread(sample_usage, full, budget, probes, fds)
        return sample_usage(full, budget, probes, fds)

    def keep(
        self,
        full: dict[str, HandleView],
        usage: dict[str, dict[str, Any]],
        probed: dict[str, Probe],
        visit: set[str],
        now: float,
    ) -> set[str]:
        """The workers' figures read in full, then those probed, kept with their CPU use;
        the plugins whose worker's memory moved. A swept worker (not in ``visit``) whose
        probe reads what the last one did, with no CPU in use then, is passed by."""
        self.rota.measured({pid: full[pid] for pid in usage})
        moved: set[str] = set()
        tracks, quiet = self._tracks, self._quiet
        for pid, figures in usage.items():
            track = tracks.get(pid)
            if track is not None:
                track.usage_at = now
                quiet.pop(pid, None)
                if self._keep(pid, track, figures, now, probed=False):
                    moved.add(pid)
        for pid, read in probed.items():
            if pid in usage or (pid not in visit and quiet.get(pid) == read):
                continue
            track = tracks.get(pid)
            if track is None:
                continue
            last = track.usage if track.usage and "error" not in track.usage else {}
            cpu, rss, threads = read
            figures = {**last, "cpu_seconds": cpu, "rss_bytes": rss, "threads": threads}
            if self._keep(pid, track, figures, now, probed=True):
                moved.add(pid)
            if track.cpu_percent is None or track.cpu_percent < 0.05:
                quiet[pid] = read  # the next probe that reads the same is passed by
            else:
                quiet.pop(pid, None)
        return moved

    def forget(self, plugin_ids: Iterable[str]) -> None:
        """Plugins the host no longer knows."""
        for pid in plugin_ids:
            self._pids.pop(pid, None)
            self._quiet.pop(pid, None)
            self._elsewhere.discard(pid)
        self.rota.forget(plugin_ids)

    def _keep(
        self, pid: str, track: Track, figures: dict[str, Any], now: float, *, probed: bool
    ) -> bool:
        """One worker's new figures kept; whether its memory moved."""
        last, was = track.usage, shown(track.cpu_percent)
        rss, before = figures.get("rss_bytes"), (last or {}).get("rss_bytes")
        moved = rss is None or before is None or abs(rss - before) >= RSS_NOISE
        if probed and not moved:
            figures["rss_bytes"] = before  # the same memory (``RSS_NOISE``)
        elif probed and last:
            self.rota.soon(pid)  # its memory moved: read in full soon
        track.usage = figures
        track.cpu_percent, track.cpu = cpu_percent(figures, track.cpu, now)
        if not probed or moved or shown(track.cpu_percent) != was:
            self._mark((pid,))  # its row shows them
        return moved

    def _handle_of(self, plugin_id: str) -> HandleView | None:
        rec = self._records().get(plugin_id)
        return None if rec is None else rec.handle
