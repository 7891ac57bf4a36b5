"""What the monitor keeps of each plugin between ticks, and which plugins a tick looks at.

A tick used to look at every plugin, every second, to learn that an idle one had
not changed: with a thousand idle plugins that pass was most of what an idle host
spent. Now a plugin is *settled* once a tick found it quiet (no call running, the
alert rules holding nothing, nothing new since its last sample), and a tick looks
only at the plugins in its :class:`Visits`:

- those the call path *touched* (``MonitorSource.touched``: added on a timed call, and
  the call that wakes a settled plugin is timed: ``CommandStats.arm``; and on every
  change of a plugin's state), and those an event names (a crash, a reload);
- those not settled yet (a call in flight, an alert holding, a restart loop);
- new plugins, those that blocked the host's loop;
- those whose worker's memory moved, found by the sweep: a slice of all the others
  in turn (:data:`SWEEP_TICKS`), whose workers are probed (``monitor.figures``), a
  safety net so a change nothing marked is still seen within a minute. The slice
  grows with the time since the last tick, so the idle cadence (``monitor.monitor``)
  sweeps as many plugins a second.

A settled plugin gets no sample while nobody looks: its samples would all be copies
of its last one. When it is looked at again, :func:`caught_up` adds those copies (one
a tick, within the window kept), so the alert windows read exactly as if every tick
had added them; the views (:func:`window`) read a settled plugin's figures as of now
the same way without changing anything.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from plugbay.monitor.alerts import Condition, Sample, _quantile
from plugbay.monitor.health import Blocked, Readiness
from plugbay.monitor.source import PluginView

__all__ = ["SWEEP_TICKS", "Track", "Visits", "caught_up", "quiet", "rates", "unchanged", "window"]

#: every plugin is looked at (and its worker's memory read cheaply) at least once in this
#: many ticks, whatever marked it or not
SWEEP_TICKS: Final = 60


@dataclass(slots=True)
class Track:
    samples: deque[Sample] = field(default_factory=deque)
    errors_seen: Counter[str] = field(default_factory=Counter)
    hung: Condition | None = None
    cpu: tuple[float, float] | None = None  # (monotonic, cpu seconds)
    cpu_percent: float | None = None
    usage: dict[str, Any] | None = None
    #: when ``usage`` was read in full (monotonic; 0: never)
    usage_at: float = 0.0
    readiness: Readiness | None = None
    checking: asyncio.Task[None] | None = None
    next_check: float = 0.0
    blocked: list[Blocked] = field(default_factory=list)
    #: the rules found nothing at the last evaluation, with this many crashes known
    clear: bool = False
    crashes_seen: int = -1
    #: seconds of samples kept (the longest alert window and a tick)
    keep: float = 61.0


class Visits:
    """Which plugins this tick looks at (see the module docstring)."""

    def __init__(self) -> None:
        #: looked at on the next tick: not settled, or marked since
        self.pending: set[str] = set()
        self._ring: list[str] = []
        self._at = 0

    def mark(self, plugin_ids: Iterable[str]) -> None:
        self.pending.update(plugin_ids)

    def sweep(self, plugin_ids: Iterable[str], changed: bool, ticks: float = 1.0) -> list[str]:
        """This tick's slice of every plugin (``changed``: plugins came or went since;
        ``ticks``: intervals since the last tick, more while the monitor rests)."""
        if changed or not self._ring:
            self._ring = sorted(plugin_ids)
            self._at = min(self._at, len(self._ring))
        ring = self._ring
        if not ring:
            return []
        size = max(1, math.ceil(len(ring) * min(max(ticks, 1.0), SWEEP_TICKS) / SWEEP_TICKS))
        if self._at >= len(ring):
            self._at = 0
        out = ring[self._at : self._at + size]
        self._at += size
        return out

    def take(self) -> set[str]:
        pending, self.pending = self.pending, set()
        return pending


def caught_up(track: Track, now: float, interval: float) -> None:
    """Add the copies of its last sample that the ticks which passed a settled plugin by
    would have added (one a tick, within the window kept), then drop what fell out."""
    samples = track.samples
    if samples:
        last = samples[-1]
        gap = now - last.at
        if gap > 1.5 * interval:
            first = max(1, math.ceil((gap - track.keep) / interval))
            steps = int((gap - 0.5 * interval) // interval)
            for k in range(first, steps + 1):
                samples.append(Sample(last.at + k * interval, last.calls, last.errors,
                                      last.commands, last.rss, 0))  # fmt: skip
    while samples and samples[0].at < now - track.keep:
        samples.popleft()


def window(track: Track, now: float, interval: float) -> list[Sample]:
    """The samples :func:`rates` reads, as of ``now`` and without changing any: the first
    inside the window kept, and the last two. A settled plugin's last sample stands for
    the ticks since (what :func:`caught_up` would add)."""
    samples = track.samples
    if not samples:
        return []
    last, cutoff = samples[-1], now - track.keep
    if now - last.at > 1.5 * interval:  # settled: its last sample is still true
        still = Sample(now, last.calls, last.errors, last.commands, last.rss, 0)
        if last.at < cutoff:  # nothing in the window but copies of it (a tick apart)
            return [
                Sample(now - interval, last.calls, last.errors, last.commands, last.rss, 0),
                still,
            ]
        return [next(s for s in samples if s.at >= cutoff), last, still]
    first = next(s for s in samples if s.at >= cutoff) if samples[0].at < cutoff else samples[0]
    return [first, samples[-2], last] if len(samples) >= 2 else [last]


def merge(lists: list[list[int]]) -> list[int]:
    if len(lists) <= 1:  # most plugins have one command
        return list(lists[0]) if lists else []
    return [sum(col) for col in zip(*lists, strict=False)]


def quiet(track: Track, sample: Sample, crashes: int) -> bool:
    """Whether a plugin's alert rules can be left unevaluated this tick: they found
    nothing last time, and nothing they read has changed since (no call, error, crash or
    memory change, none running). As time passes a window only loses what it held, so
    a rule that did not hold cannot start holding without something new."""
    if not track.clear or not track.samples or crashes != track.crashes_seen:
        return False
    last = track.samples[-1]
    return (
        sample.inflight == 0
        and last.inflight == 0
        and sample.calls == last.calls
        and sample.errors == last.errors
        and sample.rss == last.rss
    )


def unchanged(track: Track, rec: PluginView, inflight: int) -> bool:
    """What :func:`quiet` would find, without building a sample: the plugin is settled
    (nothing new since its last sample, the rules found nothing then, none running)."""
    samples = track.samples
    if not track.clear or not samples or inflight or len(rec.crashes) != track.crashes_seen:
        return False
    last = samples[-1]
    usage = track.usage
    rss = usage.get("rss_bytes") if usage is not None and not usage.get("shared") else None
    if last.inflight or rss != last.rss:
        return False
    calls = errors = 0
    for stats in rec.metrics.commands.values():  # type: ignore[union-attr]
        calls += stats.calls
        errors += stats.errors
    return calls == last.calls and errors == last.errors


def rates(
    samples: list[Sample],
) -> tuple[float | None, float | None, float | None, float | None]:
    """Calls per second over the last sample, and the error rate and latency quantiles
    (p50, p99) over the samples kept (since the start when nothing was called lately)."""
    rate = None
    if len(samples) >= 2 and samples[-1].at > samples[-2].at:
        rate = (samples[-1].calls - samples[-2].calls) / (samples[-1].at - samples[-2].at)
    if not samples:
        return rate, None, None, None
    first, last = samples[0], samples[-1]
    calls = last.calls - first.calls
    if calls <= 0:  # nothing lately: since the start
        calls, errors = last.calls, last.errors
        merged = merge([b for b, _ in last.commands.values()])
    else:
        errors = last.errors - first.errors
        before = {n: first.commands.get(n, ([0] * len(b), 0.0))[0] for n, (b, _) in
                  last.commands.items()}  # fmt: skip
        merged = merge(
            [
                [a - b for a, b in zip(buckets, before[n], strict=False)]
                for n, (buckets, _) in last.commands.items()
            ]
        )
    error_rate = errors / calls if calls else None
    return rate, error_rate, _quantile(merged, 0.5), _quantile(merged, 0.99)
