"""Every plugin's metrics in the Prometheus text format (prometheus_client).

A collector reads the manager's records at scrape time, so nothing is
duplicated on the call path. It runs in the HTTP server's thread: it works
on snapshots and never blocks the host's event loop.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString as _go_float

from plugbay.monitor.metrics import BUCKETS, CommandStats, metric_name

if TYPE_CHECKING:
    from plugbay.monitor.monitor import PluginMonitor
    from plugbay.runtime.manager import PluginManager

__all__ = [
    "PlugbayCollector",
    "exposition",
    "registry",
    "serve_metrics",
    "text_format",
]

log = logging.getLogger("plugbay.monitor.prometheus")

_metric_name = metric_name  # the name tests and older callers use

#: usage figures sampled by the monitor: key → (metric, help, counter?)
_USAGE = (
    ("rss_bytes", "plugbay_plugin_memory_bytes", "Resident memory of the plugin's worker.", False),
    ("uss_bytes", "plugbay_plugin_memory_unique_bytes", "Memory only the worker uses (USS).", False),
    ("cpu_seconds", "plugbay_plugin_cpu_seconds", "CPU time of the plugin's worker.", True),
    ("read_bytes", "plugbay_plugin_storage_read_bytes", "Bytes the worker read from storage.", True),
    ("write_bytes", "plugbay_plugin_storage_write_bytes", "Bytes the worker wrote to storage.", True),
    ("net_rx_bytes", "plugbay_plugin_network_receive_bytes", "Bytes received in the worker's network namespace.", True),
    ("net_tx_bytes", "plugbay_plugin_network_transmit_bytes", "Bytes sent from the worker's network namespace.", True),
    ("open_files", "plugbay_plugin_open_files", "Open file descriptors of the worker.", False),
    ("threads", "plugbay_plugin_threads", "Threads of the worker.", False),
    ("storage_bytes", "plugbay_plugin_storage_bytes", "Bytes in the plugin's data directory.", False),
)  # fmt: skip


class PlugbayCollector(Collector):
    def __init__(self, manager: PluginManager, monitor: PluginMonitor | None = None) -> None:
        self.manager = manager
        self.monitor = monitor

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
            "Seconds the version now serving has served (since its load, reload or restart).",
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
        restarts = CounterMetricFamily(
            "plugbay_plugin_restarts", "Restarts after the plugin's worker crashed.",
            labels=["plugin"],
        )  # fmt: skip
        # where a remote plugin runs (Ray): joined to any series on `plugin` for its node
        nodes = GaugeMetricFamily(
            "plugbay_plugin_node_info", "The cluster node a plugin runs on (value 1).",
            labels=["plugin", "backend", "node", "mode"],
        )  # fmt: skip
        restart_counts = self.manager.restart_counts
        custom: dict[str, Any] = {}
        now = time.time()
        for rec in records:
            version = rec.version or ""
            m = rec.manifest
            info.add_metric(
                [rec.id, version, m.type if m else "", str(rec.state), rec.isolation], 1.0
            )
            up.add_metric([rec.id, version], 1.0 if str(rec.state) == "active" else 0.0)
            restarts.add_metric([rec.id], restart_counts.get(rec.id, 0))
            where = rec.handle.location() if rec.handle is not None else None
            if where is not None:
                nodes.add_metric([rec.id, where["backend"], where["node"], where["mode"]], 1.0)
            metrics = rec.metrics
            if metrics is None:
                continue
            if rec.load_seconds is not None:
                init.add_metric([rec.id, version], rec.load_seconds)
            if rec.started_at is not None and str(rec.state) == "active":
                uptime.add_metric([rec.id, version], now - rec.started_at)
            for command, stats in list(metrics.commands.items()):
                labels = [rec.id, version, command]
                # one snapshot, so the histogram stays consistent with its count
                buckets = stats.buckets
                count = sum(buckets)  # the timed calls (durations are sampled)
                calls.add_metric(labels, stats.calls)
                for error, n in list(stats.errors_by_type.items()):
                    errors.add_metric([*labels, error], n)
                cumulative, running = [], 0
                for bound, n in zip(BUCKETS, buckets, strict=False):
                    running += n
                    cumulative.append((repr(bound), running))
                cumulative.append(("+Inf", count))
                durations.add_metric(labels, cumulative, stats.total_time)
            self._custom(custom, rec.id, version, metrics)
        events = CounterMetricFamily(
            "plugbay_events", "System events emitted, by kind.", labels=["kind"]
        )
        for kind, count in list(self.manager.events.counts.items()):
            events.add_metric([kind], count)
        dropped = CounterMetricFamily(
            "plugbay_events_dropped",
            "System events dropped because the queue was full (a listener's lane: "
            "plugbay_plugin_system_events_dropped).",
        )
        dropped.add_metric([], self.manager.events.dropped)
        yield from (info, up, restarts, init, uptime, calls, errors, durations, events, dropped)
        yield nodes
        yield from self._monitored(records)
        yield from custom.values()
        yield from self.manager.plugin_events.families()

    def _custom(self, families: dict[str, Any], plugin: str, version: str, metrics: Any) -> None:
        """A plugin's own metrics, each with its own labels beside plugin and version."""
        items: list[tuple[str, str, Any, Any]] = [
            *(("counter", n, lb, v) for (n, lb), v in list(metrics.counters.items())),
            *(("gauge", n, lb, v) for (n, lb), v in list(metrics.gauges.items())),
            *(("histogram", n, lb, v) for (n, lb), v in list(metrics.observations.items())),
        ]
        for kind, name, label_items, value in items:
            family_name = f"plugbay_custom_{metric_name(name)}"
            family = families.get(family_name)
            if family is None:
                family = families[family_name] = Metric(
                    family_name, f"The plugins' own {kind} '{name}'.", kind
                )
            elif family.type != kind:
                log.warning(
                    "metric '%s' of '%s' is a %s elsewhere; not exported", name, plugin, family.type
                )
                continue
            labels = {**dict(label_items), "plugin": plugin, "version": version}
            if kind == "counter":
                family.add_sample(family_name + "_total", labels, value)
            elif kind == "gauge":
                family.add_sample(family_name, labels, value)
            else:
                assert isinstance(value, CommandStats)
                buckets = value.buckets
                running = 0
                for bound, n in zip(value.bounds, buckets, strict=False):
                    running += n
                    family.add_sample(
                        family_name + "_bucket", {**labels, "le": repr(bound)}, running
                    )
                family.add_sample(family_name + "_bucket", {**labels, "le": "+Inf"}, sum(buckets))
                family.add_sample(family_name + "_count", labels, sum(buckets))
                family.add_sample(family_name + "_sum", labels, value.total_time)

    def _monitored(self, records: list[Any]) -> Iterator[Metric]:
        """What the monitor samples: usage, queue, health, alerts, logs, events."""
        yield from self._calls(records)
        yield from self._sampled(records)
        yield self._over_bounds()
        yield from self._host_usage()

    def _calls(self, records: list[Any]) -> Iterator[Metric]:
        """Each plugin's queue, instances, call outcomes, events and dropped series."""
        pv = ["plugin", "version"]
        inflight = GaugeMetricFamily(
            "plugbay_plugin_inflight", "Calls running or waiting (queue length).", labels=pv
        )
        instances = GaugeMetricFamily(
            "plugbay_plugin_instances", "Running instances of the plugin.", labels=pv
        )
        success = GaugeMetricFamily(
            "plugbay_plugin_success_ratio",
            "Share of calls that succeeded since it started.",
            labels=pv,
        )
        error_ratio = GaugeMetricFamily(
            "plugbay_plugin_error_ratio", "Share of calls that failed since it started.", labels=pv
        )
        delivered = CounterMetricFamily(
            "plugbay_plugin_events_delivered", "System events delivered to the plugin.", labels=pv
        )
        missed = CounterMetricFamily(
            "plugbay_plugin_system_events_dropped",
            "System events dropped for the plugin: it ran past its time and fell 1,000 behind.",
            labels=pv,
        )
        dropped_series = CounterMetricFamily(
            "plugbay_plugin_metric_series_dropped",
            "Label sets of the plugin's own metrics dropped over the bound.",
            labels=[*pv, "metric"],
        )
        delivered_to = self.manager.events.delivered_to
        dropped_for = self.manager.events.dropped_for
        for rec in records:
            labels = [rec.id, rec.version or ""]
            inflight.add_metric(labels, self.manager.inflight(rec.id))
            instances.add_metric(labels, 1 if rec.handle is not None else 0)
            delivered.add_metric(labels, delivered_to.get(rec.id, 0))
            missed.add_metric(labels, dropped_for.get(rec.id, 0))
            metrics = rec.metrics
            if metrics is None:
                continue
            calls = sum(s.calls for s in list(metrics.commands.values()))
            errors = sum(s.errors for s in list(metrics.commands.values()))
            if calls:
                success.add_metric(labels, (calls - errors) / calls)
                error_ratio.add_metric(labels, errors / calls)
            for name, n in list(metrics.dropped_series.items()):
                dropped_series.add_metric([*labels, name], n)
        yield from (inflight, instances, success, error_ratio, delivered, missed, dropped_series)

    def _sampled(self, records: list[Any]) -> Iterator[Metric]:
        """What the monitor samples of each plugin: usage, utilization, health, alerts,
        logs dropped (empty families when monitoring is off)."""
        pv = ["plugin", "version"]
        families = {
            key: (CounterMetricFamily if counter else GaugeMetricFamily)(name, doc, labels=pv)
            for key, name, doc, counter in _USAGE
        }
        cpu_percent = GaugeMetricFamily(
            "plugbay_plugin_cpu_percent", "CPU use of the worker over the last sample.", labels=pv
        )
        utilization = GaugeMetricFamily(
            "plugbay_plugin_resource_utilization",
            "Share of a manifest limit in use (1 = at the limit).",
            labels=[*pv, "resource"],
        )
        health = GaugeMetricFamily(
            "plugbay_plugin_health", "1 for the plugin's health status now.", labels=[*pv, "status"]
        )
        alerts = GaugeMetricFamily(
            "plugbay_plugin_alert_firing", "1 for each alert rule firing now.", labels=[*pv, "rule"]
        )
        logs_dropped = CounterMetricFamily(
            "plugbay_plugin_log_records_dropped",
            "Log records dropped by the plugin's rate limits (its worker's, the host's).",
            labels=pv,
        )
        monitor = self.monitor
        if monitor is not None:
            dropped_logs = monitor.logs.dropped()
            budgets = self.manager.budgets
            for rec in records:
                labels = [rec.id, rec.version or ""]
                budget = budgets.get(rec.id)
                over = budget.dropped["log_rate"] if budget is not None else 0
                logs_dropped.add_metric(labels, dropped_logs.get(rec.id, 0) + over)
                usage, percent = monitor.usage_of(rec.id)
                if usage is not None and not usage.get("shared"):
                    for key, _name, _doc, _counter in _USAGE:
                        if isinstance(usage.get(key), (int, float)):
                            families[key].add_metric(labels, usage[key])
                    if percent is not None:
                        cpu_percent.add_metric(labels, percent)
                    for resource, ratio in monitor.utilization_of(rec.id).items():
                        utilization.add_metric([*labels, resource], ratio)
                status = monitor.check_health(rec.id)["status"]
                health.add_metric([*labels, str(status)], 1)
                for alert in monitor.alerts.active(rec.id):
                    alerts.add_metric([*labels, alert.rule], 1)
        yield from families.values()
        yield from (cpu_percent, utilization, health, alerts, logs_dropped)

    def _over_bounds(self) -> Metric:
        """What each plugin sent or asked over its bounds, by reason."""
        bounded_out = CounterMetricFamily(
            "plugbay_plugin_dropped",
            "What a plugin sent or asked over its bounds ([policy.bounds]): dropped or cut.",
            labels=["plugin", "reason"],
        )
        for plugin_id, budget in sorted(self.manager.budgets.items()):
            for reason, n in sorted(budget.dropped.items()):
                bounded_out.add_metric([plugin_id, reason], n)
        return bounded_out

    def _host_usage(self) -> Iterator[Metric]:
        """The host process's own memory and CPU (with its inline plugins)."""
        monitor = self.monitor
        if monitor is None:
            return
        host = monitor.host_usage()
        memory = GaugeMetricFamily(
            "plugbay_host_memory_bytes", "Resident memory of the host (and its inline plugins)."
        )
        cpu = CounterMetricFamily(
            "plugbay_host_cpu_seconds", "CPU time of the host (and its inline plugins)."
        )
        if host:
            memory.add_metric([], host["rss_bytes"])
            cpu.add_metric([], host["cpu_seconds"])
        yield from (memory, cpu)


def registry(manager: PluginManager, monitor: PluginMonitor | None = None) -> CollectorRegistry:
    """A prometheus_client registry with our collector (for code that wants one)."""
    out = CollectorRegistry(auto_describe=False)
    out.register(PlugbayCollector(manager, monitor))
    return out


def exposition(manager: PluginManager, monitor: PluginMonitor | None = None) -> bytes:
    """The Prometheus text format for everything the manager (and monitor) know now."""
    return text_format(PlugbayCollector(manager, monitor).collect())


def floatToGoString(value: float) -> str:
    """A value as Go (and so Prometheus) writes it: +Inf, NaN, 1e+06."""
    return str(_go_float(value))  # type: ignore[no-untyped-call]


def _label_value(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def text_format(families: Iterable[Metric]) -> bytes:
    """The text format 0.0.4, as ``generate_latest`` writes it for our three metric kinds.

    ``generate_latest`` spends ~8 µs a sample validating and escaping names we
    already made valid; at 100 plugins that alone is most of a 50 ms scrape budget.
    Names and label names here are valid by construction (``metric_name`` and
    ``PluginMetrics`` check them), so only label values are escaped.
    """
    out: list[str] = []
    append = out.append
    cache: dict[tuple[tuple[str, str], ...], str] = {}
    for family in families:
        name, kind = family.name, family.type
        if kind == "counter":
            name += "_total"
        elif kind not in ("gauge", "histogram"):
            kind = "untyped"
        doc = family.documentation.replace("\\", "\\\\").replace("\n", "\\n")
        append(f"# HELP {name} {doc}\n# TYPE {name} {kind}\n")
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            labels = sample.labels
            if labels:
                key = tuple(sorted(labels.items()))
                text = cache.get(key)
                if text is None:
                    text = cache[key] = (
                        "{" + ",".join(f'{k}="{_label_value(v)}"' for k, v in key) + "}"
                    )
            else:
                text = ""
            append(f"{sample.name}{text} {floatToGoString(sample.value)}\n")
    return "".join(out).encode()


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_TEXT = "text/plain; charset=utf-8"
#: an id a scraper sends is echoed when it is plain; else the host makes one
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def serve_metrics(
    manager: PluginManager,
    port: int,
    host: str = "127.0.0.1",
    monitor: PluginMonitor | None = None,
    *,
    token: Callable[[str], bool] | None = None,
) -> tuple[Any, int]:
    """Serve ``/metrics`` on ``host:port`` in a daemon thread; returns (server, port).

    ``token``: when given, a scrape needs ``Authorization: Bearer <token>`` that it
    accepts (the host's API token; Prometheus sends it with ``authorization:
    credentials_file``), else 401. ``server.shutdown()`` stops it. (The HTTP API serves
    the same body through :meth:`Host.render_metrics`.)"""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            given = self.headers.get("X-Request-ID") or ""
            self.request_id = given if _REQUEST_ID.match(given) else secrets.token_hex(8)
            if token is not None:
                scheme, _, given = (self.headers.get("Authorization") or "").partition(" ")
                if scheme.lower() != "bearer" or not token(given.strip()):
                    self._answer(
                        401,
                        "this /metrics needs the host's API token: send 'Authorization: "
                        "Bearer <token>' ('plugbay token' shows it), or start the host with "
                        "--metrics-public\n",
                        ("WWW-Authenticate", 'Bearer realm="plugbay-metrics"'),
                    )
                    return
            if self.path.split("?", 1)[0] not in ("/metrics", "/"):
                self._answer(404, f"only /metrics is served here, not {self.path[:200]!r}\n")
                return
            try:
                body = exposition(manager, monitor)
            except Exception as exc:  # a broken scrape must say why, not hang up
                log.exception("collecting metrics failed (request %s)", self.request_id)
                self._answer(
                    500,
                    f"collecting metrics failed: {exc}\nthe host's log (host.log in the state directory of 'plugbay run') has the traceback "
                    f"under request {self.request_id}; please report it\n",
                )
                return
            self._answer(200, body)

        def _answer(self, status: int, body: str | bytes, *headers: tuple[str, str]) -> None:
            data = body.encode() if isinstance(body, str) else body
            self.send_response(status)
            self.send_header("X-Request-ID", self.request_id)
            self.send_header("Content-Type", CONTENT_TYPE if status == 200 else _TEXT)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # scrapes every few seconds would drown the host's output

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="plugbay-metrics", daemon=True).start()
    return server, int(server.server_address[1])
