"""core.monitoring — a health reporter over every plugin the host knows.

It reads the host's view (the ``plugbay.host`` service): a failed plugin is
*failing*; an active one whose error rate reaches the threshold (after enough
calls) is *degraded*; otherwise *green*. Disabled and stopped plugins are
listed but do not count. Overall health is the worst of the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from plugbay import PluginContext, SystemEvent, SystemPlugin, command

Status = Literal["green", "degraded", "failing", "disabled", "stopped"]
_RANK = {"green": 0, "degraded": 1, "failing": 2}


class HostView(Protocol):
    def plugins(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class PluginHealth:
    id: str
    version: str | None
    state: str
    status: Status
    calls: int
    error_rate: float
    reason: str | None


@dataclass(frozen=True, slots=True)
class HealthReport:
    overall: Literal["green", "degraded", "failing"]
    plugins: list[PluginHealth]
    failures_seen: int


class HealthReporter(SystemPlugin):
    priority = 3
    system_hooks = ("plugin.failed",)

    def __init__(self) -> None:
        self.failures_seen = 0
        self.threshold = 0.05
        self.min_calls = 5
        self.host: HostView | None = None

    async def initialize(self, context: PluginContext) -> None:
        self.threshold = float(context.config["error-rate-degraded"])
        self.min_calls = int(context.config["min-calls"])
        host: HostView = context.services.require("plugbay.host")
        self.host = host

    async def on_system_event(self, event: SystemEvent) -> None:
        self.failures_seen += 1
        self.context.logger.warning(
            "plugin %s failed: %s", event.data.get("plugin"), event.data.get("reason")
        )

    def _health(self, row: dict[str, Any]) -> PluginHealth:
        metrics = row.get("metrics") or {}
        calls = int(metrics.get("calls", 0))
        rate = float(metrics.get("error_rate", 0.0))
        state = str(row["state"])
        status: Status
        if state == "failed":
            status = "failing"
        elif state == "disabled":
            status = "disabled"
        elif state != "active":
            status = "stopped"
        elif calls >= self.min_calls and rate >= self.threshold:
            status = "degraded"
        else:
            status = "green"
        return PluginHealth(
            row["id"], row.get("version"), state, status, calls, rate, row.get("reason")
        )

    def _report(self) -> HealthReport:
        assert self.host is not None
        plugins = [self._health(row) for row in self.host.plugins()]
        counted = [p.status for p in plugins if p.status in _RANK]
        worst = max(counted, key=lambda s: _RANK[s], default="green")
        return HealthReport(worst, plugins, self.failures_seen)  # type: ignore[arg-type]

    @command
    def report(self) -> HealthReport:
        """Every plugin's health and the overall status."""
        return self._report()

    @command
    def status(self) -> str:
        """'green', 'degraded' or 'failing'."""
        return self._report().overall
