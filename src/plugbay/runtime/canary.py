"""A canary: a share of a plugin's live calls goes to a new version, which is promoted
or rolled back on its figures, with no person in the loop.

``plugbay upgrade ID --canary 10%``:

1. the new version (installed in the store) starts beside the serving one, with the
   same data directory: it answers live calls, so its effects are real;
2. the share asked goes to it: a running sum, not a coin (10% is exactly one call in
   ten). Nothing is decided on the serving version's calls, and its route stays as it
   was: the call path already counts each command's calls down to the next one it
   times (``CommandStats``, the monitor's sampling); during the canary those periods
   are the canary's (:meth:`Canary.pace`): it takes its calls in runs of :data:`RUN`
   (10%: 4 calls in 40), and the end of each stretch of the serving version's calls,
   the timed call done, puts the canary's own route in the routing table for the
   next run; the run's last call (:meth:`Canary.take`) puts the serving route back.
   Calls begun while the timed one runs are carried over to the next stretch, so the
   share stays exact over the window;
3. the canary's route has a command table of its own, so the call path counts and times
   the canary's calls into the canary's own ``CommandStats`` exactly as the monitor
   does the plugin's (no timer of the canary's own), and the plugin's figures over the
   window are the serving version's alone, one call in each period timed; when the
   canary ends, its figures join the plugin's;
4. the thresholds are checked after each error on the canary (at once; one that came
   before ``min_calls`` calls, again at the end of each run until there are enough),
   every :data:`JUDGE_SECONDS` and when the window ends, once the canary answered
   ``min_calls`` calls: its error rate may exceed the serving version's by at most
   ``max_error_increase``, its mean latency may be at most ``max_latency_ratio`` times
   the serving version's. The first breach rolls back: from the next call on, every
   call goes to the serving version; calls already on the canary finish there (none
   is lost, none is retried twice);
5. when the window ends (``window_calls`` calls to the plugin, checked at each of the
   canary's calls, or ``window_seconds``) without a breach, the canary is promoted by
   a normal upgrade: the serving version's state is handed over as in any swap, and
   the canary's instance retires. A window that ends before the canary answered
   ``min_calls`` calls rolls back: too little to judge.

Either way the decision is written to the plugin's history (action ``canary``,
result ``promoted`` or ``rolled-back``) with the figures that decided it, emitted
as an event (``canary.promoted``, ``canary.rolled_back``), and a rollback raises
the alert ``canary-rollback``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import itertools
import logging
import math
import re
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Final

from plugbay.api import CommandSpec
from plugbay.api.errors import CommandNotFound, PlugbayError
from plugbay.isolation import PluginHandle
from plugbay.model.manifest import PluginManifest
from plugbay.monitor import CommandStats
from plugbay.runtime.beside import dispose, start_beside
from plugbay.runtime.routing import Route
from plugbay.runtime.tap import PluginTaps, Turn, heard_by, turning, untapped

if TYPE_CHECKING:
    from plugbay.runtime.trials import UpgradeTrials

__all__ = ["Canary", "CanarySettings", "parse_share", "parse_window"]

log = logging.getLogger("plugbay.upgrades")

#: a canary is judged this often, in seconds (an error at once, and at the window's end)
JUDGE_SECONDS: Final = 0.25
#: the mean latencies are compared once both versions have this many timed calls (the
#: call path times a share of the calls that overlap; a mean of a few is noise)
LATENCY_SAMPLES: Final = 10
#: a share is a fraction whose denominator is at most this (so one cycle of the turns
#: holds at most this many calls; 0.01% is the smallest share)
_SHARE_PRECISION: Final = 10_000


@dataclass(frozen=True, slots=True)
class CanarySettings:
    """What a canary watches, and for how long."""

    #: the share of live calls sent to the canary (0 < share <= 1)
    share: float = 0.1
    #: the window: calls to the plugin (either version), or seconds; the first reached ends it
    window_calls: int | None = 200
    window_seconds: float | None = None
    #: the canary must have answered this many calls before it is judged
    min_calls: int = 5
    #: breach: canary error rate - serving error rate > this
    max_error_increase: float = 0.05
    #: breach: canary mean latency > this x the serving version's
    max_latency_ratio: float = 2.0

    def check(self, plugin_id: str) -> None:
        problems = []
        if not 0 < self.share <= 1:
            problems.append(f"the share must be above 0% and at most 100% (not {self.share:.0%})")
        elif self.share < 1 / _SHARE_PRECISION:
            problems.append(f"the share must be at least 0.01% (not {self.share:.4%})")
        if self.window_calls is None and self.window_seconds is None:
            problems.append("give a window: a number of calls, or seconds (e.g. 200 or 60s)")
        if self.window_calls is not None and self.window_calls < 1:
            problems.append("the window must hold at least one call")
        if self.window_seconds is not None and self.window_seconds <= 0:
            problems.append("the window must last more than 0 seconds")
        if self.min_calls < 1:
            problems.append("min-calls must be 1 or more")
        if self.max_latency_ratio <= 0 or self.max_error_increase < 0:
            problems.append("the thresholds must be positive")
        if problems:
            raise PlugbayError(
                "cannot start a canary: " + "; ".join(problems),
                plugin=plugin_id,
                hint="e.g. 'plugbay upgrade ID --canary 10% --window 200'",
            )


def parse_share(text: str) -> float:
    """``10%`` or ``0.1`` → 0.1 (a PlugbayError for anything else)."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise PlugbayError(
            f"'{text}' is not a share of calls", hint="write it as a percentage: --canary 10%"
        ) from None
    if not 0 < value <= 1:
        raise PlugbayError(
            f"a canary share must be above 0% and at most 100% (got {text})",
            hint="e.g. --canary 10%",
        )
    return value


_DURATION: Final = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h)$")


def parse_window(text: str) -> tuple[int | None, float | None]:
    """``200`` (calls) or ``60s``/``5m``/``1h`` (time) → (calls, seconds)."""
    raw = text.strip().lower()
    if raw.isdigit():
        return int(raw), None
    match = _DURATION.match(raw)
    if match is None:
        raise PlugbayError(
            f"'{text}' is not a window",
            hint="a number of calls (--window 200) or a time (--window 60s, 5m, 1h)",
        )
    return None, float(match[1]) * {"s": 1, "m": 60, "h": 3600}[match[2]]


#: the canary takes its calls in runs of this many (one stretch of the serving version's
#: calls, timed once, per run: less work on the call path than a turn every n calls)
RUN: Final = 4
#: a window of time: the canary's runs left, renewed when they run out (a small int:
#: the call path counts it down); a share of 100%: the runs owed
_NO_END: Final = 1 << 29


def _runs_in(lengths: list[int], window: int | None) -> int:
    """How many of the canary's runs a window of ``window`` calls holds (the window ends
    with the run that reaches it); no window: more than any host will see."""
    if window is None:
        return _NO_END
    full, rest = divmod(window, sum(lengths))
    turns = full * len(lengths)
    if rest:
        turns += next(i for i, n in enumerate(itertools.accumulate(lengths), 1) if n >= rest)
    return max(-(-turns // RUN), 1)


def _stretches(lengths: list[int]) -> list[int]:
    """The serving version's calls between two of the canary's runs, one cycle of them."""
    turns = len(lengths) * RUN // math.gcd(len(lengths), RUN)
    cycle = list(itertools.islice(itertools.cycle(lengths), turns))
    return [sum(cycle[i : i + RUN]) - RUN for i in range(0, turns, RUN)]


def periods(share: float) -> list[int]:
    """The length in calls of each of the canary's periods, one cycle of them; the last
    call of each is the canary's. A running sum of the share: 10% is exactly one call in
    ten, 30% the calls 4, 7, 10, then 14, 17, 20, ... (the share is taken to the nearest
    fraction whose denominator is at most :data:`_SHARE_PRECISION`)."""
    frac = Fraction(share).limit_denominator(_SHARE_PRECISION)
    p, q = frac.numerator, frac.denominator
    # the canary's k-th call (from 1) is the plugin's call ceil(k q / p)
    return [-(-(k + 1) * q // p) + (-k * q // p) for k in range(p)]


class _Errors(collections.Counter[str]):
    """A canary's errors by type (its commands' ``CommandStats.errors_by_type``): each one
    the call path counts makes the canary judge itself at once. (The stats stay the
    monitor's own class, so the call path reads them as fast as any command's.)"""

    def __init__(self, canary: Canary) -> None:
        super().__init__()
        self.canary = canary

    def __setitem__(self, error: str, count: int) -> None:
        super().__setitem__(error, count)
        self.canary.judge(erred=True)


def _running(
    serving: CommandSpec, own: CommandSpec | None, plugin_id: str, version: str
) -> CommandSpec:
    """What the canary's route calls a command by: checked as the serving version checks it
    (the callers' contract: the call path validates parameters and result with it), run
    as the canary runs it (its function, or a CommandNotFound when it has none)."""
    spec = copy.copy(serving)
    if own is None:
        name = serving.name

        def lacking(*args: Any, **kwargs: Any) -> Any:
            raise CommandNotFound(f"{version} has no command '{name}'", plugin=plugin_id)

        spec.func, spec.is_async, spec.blocking = lacking, False, False
    else:
        spec.func, spec.is_async, spec.blocking = own.func, own.is_async, own.blocking
        spec.owner, spec.timeout = own.owner, own.timeout
    return spec


class Canary:
    """One plugin's canary (a ``runtime.tap.CanaryArm``)."""

    def __init__(
        self,
        trials: UpgradeTrials,
        plugin_id: str,
        target: PluginManifest,
        settings: CanarySettings,
    ) -> None:
        self.trials = trials
        self.plugin_id = plugin_id
        self.target = target
        self.settings = settings
        self.handle: PluginHandle | None = None
        self.state = "starting"
        self.reason: str | None = None
        self.decided = asyncio.get_running_loop().create_future()
        self.started = time.time()
        self._t0 = time.monotonic()
        #: the canary's figures by command (the call path writes them: see the module doc)
        self._stats: dict[str, CommandStats] = {}
        #: the plugin's figures by command when the canary started (``CommandStats.export``)
        self._base: dict[str, list[Any]] = {}
        #: the canary's own spec of each command it shares with the serving version
        self._own: dict[str, CommandSpec] = {}
        #: the lengths of the canary's periods in calls, one cycle of them, and the
        #: serving version's stretches between the canary's runs (a cycle too)
        self._periods = periods(settings.share)
        self._stretches = _stretches(self._periods)
        #: the canary's runs still to come in its window of calls (a window of time: no end)
        self._left = _runs_in(self._periods, settings.window_calls)
        #: the canary's runs owed: its route serves until they are taken
        self._owed = 0
        #: the plugin's command stats whose periods the canary sets (see :meth:`pace`)
        self._paced: list[CommandStats] = []
        # set by attach(): the routing table, the serving route and the canary's, and how
        # the canary is called
        self._routes: dict[str, Route] = {}
        self._serving: Route
        self._turn: Route
        self._on_canary: Turn
        self._from = ""
        self._timer: asyncio.Task[None] | None = None
        self._finish: asyncio.Task[None] | None = None
        #: the canary's timed calls and their total time at the end of its first run
        self._warm: tuple[int, float] | None = None
        #: the figures the decision was taken on
        self.deciding: dict[str, Any] | None = None
        #: an error came before ``min_calls`` calls: judged again at the end of each run
        self._unjudged = False
        self._version = str(target.version)

    # ------------------------------------------------------------------ start

    async def start(self) -> None:
        manager = self.trials.host.manager
        rec = manager.record(self.plugin_id)
        if rec.manifest is None or rec.state != "active":
            raise manager.not_active(rec)
        if not manager.settings.monitoring or rec.metrics is None:
            raise PlugbayError(
                "cannot start a canary: monitoring is off on this host, and a canary is "
                "judged on the monitor's figures",
                plugin=self.plugin_id,
                hint="start the host with monitoring on",
            )
        self._from = str(rec.manifest.version)
        data_dir = manager.settings.data_root / self.plugin_id  # live calls, live data
        self.handle = await start_beside(manager, self.target, data_dir)
        self._own = dict(self.handle.commands)
        self._base = {name: s.export() for name, s in rec.metrics.commands.items()}
        self._t0 = time.monotonic()
        self.state = "running"
        taps = manager.taps.of(self.plugin_id)
        taps.canary = self
        self.trials.retap(self.plugin_id)
        for stats in rec.metrics.commands.values():
            stats.pace(self.pace(), first=self.first_stretch())
            self._paced.append(stats)
        self._timer = asyncio.get_running_loop().create_task(self._watch())
        # its start too: after a restart, a canary with no end after it did not record one
        to = str(self.target.version)
        manager.record_history(rec, "canary", "started", None, {"from": self._from, "to": to})
        manager.events.emit(
            "canary.started", plugin=self.plugin_id, version=str(self.target.version),
            share=self.settings.share,
        )  # fmt: skip

    # ------------------------------------------------------------------ the turns

    def attach(self, route: Route, routes: dict[str, Route], taps: PluginTaps) -> None:
        """``route`` serves the plugin from now on (a start, a retap, a swap): the canary's
        own route goes beside it, with the canary's table, whose calls run on the canary;
        the last of each run is :meth:`take`. (A run under way starts again.)"""
        handle = self.handle
        assert handle is not None  # started before it is attached
        version = str(self.target.version)
        table = {
            name: (
                _running(spec, self._own.get(name), self.plugin_id, version),
                self._stats_of(name),
            )
            for name, (spec, _) in route.table.items()
        }
        on_canary = handle.call
        plain = untapped(route)
        own = turning(plain.handle, plain, itertools.cycle([on_canary] * (RUN - 1) + [self.take]))
        # the recorder hears the canary's calls as the canary's version's (runtime.tap)
        heard = heard_by(taps.listeners, self._version)
        self._turn = Route(own, route.metrics, route.timeout, route.inflight, table, heard)
        self._routes, self._serving, self._on_canary = routes, route, on_canary

    def pace(self) -> Callable[[int], int]:
        """One command's pacer (``CommandStats.pacer``): called when the call ending a
        stretch of the serving version's calls is done, it puts the canary's route in the
        table (a run of the canary's is next) and returns the next stretch's length. Calls
        begun meanwhile (``overshoot``) count against the next stretches."""
        stretches = itertools.cycle(self._stretches)
        next(stretches)  # the first: see first_stretch()
        plugin_id = self.plugin_id
        if self._stretches == [0]:  # 100%: every call is the canary's

            def every(overshoot: int) -> int:
                self._owed = _NO_END
                self._arm()
                return 1

            return every

        def pace(overshoot: int) -> int:
            self._owed += 1
            routes = self._routes  # _arm(), inlined: once a stretch, on the call path
            if routes.get(plugin_id) is self._serving:
                routes[plugin_id] = self._turn
            stretch = next(stretches) - overshoot
            while stretch < 1:  # that stretch is served already (or empty): its run is owed
                self._owed += 1
                stretch += next(stretches)
            return stretch

        return pace

    def first_stretch(self) -> int:
        """The serving version's calls before the canary's first run."""
        return max(self._stretches[0], 1)

    def _arm(self) -> None:
        """The canary's run is next: its route goes in the table, unless the serving route
        is not there now (a swap holds the calls: the run waits, owed)."""
        routes = self._routes
        if routes.get(self.plugin_id) is self._serving:
            routes[self.plugin_id] = self._turn

    def take(
        self, spec: CommandSpec, params: dict[str, Any], timeout: float
    ) -> Coroutine[Any, Any, Any]:
        """The last call of the canary's run (the coroutine to await): it puts the serving
        route back unless another run is owed, and ends a window of calls."""
        owed = self._owed - 1
        if owed <= 0:
            owed = 0
            self._routes[self.plugin_id] = self._serving
        self._owed = owed
        left = self._left - 1
        self._left = left
        if not left:
            self._window_ends()  # the window's last call: it stays the canary's
        if self._warm is None:
            self._warmed()
        if self._unjudged:
            self.judge()
        return self._on_canary(spec, params, timeout)

    def _stats_of(self, command: str) -> CommandStats:
        stats = self._stats.get(command)
        if stats is None:
            stats = self._stats[command] = CommandStats()
            stats.errors_by_type = _Errors(self)
        return stats

    def _window_ends(self) -> None:
        if self.settings.window_calls is None:  # a window of time: its turns never run out
            self._left = _NO_END
        else:
            self._decide(None)

    # ------------------------------------------------------------------ judging

    @property
    def new(self) -> CommandStats:
        """The canary's figures, all its commands together."""
        total = CommandStats()
        for stats in list(self._stats.values()):
            total.add(stats)
        return total

    @property
    def old(self) -> CommandStats:
        """The serving version's figures since the canary started (the monitor's)."""
        total = CommandStats()
        rec = self.trials.host.manager.records_by_id.get(self.plugin_id)
        if rec is None or rec.metrics is None:
            return total
        for name, stats in list(rec.metrics.commands.items()):
            now, then = stats.export(), self._base.get(name)
            if then is not None and len(then[0]) == len(now[0]) and then[5] == now[5]:
                now = [
                    [a - b for a, b in zip(now[0], then[0], strict=True)],
                    now[1] - then[1], now[2], now[3] - then[3], now[4] - then[4], now[5],
                ]  # fmt: skip
            total.add(CommandStats.load(now))
        return total

    def figures(self) -> dict[str, Any]:
        """Both versions' calls, errors, error rates and mean latencies over the window."""

        def side(stats: CommandStats) -> dict[str, Any]:
            n, e, timed = stats.calls, stats.errors, stats.timed
            return {
                "calls": n,
                "errors": e,
                "error_rate": e / n if n else 0.0,
                "mean_seconds": stats.total_time / timed if timed else None,
                "p90_seconds": stats.quantile(0.9),
                "timed": timed,
            }

        old, new = side(self.old), side(self.new)
        if self._warm is not None:  # the canary's latency leaves out its first run
            timed, total = new["timed"] - self._warm[0], self._stats_total() - self._warm[1]
            new["timed"], new["mean_seconds"] = timed, total / timed if timed > 0 else None
        return {
            "old": {"version": self._from, **old},
            "new": {"version": str(self.target.version), **new},
            "share": self.settings.share,
            "window_calls": old["calls"] + new["calls"],
            "seconds": round(time.monotonic() - self._t0, 3),
        }

    def _stats_total(self) -> float:
        return sum(stats.total_time for stats in list(self._stats.values()))

    def _warmed(self) -> None:
        """The canary's first run is over: its worker is warm (a fresh one's first calls
        pay for imports and caches), so its latency is judged on what follows."""
        self._warm = (sum(s.timed for s in list(self._stats.values())), self._stats_total())

    def breach(self, figures: dict[str, Any]) -> str | None:
        """The first threshold the canary breaches, said with its figures; or None."""
        s = self.settings
        old, new = figures["old"], figures["new"]
        if new["calls"] < s.min_calls:
            return None
        increase = new["error_rate"] - old["error_rate"]
        if increase > s.max_error_increase:
            return (
                f"error rate {new['error_rate']:.1%} on {new['version']} "
                f"({new['errors']} of {new['calls']} calls) against {old['error_rate']:.1%} on "
                f"{old['version']} ({old['errors']} of {old['calls']}): above the allowed "
                f"+{s.max_error_increase:.1%}"
            )
        # both means over LATENCY_SAMPLES timed calls at least: a mean of a few is noise
        timed = min(new["timed"], old["timed"])
        if new["mean_seconds"] and old["mean_seconds"] and timed >= LATENCY_SAMPLES:
            ratio = new["mean_seconds"] / old["mean_seconds"]
            if ratio > s.max_latency_ratio:
                return (
                    f"mean latency {new['mean_seconds'] * 1000:.2f} ms on {new['version']} "
                    f"against {old['mean_seconds'] * 1000:.2f} ms on {old['version']}: "
                    f"{ratio:.1f}x, above the allowed {s.max_latency_ratio:g}x"
                )
        return None

    def judge(self, *, erred: bool = False) -> None:
        """Roll back now if the canary breaches a threshold (after an error on it, every
        :data:`JUDGE_SECONDS`; the window's end judges too). An error on one of the first
        ``min_calls`` calls is judged again at the end of each run until there are enough."""
        if self.state != "running":
            return
        figures = self.figures()
        self._unjudged = (erred or self._unjudged) and (
            figures["new"]["calls"] < self.settings.min_calls
        )
        reason = self.breach(figures)
        if reason is not None:
            self._decide(reason, figures)

    async def _watch(self) -> None:
        """Judge the canary every :data:`JUDGE_SECONDS` (off the call path), and end a
        window of time."""
        seconds = self.settings.window_seconds
        end = None if seconds is None else self._t0 + seconds
        while self.state == "running":
            wait = JUDGE_SECONDS if end is None else max(end - time.monotonic(), 0.0)
            await asyncio.sleep(min(wait, JUDGE_SECONDS))
            self.judge()
            if end is not None and time.monotonic() >= end:
                self._decide(None)
                return

    def _decide(self, breach: str | None, figures: dict[str, Any] | None = None) -> None:
        """From the next call on, every call goes to the serving version; the rest (drain,
        promote or retire, history, alert) follows in a task of its own."""
        if self.state != "running":
            return
        figures = figures or self.figures()
        if breach is None:  # the window's end: judged one last time
            breach = self.breach(figures)
        if breach is None and figures["new"]["calls"] < self.settings.min_calls:
            breach = (
                f"the window ended after {figures['new']['calls']} call(s) on the canary, "
                f"fewer than the {self.settings.min_calls} needed to judge it"
            )
        self.state = "promoting" if breach is None else "rolling-back"
        self.reason = breach
        self.deciding = figures
        for stats in self._paced:
            stats.pace(None)
        taps = self.trials.host.manager.taps.of(self.plugin_id)
        if taps.canary is self:
            taps.canary = None
        self.trials.retap(self.plugin_id)  # the serving route alone, from the next call on
        self._finish = asyncio.get_running_loop().create_task(self._conclude(figures))

    async def _conclude(self, figures: dict[str, Any]) -> None:
        upgrades = self.trials
        try:
            await self._retire()
            self._join()
            if self.state == "promoting":
                await self._promote(figures)
            else:
                self._rolled_back(figures)
        except Exception as exc:  # a failed promotion: the serving version stays
            self.state = "rolled-back"
            self.reason = f"the promotion failed: {exc}"
            log.error("canary of %s: %s", self.plugin_id, self.reason)
            self._write("rolled-back", figures)
        finally:
            upgrades.canaries.pop(self.plugin_id, None)
            if self._timer is not None and self._timer is not asyncio.current_task():
                self._timer.cancel()
            if not self.decided.done():
                self.decided.set_result(self.summary())

    async def _retire(self) -> None:
        """Let the canary's calls in flight finish there, then stop its instance. (Every
        backend's ``running()`` holds a call from before its first suspension to its end,
        and no call reaches the canary once the serving route is back.)"""
        handle = self.handle
        if handle is None:
            return
        end = time.monotonic() + self.trials.host.manager.settings.call_timeout
        while handle.running() and time.monotonic() < end:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        await dispose(handle, self.trials.host.manager.settings.cleanup_timeout)

    def _join(self) -> None:
        """The canary's figures join the plugin's: every call stays counted."""
        rec = self.trials.host.manager.records_by_id.get(self.plugin_id)
        if rec is None or rec.metrics is None:
            return
        for name, stats in self._stats.items():
            rec.metrics.for_command(name).add(stats)

    async def _promote(self, figures: dict[str, Any]) -> None:
        manager = self.trials.host.manager
        await manager.upgrade_plugin(self.plugin_id, str(self.target.version))
        self.state = "promoted"
        self._write("promoted", figures)
        alerts = self.trials.alerts()
        if alerts is not None:
            alerts.clear_rule(self.plugin_id, "canary-rollback")
        manager.events.emit(
            "canary.promoted", plugin=self.plugin_id, version=str(self.target.version),
            figures=figures,
        )  # fmt: skip

    def _rolled_back(self, figures: dict[str, Any]) -> None:
        manager = self.trials.host.manager
        self.state = "rolled-back"
        self._write("rolled-back", figures)
        message = (
            f"canary {self.target.version} rolled back; {self._from} keeps serving: {self.reason}"
        )
        alerts = self.trials.alerts()
        if alerts is not None:
            from plugbay.monitor.alerts import Condition

            alerts.raise_event(
                self.plugin_id,
                self._from,
                Condition("canary-rollback", message, {"figures": figures}),
            )
        manager.events.emit(
            "canary.rolled_back", plugin=self.plugin_id, version=str(self.target.version),
            reason=self.reason, figures=figures,
        )  # fmt: skip
        log.warning("plugin '%s': %s", self.plugin_id, message)

    def _write(self, result: str, figures: dict[str, Any]) -> None:
        manager = self.trials.host.manager
        with contextlib.suppress(PlugbayError):
            rec = manager.record(self.plugin_id)
            manager.record_history(
                rec,
                "canary",
                result,
                self.reason,
                # the settings too: 'plugbay canary ID' rebuilds the summary after a restart
                {
                    "from": self._from,
                    "to": str(self.target.version),
                    **figures,
                    "settings": self._settings(),
                },
            )

    async def abort(self, why: str) -> None:
        """End the canary now: the serving version keeps serving (the host stops)."""
        if self.state == "running":
            self._decide(why)
        if self._finish is not None:
            await asyncio.shield(self._finish)

    def _settings(self) -> dict[str, Any]:
        s = self.settings
        return {
            "share": s.share,
            "window_calls": s.window_calls,
            "window_seconds": s.window_seconds,
            "min_calls": s.min_calls,
            "max_error_increase": s.max_error_increase,
            "max_latency_ratio": s.max_latency_ratio,
        }

    def summary(self) -> dict[str, Any]:
        return {
            "plugin": self.plugin_id,
            "from": self._from,
            "to": str(self.target.version),
            "state": self.state,
            "reason": self.reason,
            "settings": self._settings(),
            "figures": self.deciding if self.deciding is not None else self.figures(),
        }
