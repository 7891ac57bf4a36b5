"""A canary: a share of a plugin's live calls goes to a new version, which is promoted
or rolled back on its figures, with no person in the loop.

``plugbay upgrade ID --canary 10%``:

1. the new version (installed in the store) starts beside the serving one, with the
   same data directory: it answers live calls, so its effects are real;
2. the plugin's tap (``runtime.tap``) sends every n-th call to it, for the share
   asked (a running sum, not a coin: 10% is exactly one call in ten; the tap only
   counts down to the next one, so a call the canary does not take costs a
   subtraction);
3. each call on the canary is counted and timed in a ``CommandStats`` of its own;
   the serving version's figures over the same window are the plugin's own (the
   monitor's ``CommandStats``, calls and errors) less the canary's, and one in
   :data:`OLD_TIMED_PERIODS` of the canary's periods one of its calls is timed the same way;
4. after each error on the canary, and every :data:`JUDGE_EVERY` answers, once it
   has answered ``min_calls`` calls, the thresholds are checked: its error rate may exceed the serving version's by at
   most ``max_error_increase``, its mean latency may be at most
   ``max_latency_ratio`` times the serving version's. The first breach rolls back:
   from the next call on, every call goes to the serving version; calls already on
   the canary finish there (none is lost, none is retried twice);
5. when the window ends (``window_calls`` calls to the plugin, checked at each of the
   canary's calls, or ``window_seconds``)
   without a breach, the canary is promoted by a normal upgrade: the serving
   version's state is handed over as in any swap, and the canary's instance retires.
   A window that ends before the canary answered ``min_calls`` calls rolls back:
   too little to judge.

Either way the decision is written to the plugin's history (action ``canary``,
result ``promoted`` or ``rolled-back``) with the figures that decided it, emitted
as an event (``canary.promoted``, ``canary.rolled_back``), and a rollback raises
the alert ``canary-rollback``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from plugbay.api import CommandSpec
from plugbay.api.errors import CommandNotFound, PlugbayError, PluginStateError
from plugbay.isolation import PluginHandle
from plugbay.model.manifest import PluginManifest
from plugbay.monitor import CommandStats
from plugbay.runtime.beside import dispose, start_beside
from plugbay.runtime.recorder import error_of

if TYPE_CHECKING:
    from plugbay.runtime.trials import UpgradeTrials

__all__ = ["Canary", "CanarySettings", "parse_share", "parse_window"]

log = logging.getLogger("plugbay.upgrades")

#: one call of the serving version is timed every this many of the canary's periods
#: (with a 10% canary: one in 40 calls)
OLD_TIMED_PERIODS: Final = 4
#: a canary's latency is judged every this many of its answers (an error at once)
JUDGE_EVERY: Final = 16
_clock: Final = time.perf_counter
_FOLD_AT: Final = CommandStats.FOLD_AT


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
        self.new = CommandStats()
        self.old = CommandStats()
        self.state = "starting"
        self.reason: str | None = None
        self.decided = asyncio.get_running_loop().create_future()
        self.started = time.time()
        self._t0 = time.monotonic()
        self._acc = 0.0
        #: calls to the plugin in the periods done; the current one's are gap - countdown
        self._n = 0
        self._periods = 0
        #: the tap counts this down for each call; at zero the call is the canary's
        self._gap = self.countdown = self._next_gap()
        #: the serving version's call at this countdown is timed (0: none this period)
        self.timed_at = 0
        self._inflight = 0
        self._answered = 0
        self._base: tuple[int, int] = (0, 0)
        self._from = ""
        self._timer: asyncio.Task[None] | None = None
        self._finish: asyncio.Task[None] | None = None
        #: the figures the decision was taken on
        self.deciding: dict[str, Any] | None = None
        self._listeners: list[Any] = []
        self._version = str(target.version)

    # ------------------------------------------------------------------ start

    async def start(self) -> None:
        manager = self.trials.host.manager
        rec = manager.record(self.plugin_id)
        if rec.manifest is None or rec.state != "active":
            raise manager.not_active(rec)
        self._from = str(rec.manifest.version)
        data_dir = manager.settings.data_root / self.plugin_id  # live calls, live data
        self.handle = await start_beside(manager, self.target, data_dir)
        self._base = self._plugin_figures()
        self._t0 = time.monotonic()
        self.state = "running"
        taps = manager.taps.of(self.plugin_id)
        self._listeners = taps.listeners  # updated in place when a listener comes or goes
        taps.canary = self
        self.trials.retap(self.plugin_id)
        if self.settings.window_seconds is not None:
            self._timer = asyncio.get_running_loop().create_task(self._time_window())
        manager.events.emit(
            "canary.started", plugin=self.plugin_id, version=str(self.target.version),
            share=self.settings.share,
        )  # fmt: skip

    # ------------------------------------------------------------------ the tap

    def _next_gap(self) -> int:
        """Calls until the canary's next one: the running sum of the share reaches 1."""
        share = self.settings.share
        gap = max(1, math.ceil((1.0 - self._acc) / share - 1e-9))
        self._acc = max(self._acc + gap * share - 1.0, 0.0)
        return gap

    def pick(
        self, inner: PluginHandle, spec: CommandSpec, params: dict[str, Any], timeout: float
    ) -> Any:
        """The countdown ran out: this call is the canary's (once per period, so the
        window's end is checked here too); the coroutine to await."""
        self._n += self._gap
        self._periods += 1
        gap = self._gap = self.countdown = self._next_gap()
        self.timed_at = 1 if gap > 1 and self._periods % OLD_TIMED_PERIODS == 0 else 0
        window = self.settings.window_calls
        if window is not None and self._n >= window:
            self._decide(None)
            return inner.call(spec, params, timeout)
        return self._call(spec, params, timeout)

    def old_call(
        self, inner: PluginHandle, spec: CommandSpec, params: dict[str, Any], timeout: float
    ) -> Any:
        return self._old_timed(inner, spec, params, timeout)

    async def _call(self, spec: CommandSpec, params: dict[str, Any], timeout: float) -> Any:
        handle = self.handle
        assert handle is not None
        own = handle.commands.get(spec.name)
        self._inflight += 1
        started = _clock()
        try:
            if own is None:
                raise CommandNotFound(
                    f"{self.target.version} has no command '{spec.name}'", plugin=self.plugin_id
                )
            result = await handle.call(own, params, timeout)
        except Exception as exc:
            seconds = _clock() - started
            self.new.record(seconds, error_of(exc)["type"])
            self._heard(spec, params, None, exc, seconds)
            self._judge()
            raise
        finally:
            self._inflight -= 1
        seconds = _clock() - started
        new = self.new  # CommandStats.record, inlined: this is on the canary's call path
        new.base += 1
        pending = new.pending
        pending.append(seconds)
        if len(pending) >= _FOLD_AT:
            new.fold()
        if self._listeners:
            self._heard(spec, params, result, None, seconds)
        answered = self._answered = self._answered + 1
        if not answered % JUDGE_EVERY:  # an error is judged at once, above
            self._judge()
        return result

    async def _old_timed(
        self, inner: PluginHandle, spec: CommandSpec, params: dict[str, Any], timeout: float
    ) -> Any:
        started = _clock()
        try:
            return await inner.call(spec, params, timeout)
        finally:
            self.old.pending.append(_clock() - started)

    def _heard(
        self,
        spec: CommandSpec,
        params: dict[str, Any],
        result: Any,
        error: BaseException | None,
        seconds: float,
    ) -> None:
        for listener in self._listeners:
            listener.called(spec, params, result, error, seconds, self._version)

    # ------------------------------------------------------------------ judging

    def _plugin_figures(self) -> tuple[int, int]:
        """The plugin's calls and errors so far, from the monitor's figures (both versions)."""
        rec = self.trials.host.manager.record(self.plugin_id)
        if rec.metrics is None:
            return (0, 0)
        stats = rec.metrics.commands.values()
        return sum(s.started for s in stats), sum(s.errors for s in stats)

    def figures(self) -> dict[str, Any]:
        """Both versions' calls, errors, error rates and mean latencies over the window."""
        calls, errors = self._plugin_figures()
        old_calls = max(calls - self._base[0] - self.new.calls, 0)
        old_errors = max(errors - self._base[1] - self.new.errors, 0)
        self.old.fold()
        self.new.fold()

        def side(n: int, e: int, stats: CommandStats) -> dict[str, Any]:
            timed = stats.timed
            return {
                "calls": n,
                "errors": e,
                "error_rate": e / n if n else 0.0,
                "mean_seconds": stats.total_time / timed if timed else None,
                "p90_seconds": stats.quantile(0.9),
                "timed": timed,
            }

        return {
            "old": {"version": self._from, **side(old_calls, old_errors, self.old)},
            "new": {
                "version": str(self.target.version),
                **side(self.new.calls, self.new.errors, self.new),
            },
            "share": self.settings.share,
            "window_calls": self._n + self._gap - self.countdown,
            "seconds": round(time.monotonic() - self._t0, 3),
        }

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
        if new["mean_seconds"] and old["mean_seconds"] and old["timed"] >= s.min_calls:
            ratio = new["mean_seconds"] / old["mean_seconds"]
            if ratio > s.max_latency_ratio:
                return (
                    f"mean latency {new['mean_seconds'] * 1000:.2f} ms on {new['version']} "
                    f"against {old['mean_seconds'] * 1000:.2f} ms on {old['version']}: "
                    f"{ratio:.1f}x, above the allowed {s.max_latency_ratio:g}x"
                )
        return None

    def _judge(self) -> None:
        if self.state != "running":
            return
        figures = self.figures()
        reason = self.breach(figures)
        if reason is not None:
            self._decide(reason, figures)

    async def _time_window(self) -> None:
        seconds = self.settings.window_seconds
        assert seconds is not None
        end = self._t0 + seconds
        while self.state == "running":
            await asyncio.sleep(min(max(end - time.monotonic(), 0.0), 0.5))
            if self.state == "running":
                self._judge()
            if time.monotonic() >= end:
                self._decide(None)
                return

    def _decide(self, breach: str | None, figures: dict[str, Any] | None = None) -> None:
        """From the next call on, every call goes to the serving version; the rest (drain,
        promote or retire, history, alert) follows in a task of its own."""
        if self.state != "running":
            return
        figures = figures or self.figures()
        if breach is None and figures["new"]["calls"] < self.settings.min_calls:
            breach = (
                f"the window ended after {figures['new']['calls']} call(s) on the canary, "
                f"fewer than the {self.settings.min_calls} needed to judge it"
            )
        self.state = "promoting" if breach is None else "rolling-back"
        self.reason = breach
        self.deciding = figures
        taps = self.trials.host.manager.taps.of(self.plugin_id)
        if taps.canary is self:
            taps.canary = None
        self._finish = asyncio.get_running_loop().create_task(self._conclude(figures))

    async def _conclude(self, figures: dict[str, Any]) -> None:
        upgrades = self.trials
        try:
            upgrades.retap(self.plugin_id)
            await self._retire()
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
        """Let the canary's calls in flight finish there, then stop its instance."""
        end = time.monotonic() + self.trials.host.manager.settings.call_timeout
        while self._inflight > 0 and time.monotonic() < end:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        if self.handle is not None:
            await dispose(self.handle, self.trials.host.manager.settings.cleanup_timeout)

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
                {"from": self._from, "to": str(self.target.version), **figures},
            )

    async def abort(self, why: str) -> None:
        """End the canary now: the serving version keeps serving (the host stops)."""
        if self.state == "running":
            self._decide(why)
        if self._finish is not None:
            await asyncio.shield(self._finish)

    def summary(self) -> dict[str, Any]:
        return {
            "plugin": self.plugin_id,
            "from": self._from,
            "to": str(self.target.version),
            "state": self.state,
            "reason": self.reason,
            "settings": {
                "share": self.settings.share,
                "window_calls": self.settings.window_calls,
                "window_seconds": self.settings.window_seconds,
                "min_calls": self.settings.min_calls,
                "max_error_increase": self.settings.max_error_increase,
                "max_latency_ratio": self.settings.max_latency_ratio,
            },
            "figures": self.deciding if self.deciding is not None else self.figures(),
        }


def not_running(plugin_id: str) -> PluginStateError:
    return PluginStateError(
        "has no canary running",
        plugin=plugin_id,
        hint=f"'plugbay upgrade {plugin_id} --canary 10%' starts one",
    )
