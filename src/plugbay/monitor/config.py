"""Monitoring settings and alert rules, with defaults an operator changes in the host config.

``plugbay.toml``::

    [monitor]
    interval = 1.0                 # seconds between samples (usage, alerts, snapshot)
    idle-interval = 5.0            # ... while nothing happens (a call or event ends it)

    [monitor.alerts.error-rate]
    threshold = 0.2                # fraction of calls failing ...
    window = 60                    # ... over this many seconds
    min-calls = 10
    disable = false                # true: a firing alert disables the plugin

Every rule has ``enabled`` and ``disable``; unknown keys and wrong types are refused
with the key's place in the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from plugbay.api.errors import ConfigError

__all__ = [
    "AlertSettings",
    "ErrorRateRule",
    "HungRule",
    "LatencyRule",
    "MemoryGrowthRule",
    "MonitorSettings",
    "QueueRule",
    "RestartsRule",
    "monitor_table",
]


def monitor_table(data: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """The ``[monitor]`` table of the host config ``data`` read from ``where`` (empty when
    there is none), as the host and ``plugbay doctor`` read it; not a table: a ConfigError.
    :meth:`MonitorSettings.from_config` checks its keys and values."""
    table = data.get("monitor", {})
    if not isinstance(table, Mapping):
        raise ConfigError(
            f"[monitor] must be a table of settings, not {table!r}",
            where=where,
            hint="write it as a [monitor] section of key = value lines "
            "(docs/operators.md, Monitoring: Alerts, lists them)",
        )
    return dict(table)


class _Rule(msgspec.Struct, rename="kebab", forbid_unknown_fields=True, kw_only=True):
    enabled: bool = True
    #: a firing alert disables the plugin (kept in the state, like `plugbay disable`)
    disable: bool = False


class ErrorRateRule(_Rule, kw_only=True):
    """More than ``threshold`` of the calls in the last ``window`` seconds failed."""

    threshold: float = 0.2
    window: float = 60.0
    min_calls: int = 10


class LatencyRule(_Rule, kw_only=True):
    """A command's p99 over ``window`` is above ``fraction`` of its timeout."""

    fraction: float = 0.8
    window: float = 60.0
    min_calls: int = 5


class MemoryGrowthRule(_Rule, kw_only=True):
    """A worker's memory grew by ``min-growth`` bytes across ``window``, almost every step up."""

    window: float = 120.0
    min_growth: int = 64 * 1024 * 1024
    min_samples: int = 5
    #: share of the steps in the window that must not go down
    steady: float = 0.8


class QueueRule(_Rule, kw_only=True):
    """More than ``max`` calls in flight or waiting at once."""

    max: int = 100


class HungRule(_Rule, kw_only=True):
    """A call has run ``after`` seconds without finishing (or blocked the host's loop)."""

    after: float = 10.0


class RestartsRule(_Rule, kw_only=True):
    """The plugin crashed (its worker died, its Wasm instance trapped) and was restarted
    ``max`` times within ``window``."""

    max: int = 3
    window: float = 300.0


class AlertSettings(msgspec.Struct, rename="kebab", forbid_unknown_fields=True, kw_only=True):
    error_rate: ErrorRateRule = msgspec.field(default_factory=ErrorRateRule)
    latency: LatencyRule = msgspec.field(default_factory=LatencyRule)
    memory_growth: MemoryGrowthRule = msgspec.field(default_factory=MemoryGrowthRule)
    queue: QueueRule = msgspec.field(default_factory=QueueRule)
    hung: HungRule = msgspec.field(default_factory=HungRule)
    restarts: RestartsRule = msgspec.field(default_factory=RestartsRule)


class MonitorSettings(msgspec.Struct, rename="kebab", forbid_unknown_fields=True, kw_only=True):
    #: seconds between samples: usage, alert rules, hung calls, the live snapshot, log flush
    interval: float = 1.0
    #: seconds between samples while nothing happens (no call, event, log record, alert or
    #: unsettled plugin): a call, an event or a record ends the wait (``monitor.monitor``);
    #: unset: five times ``interval``
    idle_interval: float | None = None
    #: readiness: how often each plugin's health() runs, and how long it may take
    health_interval: float = 5.0
    health_timeout: float = 2.0
    #: liveness of inline plugins: the host's loop not turning this long is a block
    loop_block_after: float = 1.0
    #: per-plugin logs: ring size, rate limit, retention
    log_ring: int = 1000
    log_rate: float = 500.0
    log_burst: float = 2000.0
    log_bytes_per_second: float = 1024 * 1024
    log_retention_days: float = 7.0
    log_keep: int = 10_000
    alerts: AlertSettings = msgspec.field(default_factory=AlertSettings)

    @classmethod
    def from_config(
        cls, data: Mapping[str, Any] | None, *, where: str | None = None
    ) -> MonitorSettings:
        """Settings from a ``[monitor]`` table; a clear ConfigError for a bad key or value."""
        try:
            settings = msgspec.convert(dict(data or {}), cls, strict=False)
        except msgspec.ValidationError as exc:
            text = str(exc).replace("$.", "monitor.").replace("`$`", "[monitor]")
            raise ConfigError(
                f"bad [monitor] settings: {text}",
                where=where,
                hint="docs/operators.md (Monitoring: Alerts) lists every key and its default",
            ) from None
        for name in ("interval", "health_interval", "health_timeout", "loop_block_after"):
            if getattr(settings, name) <= 0:
                raise ConfigError(
                    f"monitor.{name.replace('_', '-')} must be above 0, not {getattr(settings, name)}",
                    where=where,
                    hint="give a number of seconds such as 1.0",
                )
        if settings.idle_interval is not None and settings.idle_interval <= 0:
            raise ConfigError(
                f"monitor.idle-interval must be above 0, not {settings.idle_interval}",
                where=where,
                hint="give a number of seconds such as 5.0, or leave it out (5 × interval)",
            )
        return settings

    @property
    def rest(self) -> float:
        """Seconds between two idle ticks (never below ``interval``)."""
        idle = 5 * self.interval if self.idle_interval is None else self.idle_interval
        return max(idle, self.interval)
