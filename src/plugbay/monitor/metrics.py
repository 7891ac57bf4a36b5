"""Per-plugin metrics: what the host counts on every call, and what plugins add.

The call path records into :class:`CommandStats` with a handful of integer
operations and one ``bisect`` (no locks: the host's event loop is the only
writer), so monitoring costs a small, fixed amount per call.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from typing import Any, Final

__all__ = ["BUCKETS", "CommandStats", "PluginMetrics"]

#: histogram bucket upper bounds in seconds (log-spaced, 10 µs … 60 s)
BUCKETS: Final[tuple[float, ...]] = (
    1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


class CommandStats:
    """Calls, errors and a latency histogram of one command.

    The call path only appends the duration to ``pending`` (tens of nanoseconds);
    the event loop folds pending durations into the histogram in batches
    (:meth:`fold`). Readers in any thread combine the folded figures with a copy
    of what is pending, so they see every call and never disturb the writer.
    """

    __slots__ = ("_buckets", "_calls", "_max", "_total", "errors", "errors_by_type", "pending")

    #: fold once this many durations are pending
    FOLD_AT = 4096

    def __init__(self) -> None:
        self.pending: list[float] = []
        self._calls = 0
        self._total = 0.0
        self._max = 0.0
        self._buckets = [0] * (len(BUCKETS) + 1)
        self.errors = 0
        self.errors_by_type: Counter[str] = Counter()

    def record(self, seconds: float, error: str | None = None) -> None:
        pending = self.pending
        pending.append(seconds)
        if error is not None:
            self.errors += 1
            self.errors_by_type[error] += 1
        if len(pending) >= self.FOLD_AT:
            self.fold()

    def fold(self) -> None:
        """Move pending durations into the histogram (call from the writing thread only)."""
        pending, self.pending = self.pending, []
        if not pending:
            return
        buckets = self._buckets
        find = bisect.bisect_left
        for seconds in pending:
            buckets[find(BUCKETS, seconds)] += 1
        self._calls += len(pending)
        self._total += sum(pending)
        self._max = max(self._max, max(pending))

    # -- what readers see: folded + pending --------------------------------------------

    @property
    def calls(self) -> int:
        return self._calls + len(self.pending)

    @property
    def total_time(self) -> float:
        return self._total + sum(tuple(self.pending))

    @property
    def max_time(self) -> float:
        pending = tuple(self.pending)
        return max(self._max, max(pending)) if pending else self._max

    @property
    def buckets(self) -> list[int]:
        buckets = list(self._buckets)
        find = bisect.bisect_left
        for seconds in tuple(self.pending):
            buckets[find(BUCKETS, seconds)] += 1
        return buckets

    def quantile(self, q: float) -> float | None:
        """Upper bound of the bucket holding quantile ``q`` (None with no calls)."""
        buckets = self.buckets
        calls = sum(buckets)
        if not calls:
            return None
        rank = q * calls
        seen = 0
        for i, n in enumerate(buckets):
            seen += n
            if seen >= rank and n:
                return BUCKETS[i] if i < len(BUCKETS) else self.max_time
        return self.max_time

    def to_dict(self) -> dict[str, Any]:
        calls = self.calls
        return {
            "calls": calls,
            "errors": self.errors,
            "error_rate": self.errors / calls if calls else 0.0,
            "mean_seconds": self.total_time / calls if calls else None,
            "max_seconds": self.max_time,
            "p50_seconds": self.quantile(0.5),
            "p99_seconds": self.quantile(0.99),
            "errors_by_type": dict(self.errors_by_type),
        }


class PluginMetrics:
    """One plugin's metrics (the spec's ``MetricsCollector``), given as ``context.metrics``."""

    __slots__ = (
        "commands",
        "counters",
        "gauges",
        "init_seconds",
        "observations",
        "plugin_id",
        "started",
    )

    def __init__(self, plugin_id: str) -> None:
        self.plugin_id = plugin_id
        self.commands: dict[str, CommandStats] = {}
        self.counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.gauges: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.observations: dict[tuple[str, tuple[tuple[str, str], ...]], CommandStats] = {}
        self.init_seconds: float | None = None
        self.started = time.time()

    def for_command(self, name: str) -> CommandStats:
        stats = self.commands.get(name)
        if stats is None:
            stats = self.commands[name] = CommandStats()
        return stats

    # -- MetricsCollector, for the plugin's own figures ---------------------------------

    def increment(self, name: str, value: float = 1.0, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        self.counters[key] = self.counters.get(key, 0.0) + value

    def gauge(self, name: str, value: float, **labels: str) -> None:
        self.gauges[(name, tuple(sorted(labels.items())))] = value

    def observe(self, name: str, value: float, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        stats = self.observations.get(key)
        if stats is None:
            stats = self.observations[key] = CommandStats()
        stats.record(value)

    def snapshot(self) -> dict[str, Any]:
        def render(key: tuple[str, tuple[tuple[str, str], ...]]) -> str:
            name, labels = key
            return name + ("{" + ",".join(f"{k}={v}" for k, v in labels) + "}" if labels else "")

        calls = sum(s.calls for s in self.commands.values())
        errors = sum(s.errors for s in self.commands.values())
        return {
            "plugin": self.plugin_id,
            "calls": calls,
            "errors": errors,
            "error_rate": errors / calls if calls else 0.0,
            "init_seconds": self.init_seconds,
            "uptime_seconds": time.time() - self.started,
            "commands": {n: s.to_dict() for n, s in self.commands.items()},
            "counters": {render(k): v for k, v in self.counters.items()},
            "gauges": {render(k): v for k, v in self.gauges.items()},
            "observations": {render(k): s.to_dict() for k, s in self.observations.items()},
        }
