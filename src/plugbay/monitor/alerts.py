"""Alert rules and what happens when one fires or clears.

Each rule (``monitor.config``) is a condition over a plugin's recent samples;
:func:`evaluate` turns the samples into the conditions that hold now, and
:class:`AlertManager` acts on the changes: a rule that starts to hold *fires*
(recorded in the SQLite state, logged in the host's and the plugin's log, sent
to system plugins as the system event ``alert.fired``, and, when the rule says
``disable = true``, the plugin is disabled); one that stops holding *clears*
(``alert.cleared``, the record closed).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from plugbay.monitor.config import AlertSettings
from plugbay.monitor.metrics import BUCKETS

if TYPE_CHECKING:
    from plugbay.monitor.logs import LogManager
    from plugbay.monitor.source import EventSource
    from plugbay.state import StateStore

__all__ = ["EVENT_RULES", "Alert", "AlertManager", "Condition", "Sample", "evaluate"]

log = logging.getLogger("plugbay.monitor.alerts")

#: alerts fired by an event rather than by a rule over the samples (a canary's rollback):
#: the next tick does not clear them (:meth:`AlertManager.raise_event`)
EVENT_RULES: frozenset[str] = frozenset({"canary-rollback"})


@dataclass(slots=True)
class Sample:
    """One plugin at one tick of the monitor."""

    at: float  # monotonic
    calls: int
    errors: int
    #: command → (histogram buckets, that command's timeout)
    commands: dict[str, tuple[list[int], float]]
    rss: int | None
    inflight: int


@dataclass(frozen=True, slots=True)
class Condition:
    rule: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Alert:
    id: int | None
    plugin: str
    version: str | None
    rule: str
    message: str
    details: dict[str, Any]
    fired: float
    cleared: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "plugin": self.plugin, "version": self.version, "rule": self.rule,
            "message": self.message, "details": self.details, "fired": self.fired,
            "cleared": self.cleared,
        }  # fmt: skip


def _quantile(buckets: Sequence[int], q: float) -> float | None:
    total = sum(buckets)
    if not total:
        return None
    seen = 0
    for i, n in enumerate(buckets):
        seen += n
        if n and seen >= q * total:
            return BUCKETS[i] if i < len(BUCKETS) else float("inf")
    return None


def evaluate(
    rules: AlertSettings,
    samples: Sequence[Sample],
    *,
    crashes: Sequence[float],
    hung: Condition | None,
    now: float,
) -> list[Condition]:
    """The conditions that hold for one plugin, given its samples (oldest first)."""
    if not samples:
        return []
    holding = [
        _error_rate(rules, samples) if rules.error_rate.enabled else None,
        _latency(rules, samples) if rules.latency.enabled else None,
        _memory_growth(rules, samples) if rules.memory_growth.enabled else None,
        _queue(rules, samples[-1]) if rules.queue.enabled else None,
        hung if rules.hung.enabled else None,
        _restarts(rules, crashes, now) if rules.restarts.enabled else None,
    ]
    return [c for c in holding if c is not None]


def _since(samples: Sequence[Sample], window: float) -> Sample:
    """The oldest sample inside the last ``window`` seconds."""
    last = samples[-1]
    for s in samples:
        if s.at >= last.at - window - 1e-6:
            return s
    return samples[0]


def _error_rate(rules: AlertSettings, samples: Sequence[Sample]) -> Condition | None:
    rule, last = rules.error_rate, samples[-1]
    first = _since(samples, rule.window)
    calls, errors = last.calls - first.calls, last.errors - first.errors
    if calls < rule.min_calls or errors / calls <= rule.threshold:
        return None
    return Condition(
        "error-rate",
        f"{errors} of {calls} calls failed in the last {rule.window:g} s "
        f"({errors / calls:.0%}, above {rule.threshold:.0%})",
        {"calls": calls, "errors": errors, "window": rule.window},
    )


def _floor(buckets: Sequence[int], q: float) -> float | None:
    """What quantile ``q`` is surely over: the lower bound of the bucket that holds it
    (None with no calls). The bucket's upper bound is no measure of it: calls of 1.05 s
    all sit in (1, 2.5], and their p99 is not 2.5 s."""
    total = sum(buckets)
    seen = 0
    for i, n in enumerate(buckets):
        seen += n
        if n and seen >= q * total:
            return BUCKETS[i - 1] if i else 0.0
    return None


def _latency(rules: AlertSettings, samples: Sequence[Sample]) -> Condition | None:
    """A command whose p99 is surely over ``fraction`` of its timeout (durations are known
    to a histogram bucket: it holds when the p99's bucket starts at or over that share)."""
    rule, last = rules.latency, samples[-1]
    first = _since(samples, rule.window)
    for command, (buckets, timeout) in last.commands.items():
        before = first.commands.get(command, ([0] * len(buckets), timeout))[0]
        window = [a - b for a, b in zip(buckets, before, strict=False)]
        if sum(window) < rule.min_calls:
            continue
        over = _floor(window, 0.99)
        if over is not None and over > 0 and over >= rule.fraction * timeout:
            return Condition(
                "latency",
                f"'{command}' p99 is over {over:g} s, at or above {rule.fraction:.0%} "
                f"of its {timeout:g} s timeout",
                {"command": command, "p99_over_seconds": over, "timeout": timeout},
            )
    return None


def _memory_growth(rules: AlertSettings, samples: Sequence[Sample]) -> Condition | None:
    rule, last = rules.memory_growth, samples[-1]
    first = _since(samples, rule.window)
    rss = [s.rss for s in samples if s.at >= first.at and s.rss is not None]
    if len(rss) < rule.min_samples:
        return None
    steps = [b - a for a, b in itertools.pairwise(rss)]
    rising = sum(1 for d in steps if d >= 0) / len(steps)
    grown = rss[-1] - rss[0]
    if grown < rule.min_growth or rising < rule.steady:
        return None
    return Condition(
        "memory-growth",
        f"memory grew steadily by {grown / 2**20:.1f} MiB over "
        f"{last.at - first.at:.0f} s (to {rss[-1] / 2**20:.1f} MiB): a leak?",
        {"from_bytes": rss[0], "to_bytes": rss[-1], "rising": round(rising, 2)},
    )


def _queue(rules: AlertSettings, last: Sample) -> Condition | None:
    if last.inflight <= rules.queue.max:
        return None
    return Condition(
        "queue",
        f"{last.inflight} calls in flight or waiting, above {rules.queue.max}",
        {"inflight": last.inflight},
    )


def _restarts(rules: AlertSettings, crashes: Sequence[float], now: float) -> Condition | None:
    rule = rules.restarts
    recent = [t for t in crashes if now - t < rule.window]
    if len(recent) < rule.max:
        return None
    return Condition(
        "restarts",
        f"it crashed {len(recent)} times in the last {rule.window:g} s, restarted each time",
        {"crashes": len(recent), "window": rule.window},
    )


class AlertManager:
    """The spec's ``AlertManager``: which alerts fire now, and their record."""

    def __init__(
        self,
        rules: AlertSettings,
        *,
        events: EventSource,
        logs: LogManager | None = None,
        store: Callable[[], StateStore | None] = lambda: None,
        disable: Callable[[str, str], None] | None = None,
    ) -> None:
        self.rules = rules
        self._events = events
        self._logs = logs
        self._store = store
        self._disable = disable
        self.firing: dict[tuple[str, str], Alert] = {}
        self.fired_total = 0

    def active(self, plugin_id: str | None = None) -> list[Alert]:
        return [a for (pid, _), a in self.firing.items() if plugin_id is None or pid == plugin_id]

    def update(self, plugin_id: str, version: str | None, holding: Sequence[Condition]) -> None:
        """Fire the rules that hold now and did not; clear those that held and do not."""
        now_holding = {c.rule: c for c in holding}
        for rule, condition in now_holding.items():
            if (plugin_id, rule) not in self.firing:
                self._fire(plugin_id, version, condition)
        for (pid, rule), alert in list(self.firing.items()):
            if pid == plugin_id and rule not in now_holding and rule not in EVENT_RULES:
                self._clear(alert)

    def raise_event(self, plugin_id: str, version: str | None, condition: Condition) -> None:
        """Fire an alert for something that happened (a canary rolled back), not a rule
        over the samples: it holds until :meth:`clear_rule` (a later promotion)."""
        alert = self.firing.get((plugin_id, condition.rule))
        if alert is not None:
            self._clear(alert)
        self._fire(plugin_id, version, condition)

    def clear_rule(self, plugin_id: str, rule: str) -> None:
        """Clear one alert of a plugin, if it fires."""
        alert = self.firing.get((plugin_id, rule))
        if alert is not None:
            self._clear(alert)

    def clear_plugin(self, plugin_id: str) -> None:
        """A plugin went away (unloaded, disabled, failed for good): its alerts no longer hold."""
        for (pid, _), alert in list(self.firing.items()):
            if pid == plugin_id:
                self._clear(alert)

    def _fire(self, plugin_id: str, version: str | None, condition: Condition) -> None:
        alert = Alert(None, plugin_id, version, condition.rule, condition.message,
                      dict(condition.details), time.time())  # fmt: skip
        store = self._store()
        if store is not None:
            try:
                alert.id = store.open_alert(
                    plugin_id, version, condition.rule, condition.message, alert.details
                )
            except Exception as exc:  # losing the record must not lose the alert
                log.error("could not record alert %s of %s: %s", condition.rule, plugin_id, exc)
        self.firing[(plugin_id, condition.rule)] = alert
        self.fired_total += 1
        log.warning(
            "alert %s fired for plugin '%s': %s", condition.rule, plugin_id, condition.message
        )
        if self._logs is not None:
            fields = {k: v for k, v in alert.details.items() if k != "stack"}
            self._logs.add(plugin_id, logging.WARNING, f"alert {condition.rule}: {condition.message}",
                           alert=condition.rule, **fields)  # fmt: skip
        self._events.emit(
            "alert.fired", plugin=plugin_id, version=version, rule=condition.rule,
            message=condition.message, details=alert.details,
        )  # fmt: skip
        rule = getattr(self.rules, condition.rule.replace("-", "_"), None)
        if rule is not None and rule.disable and self._disable is not None:
            self._disable(plugin_id, f"alert {condition.rule}: {condition.message}")

    def _clear(self, alert: Alert) -> None:
        self.firing.pop((alert.plugin, alert.rule), None)
        alert.cleared = time.time()
        store = self._store()
        if store is not None and alert.id is not None:
            try:
                store.clear_alert(alert.id)
            except Exception as exc:
                log.error("could not clear alert %s of %s: %s", alert.rule, alert.plugin, exc)
        log.info("alert %s cleared for plugin '%s'", alert.rule, alert.plugin)
        if self._logs is not None:
            self._logs.add(
                alert.plugin, logging.INFO, f"alert {alert.rule} cleared", alert=alert.rule
            )
        self._events.emit(
            "alert.cleared", plugin=alert.plugin, version=alert.version, rule=alert.rule
        )
