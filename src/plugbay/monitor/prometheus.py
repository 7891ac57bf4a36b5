"""Every plugin's metrics in the Prometheus text format (prometheus_client).

A collector reads the manager's records at scrape time, so nothing is
duplicated on the call path. It runs in the HTTP server's thread: it works
on snapshots and never blocks the host's event loop.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from plugbay.monitor.metrics import BUCKETS

if TYPE_CHECKING:
    from plugbay.manager import PluginManager

__all__ = ["PlugbayCollector", "exposition", "serve_metrics"]

_NAME = re.compile(r"[^a-zA-Z0-9_]")


def _metric_name(name: str) -> str:
    cleaned = _NAME.sub("_", name).strip("_") or "unnamed"
    return cleaned if not cleaned[0].isdigit() else f"m_{cleaned}"


class PlugbayCollector(Collector):
    def __init__(self, manager: PluginManager) -> None:
        self.manager = manager

    def collect(self) -> Iterator[Metric]:
        records = list(self.manager.list_plugins())
        info = GaugeMetricFamily(
            "plugbay_plugin_info", "A plugin known to the host (value 1).",
            labels=["plugin", "version", "type", "state", "isolation"],
        )  # fmt: skip
        up = GaugeMetricFamily(
            "plugbay_plugin_up", "1 when the plugin is active.", labels=["plugin", "version"]
        )
        init = GaugeMetricFamily(
            "plugbay_plugin_init_seconds",
            "Time from import to initialized.",
            labels=["plugin", "version"],
        )
        uptime = GaugeMetricFamily(
            "plugbay_plugin_uptime_seconds",
            "Seconds since it became active.",
            labels=["plugin", "version"],
        )
        calls = CounterMetricFamily(
            "plugbay_calls", "Command calls.", labels=["plugin", "version", "command"]
        )
        errors = CounterMetricFamily(
            "plugbay_call_errors", "Failed command calls, by error type.",
            labels=["plugin", "version", "command", "error"],
        )  # fmt: skip
        durations = HistogramMetricFamily(
            "plugbay_call_duration_seconds", "Command call duration.",
            labels=["plugin", "version", "command"],
        )  # fmt: skip
        custom: dict[str, Any] = {}
        now = time.time()
        for rec in records:
            version = rec.version or ""
            m = rec.manifest
            info.add_metric(
                [rec.id, version, m.type if m else "", str(rec.state), rec.isolation], 1.0
            )
            up.add_metric([rec.id, version], 1.0 if str(rec.state) == "active" else 0.0)
            metrics = rec.metrics
            if metrics is None:
                continue
            if rec.load_seconds is not None:
                init.add_metric([rec.id, version], rec.load_seconds)
            if rec.started_at is not None:
                uptime.add_metric([rec.id, version], now - rec.started_at)
            for command, stats in list(metrics.commands.items()):
                labels = [rec.id, version, command]
                # one snapshot, so the histogram stays consistent with its count
                buckets = stats.buckets
                count = sum(buckets)
                calls.add_metric(labels, count)
                for error, n in list(stats.errors_by_type.items()):
                    errors.add_metric([*labels, error], n)
                cumulative, running = [], 0
                for bound, n in zip(BUCKETS, buckets, strict=False):
                    running += n
                    cumulative.append((repr(bound), running))
                cumulative.append(("+Inf", count))
                durations.add_metric(labels, cumulative, stats.total_time)
            for (name, label_items), value in list(metrics.counters.items()):
                family = custom.setdefault(
                    "c:" + name,
                    CounterMetricFamily(
                        f"plugbay_plugin_{_metric_name(name)}",
                        f"A counter of the plugin's own: {name}.",
                        labels=["plugin", "version", "labels"],
                    ),
                )
                family.add_metric(
                    [rec.id, version, ",".join(f"{k}={v}" for k, v in label_items)], value
                )
            for (name, label_items), value in list(metrics.gauges.items()):
                family = custom.setdefault(
                    "g:" + name,
                    GaugeMetricFamily(
                        f"plugbay_plugin_{_metric_name(name)}",
                        f"A gauge of the plugin's own: {name}.",
                        labels=["plugin", "version", "labels"],
                    ),
                )
                family.add_metric(
                    [rec.id, version, ",".join(f"{k}={v}" for k, v in label_items)], value
                )
        events = CounterMetricFamily(
            "plugbay_events", "System events emitted, by kind.", labels=["kind"]
        )
        for kind, count in list(self.manager.events.counts.items()):
            events.add_metric([kind], count)
        dropped = CounterMetricFamily(
            "plugbay_events_dropped", "Events dropped because the queue was full."
        )
        dropped.add_metric([], self.manager.events.dropped)
        yield from (info, up, init, uptime, calls, errors, durations, events, dropped)
        yield from custom.values()


def _registry(manager: PluginManager) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PlugbayCollector(manager))
    return registry


def exposition(manager: PluginManager) -> bytes:
    """The Prometheus text format for everything the manager knows now."""
    return generate_latest(_registry(manager))


def serve_metrics(manager: PluginManager, port: int, host: str = "127.0.0.1") -> tuple[Any, int]:
    """Serve ``/metrics`` on ``host:port`` in a daemon thread; returns (server, port)."""
    server, _thread = start_http_server(port, addr=host, registry=_registry(manager))
    return server, int(server.server_address[1])
