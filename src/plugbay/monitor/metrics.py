"""Per-plugin metrics: what the host counts on every call, and what plugins add.

The call path records into :class:`CommandStats` with a handful of integer
operations and one ``bisect`` (no locks: the host's event loop is the only
writer), so monitoring costs a small, fixed amount per call.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import re
import time
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from plugbay.api.errors import MetricError
from plugbay.monitor.bounds import Bounds
from plugbay.monitor.error_labels import OTHER, error_label
from plugbay.monitor.library_errors import counted_as

if TYPE_CHECKING:
    from plugbay.monitor.bounds import Budget

__all__ = [
    "BUCKETS", "MAX_NAMES", "MAX_SERIES", "OVER_NAMES", "CommandStats", "PluginMetrics",
    "metric_name",
]  # fmt: skip

#: bucket bounds one plugin histogram may have
MAX_BUCKETS: Final = 50
#: distinct label sets one plugin metric may have; more are dropped, counted and logged once
MAX_SERIES: Final = 100
#: label sets of all of a plugin's own metrics together (``[policy.bounds] metric-series``)
_TOTAL: Final = Bounds().metric_series
#: distinct metric names one plugin may have; a new name past it is dropped, counted under
#: :data:`OVER_NAMES` and logged once
MAX_NAMES: Final = 100
#: the ``metric`` label under which the writes to names past :data:`MAX_NAMES` are counted
OVER_NAMES: Final = "(names over the cap)"
#: labels the host adds itself (a plugin cannot set them) and Prometheus' own
_RESERVED_LABELS: Final = frozenset({"plugin", "version", "le", "quantile"})
_LABEL: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_NAME: Final = re.compile(r"[^a-zA-Z0-9_]")

Key = tuple[str, tuple[tuple[str, str], ...]]
#: what the workers before the one heard now counted: counters, gauges, histograms, drops
_Before = tuple[dict[Key, float], dict[Key, float], dict[Key, "CommandStats"], Counter[str]]


def metric_name(name: str) -> str:
    """A plugin's metric name made valid for Prometheus (``cache-hits`` → ``cache_hits``)."""
    cleaned = _NAME.sub("_", name).strip("_") or "unnamed"
    return cleaned if not cleaned[0].isdigit() else f"m_{cleaned}"


#: histogram bucket upper bounds in seconds (log-spaced, 10 µs … 60 s)
BUCKETS: Final[tuple[float, ...]] = (
    1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


class CommandStats:
    """Calls, errors and a latency histogram of one command.

    Counts are exact and durations *sampled*: every one of the first
    :attr:`ALWAYS` calls is timed, then one call in :attr:`EVERY` (a timer read
    and a histogram update cost more than the rest of monitoring, see
    ``docs/architecture.md``). The call path only counts down ``left`` and times
    the call that reaches zero; that call starts the next period (:meth:`next_period`),
    and the number of calls is the periods done plus the current one's progress.
    Every error is counted under its label (``monitor.error_labels``: a bounded set of
    class names, whatever a plugin raises). A timed duration is only appended to ``pending``;
    the event loop folds pending durations into the histogram in batches
    (:meth:`fold`). Readers in any thread combine the folded figures with a copy
    of what is pending, so they never disturb the writer.

    A :attr:`pacer` (a canary, ``runtime.canary``) sets the periods' lengths instead:
    the call ending each one is timed as always, and its end is the pacer's cue.
    Whatever ends the timed call (an answer, an error, its caller's cancel) ends its
    period: otherwise ``left`` stays below zero and no call is timed again.
    """

    __slots__ = (
        "_buckets", "_max", "_timed", "_total", "base", "bounds", "errors", "errors_by_type",
        "left", "pacer", "pending", "period",
    )  # fmt: skip

    #: fold once this many durations are pending
    FOLD_AT = 4096
    #: time every call of the first ALWAYS, then one in EVERY (a power of two)
    ALWAYS = 128
    EVERY = 32

    def __init__(self, bounds: tuple[float, ...] = BUCKETS) -> None:
        #: the histogram's bucket upper bounds (a plugin's own histogram may set its own)
        self.bounds = bounds
        self.pending: list[float] = []
        #: calls before the current period, the period's length, calls left in it
        self.base = 0
        self.period = 1
        self.left = 1
        self._timed = 0
        self._total = 0.0
        self._max = 0.0
        self._buckets = [0] * (len(bounds) + 1)
        self.errors = 0
        self.errors_by_type: Counter[str] = Counter()
        #: given the calls begun since the timed call that ended a period, the next
        #: period's length (None: the sampling above)
        self.pacer: Callable[[int], int] | None = None

    @property
    def started(self) -> int:
        """Calls begun (exact)."""
        return self.base + self.period - self.left

    def next_period(self) -> None:
        """The call that counted ``left`` down to zero was timed and is done: start the
        next period. Calls begun meanwhile (``left`` below zero) stay counted."""
        left = self.left
        self.base += self.period - left
        pacer = self.pacer
        if pacer is None:
            self.period = self.left = 1 if self.base < self.ALWAYS else self.EVERY
        else:
            self.period = self.left = pacer(-left)

    def arm(self) -> None:
        """Time the next call: the monitor arms a settled plugin's commands so that the
        call that wakes it takes the timed branch, the only one that marks the plugin
        for the monitor's next tick (``monitor.tracks``). The count stays exact; a
        canary's periods (a pacer) are left alone."""
        if self.pacer is None and self.left > 1:
            self.base += self.period - self.left
            self.period = self.left = 1

    def pace(self, pacer: Callable[[int], int] | None, first: int = 1) -> None:
        """Let ``pacer`` set the periods' lengths from now on (None: the sampling again);
        the period under way ends now, the next lasts ``first`` calls (unless a timed call
        is in flight: its end starts the next period)."""
        self.pacer = pacer
        if self.left > 0:
            self.base += self.period - self.left
            self.period = self.left = first if pacer is not None else 1

    def record(self, seconds: float | None, error: BaseException | str | None = None) -> None:
        """Count one observation (a plugin's histogram: every one timed), or a failed call."""
        self.base += 1
        if error is not None:
            self.errors += 1
            self._count_error(error)
        if seconds is not None:
            pending = self.pending
            pending.append(seconds)
            if len(pending) >= self.FOLD_AT:
                self.fold()

    def error(self, seconds: float | None, error: BaseException | str) -> None:
        """A call already counted in ``started`` failed (the call path's error branch),
        counted under ``error``'s label (``monitor.error_labels``)."""
        self.errors += 1
        self._count_error(error)
        if seconds is not None:
            self.pending.append(seconds)
            if len(self.pending) >= self.FOLD_AT:
                self.fold()

    def _count_error(self, error: BaseException | str) -> None:
        """One more failed call under ``error``'s label, a library's bounded per command
        (``monitor.library_errors``)."""
        by_type = self.errors_by_type
        by_type[counted_as(by_type, error_label(error), OTHER)] += 1

    def fold(self) -> None:
        """Move pending durations into the histogram (call from the writing thread only)."""
        pending, self.pending = self.pending, []
        if not pending:
            return
        buckets, bounds = self._buckets, self.bounds
        find = bisect.bisect_left
        for seconds in pending:
            buckets[find(bounds, seconds)] += 1
        self._timed += len(pending)
        self._total += sum(pending)
        self._max = max(self._max, max(pending))

    def add(self, other: CommandStats) -> None:
        """Add ``other``'s calls, errors and durations to these (a canary's figures, when it
        ends, join its plugin's); call from the writing thread only."""
        self.fold()
        other.fold()
        self.base += other.started
        self.errors += other.errors
        self.errors_by_type.update(other.errors_by_type)
        if other.bounds == self.bounds:
            self._buckets = [a + b for a, b in zip(self._buckets, other._buckets, strict=True)]
            self._timed += other._timed
            self._total += other._total
            self._max = max(self._max, other._max)

    # -- what readers see: folded + pending --------------------------------------------

    @property
    def calls(self) -> int:
        """Calls begun (exact)."""
        return self.started

    @property
    def timed(self) -> int:
        """Calls whose duration was measured (the histogram's count)."""
        return self._timed + len(self.pending)

    @property
    def total_time(self) -> float:
        """Sum of the measured durations."""
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
            buckets[find(self.bounds, seconds)] += 1
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
                return self.bounds[i] if i < len(self.bounds) else self.max_time
        return self.max_time

    def export(self) -> list[Any]:
        """Plain data (for a worker to send its plugin's histograms to the host)."""
        return [
            self.buckets, self.total_time, self.max_time, self.errors, self.started,
            list(self.bounds),
        ]  # fmt: skip

    @classmethod
    def load(cls, data: list[Any]) -> CommandStats:
        bounds = tuple(float(b) for b in data[5]) if len(data) > 5 else BUCKETS
        stats = cls(bounds)
        buckets, total, most, errors, started = data[:5]
        if len(buckets) == len(stats._buckets):
            stats._buckets = [int(n) for n in buckets]
        stats._timed = sum(stats._buckets)
        stats._total, stats._max, stats.errors = float(total), float(most), int(errors)
        stats.base, stats.period, stats.left = int(started), 1, 1
        return stats

    def to_dict(self) -> dict[str, Any]:
        calls, timed = self.calls, self.timed
        return {
            "calls": calls,
            "timed": timed,
            "errors": self.errors,
            "error_rate": self.errors / calls if calls else 0.0,
            "mean_seconds": self.total_time / timed if timed else None,
            "max_seconds": self.max_time,
            "p50_seconds": self.quantile(0.5),
            "p90_seconds": self.quantile(0.9),
            "p99_seconds": self.quantile(0.99),
            "errors_by_type": dict(self.errors_by_type),
        }


class PluginMetrics:
    """One plugin's metrics (the spec's ``MetricsCollector``), given as ``context.metrics``.

    A plugin's own counters, gauges and histograms are checked as they are made: a
    name used before for another kind is a :class:`MetricError`, so is a label the
    host sets itself. Three caps bound what a plugin makes its host keep: past
    :data:`MAX_SERIES` label sets of one name, :data:`MAX_NAMES` names, or
    ``max_total`` label sets in all (the plugin's ``[policy.bounds] metric-series``), a new
    series is dropped, counted (``dropped_series``, by name; a new name past the cap
    under :data:`OVER_NAMES`) and reported once per cap in the plugin's log.
    """

    __slots__ = (
        "_before",
        "_bounds",
        "_kinds",
        "_past",
        "_sender",
        "_series",
        "_told",
        "commands",
        "counters",
        "dirty",
        "dropped_series",
        "gauges",
        "init_seconds",
        "max_series",
        "max_total",
        "observations",
        "plugin_id",
        "started",
    )

    def __init__(
        self, plugin_id: str, *, max_series: int = MAX_SERIES, max_total: int = _TOTAL
    ) -> None:
        self.plugin_id = plugin_id
        self.commands: dict[str, CommandStats] = {}
        self.counters: dict[Key, float] = {}
        self.gauges: dict[Key, float] = {}
        self.observations: dict[Key, CommandStats] = {}
        self.init_seconds: float | None = None
        #: since when the version now serving serves: its uptime, which the manager starts
        #: again as a version starts serving (a load, a reload, a restart after a crash)
        self.started = time.time()
        self.max_series = max_series
        self.max_total = max_total
        self.dropped_series: Counter[str] = Counter()
        #: set by every write; a worker sends its figures to the host when it is
        self.dirty = False
        self._kinds: dict[str, tuple[str, str]] = {}
        self._bounds: dict[str, tuple[float, ...]] = {}
        self._series: Counter[str] = Counter()
        #: the caps already said in the plugin's log (each once)
        self._told: set[str] = set()
        #: the worker whose figures came last, and what the workers before it counted
        self._sender: weakref.ref[Any] | None = None
        self._past: weakref.WeakSet[Any] = weakref.WeakSet()
        self._before: _Before = ({}, {}, {}, Counter())

    def for_command(self, name: str) -> CommandStats:
        stats = self.commands.get(name)
        if stats is None:
            stats = self.commands[name] = CommandStats()
        return stats

    # -- MetricsCollector, for the plugin's own figures ---------------------------------

    def _key(
        self, kind: str, name: str, labels: dict[str, str], store: dict[Key, Any]
    ) -> Key | None:
        key = (name, tuple(sorted((k, str(v)) for k, v in labels.items())))
        if key in store:
            return key
        clean = metric_name(name)
        known = self._kinds.get(clean)
        if known is not None and known != (kind, name):
            raise MetricError(
                f"the {kind} '{name}' clashes with the {known[0]} '{known[1]}' "
                f"(both are exported as '{clean}')",
                plugin=self.plugin_id,
                hint=f"give the {kind} another name; one name is one kind of metric",
            )
        for label in labels:
            if label in _RESERVED_LABELS or not _LABEL.fullmatch(label):
                raise MetricError(
                    f"the {kind} '{name}' has the label '{label}', which "
                    + (
                        "the host sets itself"
                        if label in _RESERVED_LABELS
                        else "is not a valid name"
                    ),
                    plugin=self.plugin_id,
                    hint="use a label name of letters, digits and _ other than "
                    + ", ".join(sorted(_RESERVED_LABELS)),
                )
        refused = self._over_cap(kind, name, known is None)
        if refused is not None:
            self.dropped_series[refused] += 1
            return None
        if known is None:
            self._kinds[clean] = (kind, name)
        self._series[name] += 1
        return key

    def _over_cap(self, kind: str, name: str, new_name: bool) -> str | None:
        """The name a new series of ``name`` is counted as dropped under when it is over a
        cap (said once per cap in the plugin's log), or None when it is kept."""
        if new_name and len(self._kinds) >= MAX_NAMES:
            cap, dropped_as = "names", OVER_NAMES
            why = (
                f"the plugin already has {MAX_NAMES} metric names, the most one plugin may "
                "have; writes to a new name are dropped (a name made from data, such as a "
                "user id, makes a new metric each time: use one name and a label of few values)"
            )
        elif self._series[name] >= self.max_series:
            cap, dropped_as = f"series:{name}", name
            why = (
                f"'{name}' has reached {self.max_series} label sets, the most one metric may "
                "have; its new label values are dropped (a label with unbounded values, such "
                "as a user id, explodes the series)"
            )
        elif sum(self._series.values()) >= self.max_total:
            cap, dropped_as = "total", name
            why = (
                f"the plugin's metrics already have {self.max_total} label sets in all, the "
                "most it may have ([policy.bounds] metric-series in the host's config); new "
                "label sets of any metric are dropped"
            )
        else:
            return None
        if cap not in self._told:
            self._told.add(cap)
            logging.getLogger(f"plugbay.plugin.{self.plugin_id}").warning(
                "plugin '%s': a new series of the %s '%s' was refused: %s; what is dropped "
                "is counted in plugbay_plugin_metric_series_dropped_total{metric=\"%s\"}",
                self.plugin_id, kind, name, why, dropped_as,
            )  # fmt: skip
        return dropped_as

    def increment(self, name: str, value: float = 1.0, **labels: str) -> None:
        key = self._key("counter", name, labels, self.counters)
        if key is not None:
            self.counters[key] = self.counters.get(key, 0.0) + value
            self.dirty = True

    def gauge(self, name: str, value: float, **labels: str) -> None:
        key = self._key("gauge", name, labels, self.gauges)
        if key is not None:
            self.gauges[key] = value
            self.dirty = True

    def histogram(self, name: str, buckets: Sequence[float]) -> None:
        """Give the histogram ``name`` its own bucket upper bounds (before observing it;
        without this it gets the host's latency buckets, 10 µs … 60 s)."""
        bounds = tuple(float(b) for b in buckets)
        if (
            not bounds
            or len(bounds) > MAX_BUCKETS
            or any(not math.isfinite(b) for b in bounds)
            or any(a >= b for a, b in itertools.pairwise(bounds))
        ):
            raise MetricError(
                f"the histogram '{name}' needs 1 to {MAX_BUCKETS} finite, increasing bucket "
                f"bounds, not {list(buckets)!r:.200}",
                plugin=self.plugin_id,
                hint="e.g. buckets=[1, 5, 10, 50, 100] (the +Inf bucket is added by itself)",
            )
        if name not in self._bounds and len(self._bounds) >= MAX_NAMES:
            raise MetricError(
                f"the histogram '{name}' cannot be declared: the plugin declared "
                f"{MAX_NAMES} histograms already, the most one plugin may",
                plugin=self.plugin_id,
                hint="declare a fixed set of histograms and tell them apart with a label",
            )
        if any(n == name and s.bounds != bounds for (n, _), s in self.observations.items()):
            raise MetricError(
                f"the histogram '{name}' was already observed with other buckets",
                plugin=self.plugin_id,
                hint="declare its buckets once, before the first observe()",
            )
        self._bounds[name] = bounds

    def observe(self, name: str, value: float, **labels: str) -> None:
        key = self._key("histogram", name, labels, self.observations)
        if key is None:
            return
        stats = self.observations.get(key)
        if stats is None:
            stats = self.observations[key] = CommandStats(self._bounds.get(name, BUCKETS))
        stats.record(value)
        self.dirty = True

    # -- a worker's figures, carried to the host -----------------------------------------

    def export_custom(self) -> dict[str, Any]:
        """The plugin's own figures as plain data (what a worker sends to the host)."""
        self.dirty = False
        return {
            "counters": [[n, dict(lb), v] for (n, lb), v in self.counters.items()],
            "gauges": [[n, dict(lb), v] for (n, lb), v in self.gauges.items()],
            "observations": [[n, dict(lb), s.export()] for (n, lb), s in self.observations.items()],
            "dropped": dict(self.dropped_series),
        }

    def _heard(self, sender: object) -> bool:
        """Whether figures from ``sender`` are taken; a new one's count on from what the
        last one counted, and a worker whose turn has passed is not heard again."""
        if self._sender is not None and self._sender() is sender:
            return True
        if sender in self._past:
            return False
        if self._sender is not None:
            last = self._sender()
            if last is not None:
                self._past.add(last)
            self._before = (dict(self.counters), dict(self.gauges), dict(self.observations),
                            Counter(self.dropped_series))  # fmt: skip
        self._sender = weakref.ref(sender)
        return True

    def import_custom(
        self, data: dict[str, Any], budget: Budget | None = None, sender: object = None
    ) -> None:
        """Take a worker's figures (they replace what it sent before), at most the budget's
        series; a malformed or surplus series is dropped and counted, never kept.

        ``sender``: the worker's handle. A worker counts from zero, so when figures come from
        another one (a reload, a restart after a crash) what the workers before it counted
        stays counted: its counters and histograms go on from there and never go back, and
        a gauge keeps the last value a worker before it set until it sets one itself. A
        worker whose turn has passed (one draining after a reload) is not heard again."""
        if sender is not None and not self._heard(sender):
            return
        room = budget.bounds.metric_series if budget is not None else _TOTAL
        cap = room
        lost = 0

        def key(name: Any, labels: Any) -> Key:
            if not isinstance(labels, dict) or len(labels) > 16:
                raise ValueError("labels")
            return (
                str(name)[:200],
                tuple(sorted((str(k)[:100], str(v)[:200]) for k, v in labels.items())),
            )

        def take(kind: str, load: Callable[[Any], Any]) -> dict[Key, Any]:
            nonlocal room, lost
            out: dict[Key, Any] = {}
            rows = data.get(kind, []) if isinstance(data, dict) else []
            for row in rows if isinstance(rows, list) else []:
                if room <= 0:
                    lost += 1
                    continue
                try:
                    name, labels, value = row
                    out[key(name, labels)] = load(value)
                    room -= 1
                except (TypeError, ValueError, KeyError, AttributeError, OverflowError):
                    lost += 1
            return out

        counters, gauges, observations, dropped_before = self._before
        self.counters = _on_from(take("counters", float), counters, cap, lambda a, b: a + b)
        self.gauges = _on_from(take("gauges", float), gauges, cap, lambda now, _before: now)
        self.observations = _on_from(
            take("observations", CommandStats.load), observations, cap, _added
        )
        dropped = data.get("dropped", {}) if isinstance(data, dict) else {}
        self.dropped_series = dropped_before + Counter(
            # a count that is not a whole number is the worker's mistake: left out
            {str(k)[:200]: v for k, v in list(dropped.items())[:100] if type(v) is int}
            if isinstance(dropped, dict)
            else {}
        )
        if lost and budget is not None:
            budget.drop("metric_series", lost)
        # the records the worker's own rate limit dropped since it last sent its figures:
        # counted where the host counts the records it drops itself (a worker claiming more
        # only raises its own plugin's count)
        logs_lost = data.get("logs_dropped") if isinstance(data, dict) else None
        if type(logs_lost) is int and logs_lost > 0 and budget is not None:
            budget.drop("log_rate", min(logs_lost, 1 << 48))

    def snapshot(self) -> dict[str, Any]:
        def render(key: Key) -> str:
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
            "dropped_series": dict(self.dropped_series),
        }


def _added(now: CommandStats, before: CommandStats) -> CommandStats:
    """A new worker's histogram going on from an earlier worker's (``now`` is its own)."""
    now.add(before)
    return now


def _on_from(
    now: dict[Key, Any], before: dict[Key, Any], cap: int, plus: Callable[[Any, Any], Any]
) -> dict[Key, Any]:
    """A worker's series going on from what earlier workers counted (``plus``); a series
    only those counted stays, within ``cap`` series."""
    if not before:
        return now
    out = {key: plus(value, before[key]) if key in before else value for key, value in now.items()}
    for key, value in before.items():
        if key not in out and len(out) < cap:
            out[key] = value
    return out
