"""core.monitoring — a health reporter over every plugin the host knows.

It reads the host's own view (the ``plugbay.host`` service: each plugin's
record and call metrics) and rates each plugin:

* **failing** — the plugin is ``failed`` (its reason is the host's);
* **degraded** — it is active, and either its error rate is at least
  ``error-rate-degraded`` over at least ``min-calls`` calls, or its recent
  calls are failing: in the last ``window`` seconds some failed, at that rate
  or worse;
* **green** — active and neither of those;
* **disabled**, **stopped**, **starting** (restarting after a crash too) — shown,
  but not rated.

Overall health is the worst of the rated plugins. "Recent" comes from samples
of the cumulative counters, taken every quarter window by a background task.
It also counts the ``plugin.failed`` events it has seen and logs each one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

from plugbay import PluginContext, SystemEvent, SystemInfo, SystemPlugin, command

__all__ = ["HealthReport", "HealthReporter", "PluginHealth"]

Overall = Literal["green", "degraded", "failing"]
Status = Literal["green", "degraded", "failing", "disabled", "stopped", "starting"]
_RANK: Final[dict[str, int]] = {"green": 0, "degraded": 1, "failing": 2}
_NOT_RATED: Final[dict[str, Status]] = {
    "disabled": "disabled",
    "stopping": "stopped",
    "stopped": "stopped",
    "discovered": "starting",
    "resolved": "starting",
    "initializing": "starting",
    "restarting": "starting",  # after a crash: failing only once the host gives up
}


class HostView(Protocol):
    """What this plugin uses of the ``plugbay.host`` service (``plugbay.host.HostInfo``)."""

    def plugins(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class PluginHealth:
    id: str
    version: str | None
    state: str
    status: Status
    error_rate: float
    calls: int
    #: why it is not green: the host's reason (failed, disabled) or what degrades it
    reason: str | None
    errors: int = 0
    #: calls and errors in the last ``window`` seconds
    recent_calls: int = 0
    recent_errors: int = 0


@dataclass(frozen=True, slots=True)
class HealthReport:
    overall: Overall
    plugins: list[PluginHealth]
    #: ids of disabled plugins (also in ``plugins``; never part of ``overall``)
    disabled: list[str]
    #: ``plugin.failed`` events seen since this plugin started
    failures_seen: int
    time: float


@dataclass(frozen=True, slots=True)
class _Sample:
    at: float  # monotonic
    started: float  # when the plugin's counters began (wall clock), to notice a restart
    calls: int
    errors: int


class HealthReporter(SystemPlugin):
    priority = 3
    system_hooks = ("plugin.*",)

    def __init__(self) -> None:
        self.failures_seen = 0
        self.threshold = 0.05
        self.min_calls = 5
        self.window = 60.0
        self.host: HostView | None = None
        self._samples: dict[str, deque[_Sample]] = {}
        self._last_status: dict[str, Status] = {}
        self._sampler: asyncio.Task[None] | None = None

    async def initialize(self, context: PluginContext) -> None:
        self.threshold = float(context.config["error-rate-degraded"])
        self.min_calls = int(context.config["min-calls"])
        self.window = float(context.config["window"])
        host: HostView = context.services.require("plugbay.host")
        self.host = host
        self._sample()
        self._sampler = asyncio.get_running_loop().create_task(
            self._sample_every(max(self.window / 4, 0.1)), name="core.monitoring sampler"
        )

    async def cleanup(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
            self._sampler = None

    async def on_system_event(self, event: SystemEvent) -> None:
        if event.kind == "plugin.failed":
            self.failures_seen += 1
            self.context.logger.warning(
                "plugin %s failed: %s", event.data.get("plugin"), event.data.get("reason")
            )

    def get_system_info(self) -> SystemInfo:
        return {
            "id": self.id,
            "priority": self.priority,
            "failures_seen": self.failures_seen,
            "window_seconds": self.window,
            "tracked": len(self._samples),
        }

    # -- sampling ------------------------------------------------------------------------

    async def _sample_every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                self._sample()
                self._note_changes(self._report())
            except Exception:  # the sampler must outlive one bad reading
                self.context.logger.exception("health sample failed")

    def _sample(self) -> None:
        assert self.host is not None
        now, wall = time.monotonic(), time.time()
        seen = set()
        for row in self.host.plugins():
            metrics = row.get("metrics")
            if not metrics:
                continue
            seen.add(row["id"])
            started = wall - float(metrics.get("uptime_seconds") or 0.0)
            samples = self._samples.setdefault(row["id"], deque())
            if samples and abs(samples[-1].started - started) > 1.0:
                samples.clear()  # restarted: its counters began again at zero
            samples.append(_Sample(now, started, int(metrics["calls"]), int(metrics["errors"])))
            while len(samples) > 1 and samples[0].at < now - self.window:
                samples.popleft()
        for gone in set(self._samples) - seen:
            del self._samples[gone]

    def _recent(self, plugin_id: str, metrics: dict[str, Any]) -> tuple[int, int]:
        """Calls and errors within the last ``window`` seconds."""
        calls, errors = int(metrics["calls"]), int(metrics["errors"])
        if float(metrics.get("uptime_seconds") or 0.0) <= self.window:
            return calls, errors  # its counters began within the window
        usable = [
            s for s in self._samples.get(plugin_id, ()) if s.calls <= calls and s.errors <= errors
        ]
        if not usable:
            return calls, errors
        # the first sample inside the window: samples come every quarter window, so
        # this counts the last three quarters to the whole of it
        cutoff = time.monotonic() - self.window
        base = next((s for s in usable if s.at >= cutoff), usable[-1])
        return calls - base.calls, errors - base.errors

    def _note_changes(self, report: HealthReport) -> None:
        log = self.context.logger
        for p in report.plugins:
            before = self._last_status.get(p.id)
            self._last_status[p.id] = p.status
            if before is None or before == p.status:
                continue
            if p.status == "degraded":
                log.warning("plugin %s is degraded: %s", p.id, p.reason)
            elif p.status == "green" and before in ("degraded", "failing"):
                log.info("plugin %s is green again", p.id)
        counts = dict.fromkeys(_RANK, 0)
        for p in report.plugins:
            if p.status in counts:
                counts[p.status] += 1
        for status, n in counts.items():
            self.context.metrics.gauge("plugins", n, status=status)

    # -- rating ----------------------------------------------------------------------------

    def _health(self, row: dict[str, Any]) -> PluginHealth:
        metrics: dict[str, Any] = row.get("metrics") or {}
        calls, errors = int(metrics.get("calls", 0)), int(metrics.get("errors", 0))
        rate = float(metrics.get("error_rate", 0.0))
        state = str(row["state"])
        reason: str | None = row.get("reason")
        recent_calls = recent_errors = 0
        status: Status
        if state == "failed":
            status = "failing"
        elif state != "active":
            status = _NOT_RATED.get(state, "stopped")
        else:
            status = "green"
            if metrics:
                recent_calls, recent_errors = self._recent(row["id"], metrics)
            if calls >= self.min_calls and rate >= self.threshold:
                status = "degraded"
                reason = (
                    f"error rate {rate:.1%} over {calls} calls is at or above {self.threshold:.1%}"
                )
            elif recent_errors and recent_errors / recent_calls >= self.threshold:
                status = "degraded"
                reason = (
                    f"{recent_errors} of its last {recent_calls} calls failed "
                    f"(within {self.window:g} s)"
                )
        return PluginHealth(
            id=row["id"],
            version=row.get("version"),
            state=state,
            status=status,
            error_rate=rate,
            calls=calls,
            reason=reason,
            errors=errors,
            recent_calls=recent_calls,
            recent_errors=recent_errors,
        )

    def _report(self) -> HealthReport:
        assert self.host is not None
        plugins = [self._health(row) for row in self.host.plugins()]
        rated = [p.status for p in plugins if p.status in _RANK]
        overall: Overall = "green"
        for status in rated:
            if _RANK[status] > _RANK[overall]:
                overall = status  # type: ignore[assignment]
        disabled = [p.id for p in plugins if p.status == "disabled"]
        return HealthReport(overall, plugins, disabled, self.failures_seen, time.time())

    # -- commands --------------------------------------------------------------------------

    @command
    def report(self) -> HealthReport:
        """Every plugin's health, the disabled ones listed apart, and the overall status."""
        return self._report()

    @command
    def status(self) -> Overall:
        """The overall status: 'green', 'degraded' or 'failing'."""
        return self._report().overall
