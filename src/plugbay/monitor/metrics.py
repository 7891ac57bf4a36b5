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
    """Calls, errors and a latency histogram of one command."""

    __slots__ = ("buckets", "calls", "errors", "errors_by_type", "max_time", "total_time")

    def __init__(self) -> None:
        self.calls = 0
        self.errors = 0
        self.total_time = 0.0
        self.max_time = 0.0
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.errors_by_type: Counter[str] = Counter()

    def record(self, seconds: float, error: str | None = None) -> None:
        self.calls += 1
        self.total_time += seconds
        if seconds > self.max_time:
            self.max_time = seconds
        self.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1
        if error is not None:
            self.errors += 1
            self.errors_by_type[error] += 1

    def quantile(self, q: float) -> float | None:
        """Upper bound of the bucket holding quantile ``q`` (None with no calls)."""
        if not self.calls:
            return None
        rank = q * self.calls
        seen = 0
        for i, n in enumerate(self.buckets):
            seen += n
            if seen >= rank and n:
                return BUCKETS[i] if i < len(BUCKETS) else self.max_time
        return self.max_time

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "errors": self.errors,
            "error_rate": self.errors / self.calls if self.calls else 0.0,
            "mean_seconds": self.total_time / self.calls if self.calls else None,
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
