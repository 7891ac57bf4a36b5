"""The spec's ``PluginMonitor``: metrics, health, alerts and logs, sampled once a tick.

One task on the host's loop wakes every ``interval`` (1 s) and, per plugin that
may have changed (called, named by an event, not settled, or in the tick's sweep:
``monitor.tracks``): reads its call counters (already kept on the call path),
what its worker uses (``monitor.sampling``, in a thread so the loop never waits on
``/proc``; an idle tick's few one-line reads are made on the loop), looks for hung
calls and evaluates the alert rules; it schedules the ``health()`` checks. It then
writes the rows of the live snapshot that ``plugbay top`` shows that changed
(``monitor.rows``) and the log records that arrived, in one short transaction, off
the loop.

While nothing happens (no call, event, log record, alert, unsettled plugin or
readiness check due), the ticks come every ``idle-interval`` (5 s) instead: a timed
call (``CommandStats.arm``), an event naming a plugin, a log record and a block of the
loop each end the wait (:meth:`PluginMonitor._rest`), and the sweep visits as many
plugins per second as before. On a virtual machine each wake-up of an idle thread
costs a millisecond or more of CPU, and most of an idle host's CPU was its ticks.

Everything a reader needs is a method here (``snapshot``, ``collect_metrics``,
``check_health``, ``alerts``, ``logs``), so the CLI, the HTTP API and system
plugins see the same figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import Counter
from typing import Any

from plugbay.api import SystemEvent
from plugbay.api.errors import PlugbayError
from plugbay.monitor.alerts import AlertManager, Condition, Sample, evaluate
from plugbay.monitor.config import MonitorSettings
from plugbay.monitor.figures import WorkerFigures, shown
from plugbay.monitor.health import RANK, Blocked, LoopWatchdog, Readiness, overall, readiness_from
from plugbay.monitor.logs import BY_ALERT, PREFIX, LogManager, lifecycle_level
from plugbay.monitor.rows import SnapshotRows
from plugbay.monitor.sampling import REFRESH_TICKS, cpu_percent, utilization
from plugbay.monitor.source import HandleView, MonitorSource, PluginView
from plugbay.monitor.tracks import Track, Visits, caught_up, quiet, rates, unchanged, window

__all__ = ["PluginMonitor"]

log = logging.getLogger("plugbay.monitor")


class _Verbose:
    """Plugin loggers pass every level while any monitor runs (hosts may overlap); the
    application's level comes back when the last one stops."""

    users: set[int] = set()
    saved = logging.NOTSET

    @classmethod
    def enter(cls, monitor: object) -> None:
        logger = logging.getLogger(PREFIX.rstrip("."))
        if not cls.users:
            cls.saved = logger.level
            logger.setLevel(logging.DEBUG)
        cls.users.add(id(monitor))

    @classmethod
    def leave(cls, monitor: object) -> None:
        if id(monitor) in cls.users:
            cls.users.discard(id(monitor))
            if not cls.users:
                logging.getLogger(PREFIX.rstrip(".")).setLevel(cls.saved)


#: error types that are a limit being hit or a permission denied (logged as security events)
_SECURITY_ERRORS = {
    "PluginTimeout": "limit hit: a call ran past its timeout",
    "MemoryError": "limit hit: out of memory",
    "PermissionError": "permission denied",
    "PluginCrashed": "its worker died",
}


class PluginMonitor:
    def __init__(
        self,
        manager: MonitorSource,
        settings: MonitorSettings | None = None,
        *,
        store: Any = None,
    ) -> None:
        self.manager = manager
        self.settings = settings or MonitorSettings()
        #: returns the host's state store (or None): it is opened after the monitor exists
        self._store = store or (lambda: manager.state)
        s = self.settings
        self.logs = LogManager(
            ring=s.log_ring, rate=s.log_rate, burst=s.log_burst,
            bytes_per_second=s.log_bytes_per_second,
            retention_seconds=s.log_retention_days * 86400, keep_per_plugin=s.log_keep,
            known=self._version_of,
        )  # fmt: skip
        self.alerts = AlertManager(
            s.alerts, events=manager.events, logs=self.logs, store=self._store,
            disable=self._disable,
        )  # fmt: skip
        self._tracks: dict[str, Track] = {}
        self._task: asyncio.Task[None] | None = None
        self._watchdog: LoopWatchdog | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._host_usage: dict[str, Any] | None = None
        self._host_cpu: tuple[float, float] | None = None
        self._ticks = 0
        #: the last tick's PlugbayError (a full disk): logged once until a tick succeeds
        self._tick_problem: str | None = None
        self._visits = Visits()  # which plugins a tick looks at (``monitor.tracks``)
        #: plugins with a ``health`` command (their readiness is checked in turn)
        self._checked: dict[str, None] = {}
        #: the snapshot's rows, written as they change (``monitor.rows``)
        self._rows = SnapshotRows()
        #: while the monitor waits for its next tick: what ends the wait (``_wake``)
        self._nap: asyncio.Future[None] | None = None
        #: the monitor waits past ``interval`` now, since nothing happens (``_rest``)
        self.resting = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        #: monotonic time of the last tick (0: none yet)
        self._last_tick = 0.0
        #: the manager's ``roster_changes`` when the tick last compared the plugin ids
        self._roster = -1
        #: what the workers use (``monitor.figures``)
        self._figures = WorkerFigures(lambda: manager.records_by_id, self._tracks,
                                      self._rows.mark)  # fmt: skip
        self.started = time.time()

    # ------------------------------------------------------------------ lifecycle

    @property
    def metrics(self) -> dict[str, Any]:
        """Each plugin's metrics (the spec's ``metrics``)."""
        return dict(self.manager.monitor)

    @property
    def health(self) -> dict[str, Any]:
        """Each plugin's health (the spec's ``health``)."""
        return {r.id: self.check_health(r.id) for r in self.manager.list_plugins()}

    async def start(self) -> None:
        plugin_logger = logging.getLogger(PREFIX.rstrip("."))
        plugin_logger.addHandler(self.logs)
        _Verbose.enter(self)
        self.manager.events.listen(
            "plugbay.monitor", -(10**9), ("plugin.*", "security.*"), self._on_event
        )
        store = self._store()
        if store is not None:
            with contextlib.suppress(Exception):
                store.clear_open_alerts()  # a previous host's alerts ended with it
        loop = self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.logs.on_news = self._news
        self._watchdog = LoopWatchdog(
            loop, self._owner_of, block_after=self.settings.loop_block_after,
            on_block=self._blocked_now,
        )  # fmt: skip
        self._watchdog.start()
        self._task = loop.create_task(self._run(), name="plugbay-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._watchdog is not None:
            self._watchdog.stop()
        for task in list(self._tasks):
            task.cancel()
        for track in self._tracks.values():
            if track.checking is not None:
                track.checking.cancel()
        self.manager.events.unsubscribe("plugbay.monitor")
        store = self._store()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.logs.persist, store)
        if store is not None:
            with contextlib.suppress(Exception):
                store.clear_open_alerts()  # nothing holds once the host is gone
        plugin_logger = logging.getLogger(PREFIX.rstrip("."))
        plugin_logger.removeHandler(self.logs)
        self.logs.on_news = None
        _Verbose.leave(self)

    async def _run(self) -> None:
        while True:
            await self._rest()
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except PlugbayError as exc:  # a full disk, say: said once, not every tick
                if str(exc) != self._tick_problem:
                    self._tick_problem = str(exc)
                    log.warning("monitor: cannot keep this tick's logs and snapshot: %s", exc)
                continue
            except Exception:  # the monitor must never take the host down
                log.exception("monitor tick failed")
            self._tick_problem = None

    # ------------------------------------------------------------------ the cadence

    async def _rest(self) -> None:
        """Wait for the next tick: ``interval`` after the last one; while nothing happens
        up to the idle interval (``settings.rest``), which :meth:`_wake` ends (the tick
        then comes as soon as ``interval`` has passed)."""
        settings, loop = self.settings, asyncio.get_running_loop()
        nap = self._nap = loop.create_future()
        self.manager.wake_monitor = self._wake
        longest = settings.interval
        # looked at after the nap is set: news from another thread either sees the nap
        # (``_news``) or is seen here
        if self._idle():
            running, due = self._checks()
            if not running:
                longest = max(settings.interval, min(settings.rest, due - time.monotonic()))
        timer = loop.call_later(longest, self._wake)
        self.resting = longest > settings.interval
        try:
            await nap
        finally:
            timer.cancel()
            self._nap = self.manager.wake_monitor = None
            self.resting = False
        left = self._last_tick + settings.interval - time.monotonic()
        if left > 0:  # woken early: never two ticks less than ``interval`` apart
            await asyncio.sleep(left)

    def _idle(self) -> bool:
        """Nothing the next tick must see soon: no call, plugin to look at, log record
        waiting, alert firing or block of the loop."""
        watchdog = self._watchdog
        return not (
            self.manager.touched
            or self._visits.pending
            or self.logs.waiting()
            or self.alerts.firing
            or (watchdog is not None and (watchdog.episodes or watchdog.current()))
        )

    def _checks(self) -> tuple[bool, float]:
        """Whether a readiness check runs, and when the next one is due (monotonic)."""
        due, tracks = float("inf"), self._tracks
        for pid in self._checked:
            track = tracks.get(pid)
            if track is not None:
                if track.checking is not None and not track.checking.done():
                    return True, due
                due = min(due, track.next_check)
        return False, due

    def _wake(self) -> None:
        """End the rest between idle ticks (on the loop's thread)."""
        nap = self._nap
        if nap is not None and not nap.done():
            nap.set_result(None)

    def _news(self) -> None:
        """Something arrived for the next tick (a log record, a block): from any thread."""
        if self._nap is None or self._loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._wake()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed
                self._loop.call_soon_threadsafe(self._wake)

    # ------------------------------------------------------------------ one tick

    async def tick(self) -> None:
        """Look at the plugins that may have changed (``monitor.tracks``): sample them,
        evaluate their alert rules; then persist logs and the snapshot."""
        self._ticks += 1
        by_id, tracks = self.manager.records_by_id, self._tracks
        gone, new = self._came_and_went()
        for pid in new:
            tracks[pid] = Track()
        self._forget_gone(gone)
        called = self.manager.touched  # timed calls (CommandStats.arm), state changes
        blocked = self._loop_blocks()
        # as many plugins a second as at one tick a second, however long the rest was
        start, interval = time.monotonic(), self.settings.interval
        ticks = (start - self._last_tick) / interval if self._last_tick else 1.0
        self._last_tick = start
        swept = self._visits.sweep(by_id, bool(new or gone), ticks)
        visit = self._visits.take() | called | new | {b.plugin for b in blocked if b.plugin}
        figures = self._figures
        full, probes = figures.to_read(visit, swept, called, self._ticks)
        called.clear()
        fds = self._ticks % REFRESH_TICKS == 1  # the host's descriptors: a long list
        usage, probed, host = await figures.read(full, probes, fds)
        now = time.monotonic()
        if not fds and self._host_usage is not None:
            host["open_files"] = self._host_usage.get("open_files")
        self._host_usage = host
        host["cpu_percent"], self._host_cpu = cpu_percent(host, self._host_cpu, now)
        visit.update(figures.keep(full, usage, probed, visit, now))  # swept, memory moved
        for pid in sorted(visit):
            rec = by_id.get(pid)
            if rec is not None and await self._look_at(rec, tracks.setdefault(pid, Track()),
                                                       blocked, now):  # fmt: skip
                self._rows.mark((pid,))
        for pid in list(self._checked):
            rec = by_id.get(pid)
            if rec is not None:
                self._schedule_readiness(rec, tracks.setdefault(pid, Track()), now)
        self._rows.mark(new | gone)
        await self._write()

    async def _write(self) -> None:
        """The snapshot's rows that changed, with the host's, and the log records that
        arrived, in a thread."""
        rows, now = self._rows, time.monotonic()
        changed = rows.changed(lambda pid: self._row_of(pid, now))
        changed["*host*"] = self.host_summary(rows.statuses())
        await asyncio.to_thread(self._persist, changed, rows.whole)

    def _came_and_went(self) -> tuple[set[str], set[str]]:
        """The plugin ids gone since the last tick, and the new ones (compared only when
        the roster changed: a thousand ids compared each tick cost more than the rest)."""
        changes, by_id, tracks = (
            self.manager.roster_changes,
            self.manager.records_by_id,
            self._tracks,
        )
        if changes == self._roster and len(by_id) == len(tracks):
            return set(), set()
        self._roster = changes
        return tracks.keys() - by_id.keys(), by_id.keys() - tracks.keys()

    async def _look_at(
        self, rec: PluginView, track: Track, blocked: list[Blocked], now: float
    ) -> bool:
        """One plugin on this tick: passed by when it is settled, else observed; kept on
        the next tick's list until it settles (``monitor.tracks``). Whether its row in the
        snapshot may have changed (not when it was passed by)."""
        if "health" in rec.commands:
            self._checked[rec.id] = None
        else:
            self._checked.pop(rec.id, None)
        if str(rec.state) != "active" or rec.metrics is None:
            track.samples.clear()
            track.hung = None
            holding = self._restart_only(rec, now)
            self.alerts.update(rec.id, rec.version, holding)
            if holding:  # a restart loop's alert ends as time passes: looked at until then
                self._visits.pending.add(rec.id)
            return True
        inflight = self.manager.inflight(rec.id)
        if unchanged(track, rec, inflight) and not any(b.plugin == rec.id for b in blocked):
            track.blocked = []
            return False
        caught_up(track, now, self.settings.interval)
        await self._observe(rec, track, blocked, now)
        if not track.clear or track.samples[-1].inflight or track.blocked:
            self._visits.pending.add(rec.id)
        else:  # settled: the call that wakes it is timed, and that marks it
            for stats in rec.metrics.commands.values():
                stats.arm()
        return True

    def _loop_blocks(self) -> list[Blocked]:
        """The blocks of the host's event loop since the last tick, then the one going on."""
        if self._watchdog is None:
            return []
        blocked = self._watchdog.take()
        ongoing = self._watchdog.current()
        return blocked if ongoing is None else [*blocked, ongoing]

    async def _observe(
        self, rec: PluginView, track: Track, blocked: list[Blocked], now: float
    ) -> None:
        """One active plugin's tick: a sample kept over the alert windows, its blocks of
        the loop and hung calls, then its alerts and readiness."""
        sample = self._sample(rec, track, now)
        still = quiet(track, sample, len(rec.crashes)) and not any(
            b.plugin == rec.id for b in blocked
        )
        self._keep(track, sample, now)
        if still:  # nothing new since the rules last found nothing: they still find nothing
            track.blocked = []
            return
        self._security_from_errors(rec, track)
        track.blocked = [b for b in blocked if b.plugin == rec.id]
        hung = await self._hung(rec, track, sample, now)
        rules = self.settings.alerts
        holding = evaluate(rules, list(track.samples), crashes=rec.crashes, hung=hung, now=now)
        self.alerts.update(rec.id, rec.version, holding)
        track.clear = not holding and hung is None
        track.crashes_seen = len(rec.crashes)

    def _keep(self, track: Track, sample: Sample, now: float) -> None:
        """Add the sample; keep the samples the longest alert window needs."""
        rules = self.settings.alerts
        keep = max(rules.error_rate.window, rules.latency.window, rules.memory_growth.window, 60.0)
        track.keep = keep + self.settings.interval
        if not track.samples:  # calls before the first sample count in the first window
            track.samples.append(Sample(now - 1e-3, 0, 0, {}, sample.rss, 0))
        track.samples.append(sample)
        while track.samples and track.samples[0].at < now - track.keep:
            track.samples.popleft()

    def _forget_gone(self, gone: set[str]) -> None:
        """Drop what is tracked of plugins the host no longer knows, and their alerts."""
        for pid in gone:
            del self._tracks[pid]
            self._checked.pop(pid, None)
            self.alerts.clear_plugin(pid)
        self._figures.forget(gone)

    def _persist(self, rows: dict[str, dict[str, Any] | None], whole: bool) -> None:
        """In a thread: the log records that arrived, then the snapshot's rows (all of
        them when ``whole``, else those that changed)."""
        store = self._store()
        self.logs.persist(store)
        if store is None:
            return
        try:
            store.put_snapshot(rows, whole=whole)
            self._rows.whole = False
            if self._ticks % 60 == 1:
                self.logs.prune(store)
        except Exception as exc:  # a full disk must not stop monitoring
            self._rows.whole = True  # rows were lost: the next write is all of them
            log.error("could not write the monitoring snapshot: %s", exc)

    def _sample(self, rec: PluginView, track: Track, now: float) -> Sample:
        assert rec.metrics is not None
        calls = errors = 0
        commands: dict[str, tuple[list[int], float]] = {}
        default_timeout = self.manager.timeout_of(rec.id)
        specs = rec.commands
        for name, stats in list(rec.metrics.commands.items()):
            buckets = stats.buckets
            calls += stats.calls
            errors += stats.errors
            spec = specs.get(name)
            timeout = default_timeout
            if spec is not None and spec.timeout is not None and spec.timeout < timeout:
                timeout = spec.timeout
            commands[name] = (buckets, timeout)
        rss = None
        if track.usage is not None and not track.usage.get("shared"):
            rss = track.usage.get("rss_bytes")
        return Sample(now, calls, errors, commands, rss, self.manager.inflight(rec.id))

    def _restart_only(self, rec: PluginView, now: float) -> list[Condition]:
        """A plugin that is not active now can still be crashing over and over."""
        rules = self.settings.alerts
        if not rules.restarts.enabled or str(rec.state) == "disabled":
            return []
        return evaluate(rules, [Sample(now, 0, 0, {}, None, 0)], crashes=rec.crashes, hung=None,
                        now=now)  # fmt: skip

    # ------------------------------------------------------------------ hung calls

    async def _hung(
        self, rec: PluginView, track: Track, sample: Sample, now: float
    ) -> Condition | None:
        after = self.settings.alerts.hung.after
        if track.blocked:
            worst = max(track.blocked, key=lambda b: b.seconds)
            return Condition(
                "hung",
                f"blocked the host's event loop for {worst.seconds:.1f} s"
                + (" (still blocked)" if worst.ongoing else ""),
                {"seconds": round(worst.seconds, 3), "stack": worst.stack, "kind": "loop-blocked"},
            )
        # each backend knows when its calls in flight started (inline: those that suspended)
        oldest = min(rec.handle.running(), default=None) if rec.handle is not None else None
        if oldest is None or now - oldest[0] < after:
            track.hung = None
            return None
        if track.hung is None:
            # a worker's stacks take a signal and a read of /proc: off the loop
            remote = rec.handle is not None and rec.handle.isolated
            stack = await asyncio.to_thread(_stacks_of, rec) if remote else None
            if stack is None:  # it runs in the host: the host's tasks inside its code
                stack = _task_stacks(rec)
            track.hung = Condition(
                "hung",
                f"a call to '{oldest[1]}' has run {now - oldest[0]:.1f} s without finishing",
                {"command": oldest[1], "seconds": round(now - oldest[0], 3), "stack": stack,
                 "kind": "call"},
            )  # fmt: skip
            self.logs.add(rec.id, logging.ERROR, f"hung call to '{oldest[1]}'; its stack:\n{stack}",
                          alert="hung")  # fmt: skip
        return track.hung

    def _blocked_now(self, block: Blocked) -> None:
        """From the watchdog thread, while the loop is blocked: say so at once."""
        self._news()  # the tick after the block looks at it at once
        who = f"plugin '{block.plugin}'" if block.plugin else "the host's own code"
        log.error("the event loop has not turned for %.1f s; %s is on its stack:\n%s",
                  block.seconds, who, block.stack)  # fmt: skip
        if block.plugin is not None:
            self.logs.add(block.plugin, logging.ERROR,
                          f"blocked the host's event loop for {block.seconds:.1f} s; its stack:\n"
                          f"{block.stack}", alert="hung")  # fmt: skip

    # ------------------------------------------------------------------ readiness

    def _schedule_readiness(self, rec: PluginView, track: Track, now: float) -> None:
        if "health" not in rec.commands or now < track.next_check:
            return
        if track.checking is not None and not track.checking.done():
            return
        track.next_check = now + self.settings.health_interval
        track.checking = asyncio.get_running_loop().create_task(self._check_ready(rec.id, track))

    async def _check_ready(self, plugin_id: str, track: Track) -> None:
        timeout = self.settings.health_timeout
        try:
            async with asyncio.timeout(timeout):
                answer = await self.manager.call(plugin_id, "health", {}, counted=False)
            track.readiness = readiness_from(answer)
        except TimeoutError:
            track.readiness = Readiness("degraded", f"health() did not answer within {timeout:g} s")
        except Exception as exc:
            track.readiness = Readiness("failing", f"health() failed: {exc}")
        finally:
            self._rows.mark((plugin_id,))  # the snapshot's row shows the answer

    async def check_readiness(self, plugin_id: str) -> Readiness | None:
        """Run the plugin's ``health()`` now (bounded); None when it has none."""
        rec = self.manager.record(plugin_id)
        if "health" not in rec.commands:
            return None
        track = self._tracks.setdefault(plugin_id, Track())
        await self._check_ready(plugin_id, track)
        return track.readiness

    # ------------------------------------------------------------------ the spec's methods

    def collect_metrics(self, plugin_id: str) -> dict[str, Any]:
        """Everything measured about one plugin now (the spec's ``collectMetrics``)."""
        rec = self.manager.record(plugin_id)
        track = self._tracks.get(plugin_id) or Track()
        self._read_now(rec, track)
        out: dict[str, Any] = (
            rec.metrics.snapshot() if rec.metrics is not None else {"plugin": plugin_id}
        )
        out.update(
            version=rec.version,
            state=str(rec.state),
            inflight=self.manager.inflight(plugin_id),
            instances=1 if rec.handle is not None else 0,
            usage=track.usage,
            cpu_percent=track.cpu_percent,
            events_delivered=self.manager.events.delivered_to.get(plugin_id, 0),
            log_records_dropped=self.logs.dropped().get(plugin_id, 0),
            utilization=utilization(rec, track.usage),
            alerts=[a.rule for a in self.alerts.active(plugin_id)],
        )
        return out

    def _read_now(self, rec: PluginView, track: Track) -> None:
        """Read a worker in full when its figures are older than two ticks (an idle one is
        read in turn, rarely: ``monitor.sampling``), so whoever asks sees them current."""
        now = time.monotonic()
        if rec.handle is None or now - track.usage_at < 2 * self.settings.interval:
            return
        try:
            figures = rec.handle.usage()
        except Exception as exc:
            figures = {"error": str(exc)}
        track.usage = {"shared": True} if figures is None else figures
        track.usage_at = now
        track.cpu_percent, track.cpu = cpu_percent(track.usage, track.cpu, now)

    def check_health(self, plugin_id: str) -> dict[str, Any]:
        """Liveness, readiness and the status they add up to (the spec's ``checkHealth``)."""
        rec = self.manager.record(plugin_id)
        state = str(rec.state)
        if state != "active":
            return _not_serving(plugin_id, rec, state)
        track = self._tracks.get(plugin_id) or Track()
        reasons: list[str] = []
        problem = self._not_live(plugin_id, rec.handle)
        live = problem is None
        status = "green" if live else "failing"
        if problem is not None:
            reasons.append(problem)
        ready = track.readiness
        if ready is not None and RANK[ready.status] > RANK[status]:
            status = ready.status
        if ready is not None and ready.reason:
            reasons.append(ready.reason)
        firing = self.alerts.active(plugin_id)
        if firing:
            worst = "failing" if any(a.rule == "hung" for a in firing) else "degraded"
            status = overall([status, worst])
            reasons.extend(f"alert {a.rule}: {a.message}" for a in firing)
        return {
            "plugin": plugin_id, "version": rec.version, "state": state, "status": status,
            "live": live, "ready": None if ready is None else ready.status, "reasons": reasons,
        }  # fmt: skip

    def _not_live(self, plugin_id: str, handle: HandleView | None) -> str | None:
        """Why an active plugin is not live (its worker is gone, or it blocks the host's
        event loop now), or ``None``."""
        problem = handle.alive() if handle is not None else None
        if problem is not None:
            return problem
        if handle is not None and not handle.isolated and self._watchdog is not None:
            block = self._watchdog.current()
            if block is not None and block.plugin == plugin_id:
                return f"blocks the host's event loop ({block.seconds:.1f} s so far)"
        return None

    def overall_health(self) -> dict[str, Any]:
        plugins = [self.check_health(r.id) for r in self.manager.list_plugins()]
        return {
            "status": overall(p["status"] for p in plugins),
            "plugins": plugins,
        }

    def report_issue(self, plugin_id: str, issue: str, **details: Any) -> None:
        """Something is wrong with a plugin (the spec's ``reportIssue``): logged for the
        plugin, and sent to system plugins as ``plugin.issue``."""
        self.logs.add(plugin_id, logging.WARNING, issue, issue=True, **details)
        self.manager.events.emit("plugin.issue", plugin=plugin_id, issue=issue, details=details)

    # ------------------------------------------------------------------ views

    def snapshot(self) -> list[dict[str, Any]]:
        """One row per plugin for ``plugbay top``: plain data, the same over the API."""
        now = time.monotonic()
        return [self._row(rec, now) for rec in self.manager.list_plugins()]

    def _row(self, rec: PluginView, now: float) -> dict[str, Any]:
        track = self._tracks.get(rec.id) or Track()
        samples = window(track, now, self.settings.interval)
        rate, error_rate, p50, p99 = rates(samples)
        usage = track.usage or {}
        health = self.check_health(rec.id)
        return {
            "id": rec.id, "version": rec.version, "state": str(rec.state),
            "isolation": rec.isolation, "calls": samples[-1].calls if samples else 0,
            "calls_per_second": rate, "error_rate": error_rate,
            "p50_seconds": p50, "p99_seconds": p99,
            "rss_bytes": None if usage.get("shared") else usage.get("rss_bytes"),
            "cpu_percent": None if usage.get("shared") else shown(track.cpu_percent),
            "inflight": self.manager.inflight(rec.id),
            "health": health["status"], "live": health["live"], "ready": health["ready"],
            "reasons": health["reasons"],
            "alerts": [a.rule for a in self.alerts.active(rec.id)],
        }  # fmt: skip

    def _row_of(self, plugin_id: str, now: float) -> dict[str, Any] | None:
        """A plugin's row in the snapshot, or None when the host no longer knows it."""
        rec = self.manager.records_by_id.get(plugin_id)
        return None if rec is None else self._row(rec, now)

    def usage_of(self, plugin_id: str) -> tuple[dict[str, Any] | None, float | None]:
        """The last usage sample of a plugin's worker, and its CPU percent."""
        track = self._tracks.get(plugin_id)
        return (None, None) if track is None else (track.usage, track.cpu_percent)

    def utilization_of(self, plugin_id: str) -> dict[str, float]:
        track = self._tracks.get(plugin_id)
        rec = self.manager.records_by_id.get(plugin_id)
        return {} if track is None or rec is None else utilization(rec, track.usage)

    def host_usage(self) -> dict[str, Any] | None:
        return self._host_usage

    def host_summary(self, statuses: list[str] | None = None) -> dict[str, Any]:
        """The host's row; ``statuses``: each plugin's health, when already checked."""
        usage = self._host_usage or {}
        if statuses is None:
            statuses = [self.check_health(r.id)["status"] for r in self.manager.list_plugins()]
        return {
            "id": "*host*", "kind": "host", "pid": os.getpid(),
            "health": overall(statuses),
            "rss_bytes": usage.get("rss_bytes"), "cpu_percent": usage.get("cpu_percent"),
            "alerts": len(self.alerts.firing), "started": self.started,
        }  # fmt: skip

    # ------------------------------------------------------------------ helpers

    def _version_of(self, plugin_id: str) -> str | None:
        rec = self.manager.records_by_id.get(plugin_id)
        return None if rec is None else (rec.version or "")

    def _owner_of(self, filename: str) -> str | None:
        for rec in list(self.manager.records_by_id.values()):
            m = rec.manifest
            if m is not None and m.root is not None and filename.startswith(str(m.root) + os.sep):
                return rec.id
        return None

    def _disable(self, plugin_id: str, reason: str) -> None:
        async def go() -> None:
            try:
                await self.manager.disable(plugin_id, reason, by=BY_ALERT)
            except Exception as exc:
                log.error("could not disable '%s' after an alert: %s", plugin_id, exc)

        task = asyncio.get_running_loop().create_task(go())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _security_from_errors(self, rec: PluginView, track: Track) -> None:
        assert rec.metrics is not None
        now: Counter[str] = Counter()
        for stats in list(rec.metrics.commands.values()):
            now.update(stats.errors_by_type)
        for kind, what in _SECURITY_ERRORS.items():
            new = now[kind] - track.errors_seen[kind]
            if new > 0:
                self.logs.security(rec.id, f"{what} ({new} call(s))", error=kind, calls=new)
        track.errors_seen = now

    async def _on_event(self, event: SystemEvent) -> None:
        plugin = event.data.get("plugin")
        if not isinstance(plugin, str):
            return
        self._visits.mark((plugin,))  # looked at on the next tick, which comes soon
        self._wake()
        if event.kind.startswith("security."):
            fields = {k: v for k, v in event.data.items() if k not in ("plugin", "message")}
            # an API request that succeeded is on the record, not a warning
            done = event.kind == "security.http.request" and fields.get("result") == "ok"
            level = logging.INFO if done else logging.WARNING
            self.logs.security(
                plugin, _security_text(event), level=level, event=event.kind, **fields
            )
            return
        level = lifecycle_level(event.kind, event.data)
        reason = event.data.get("reason")
        self.logs.add(plugin, level, event.kind + (f": {reason}" if reason else ""),
                      logger=PREFIX + plugin + ".lifecycle", event=event.kind)  # fmt: skip
        if event.kind == "plugin.reloaded":
            self.logs.forget(plugin)


def _security_text(event: SystemEvent) -> str:
    """One line for a sandbox's security event (``security.denied`` / ``.limit`` / ``.killed``)."""
    data = event.data
    if "message" in data:
        return str(data["message"])
    kind = event.kind.partition(".")[2]
    layer = f" ({data['layer']})" if data.get("layer") else ""
    if kind == "limit":
        return f"limit hit: {data.get('limit', '?')}: {data.get('detail', '')}".rstrip(": ")
    if kind == "killed":
        return f"worker killed by the sandbox{layer}: {data.get('detail') or data.get('operation', '')}"
    if kind == "timeout":  # a call past its time limit: no permission is involved
        return f"timed out: '{data.get('operation', '?')}' ran past its time limit"
    what = data.get("operation") or data.get("detail") or kind
    text = f"permission denied: {what}{layer}"
    if data.get("permission"):
        text += f"; '{data['permission']}' is not granted"
    return text


def _stacks_of(rec: PluginView) -> str | None:
    """In a thread: the stacks where an isolated plugin runs (None: its backend has none)."""
    if rec.handle is None:
        return None
    try:
        return rec.handle.dump_stacks()
    except Exception as exc:
        return f"(the worker's stack could not be read: {exc})"


def _task_stacks(rec: PluginView) -> str:
    """The stacks of the host's tasks that are inside this plugin's code (inline)."""
    from plugbay.monitor.stacks import task_stacks

    m = rec.manifest
    return task_stacks(str(m.root) if m is not None and m.root is not None else None)


def _not_serving(plugin_id: str, rec: PluginView, state: str) -> dict[str, Any]:
    """The health of a plugin that is not active: its state says it, or it failed."""
    if state in ("disabled", "stopped", "stopping", "discovered", "resolved", "initializing",
                 "on-demand", "restarting"):  # fmt: skip
        return {"plugin": plugin_id, "version": rec.version, "state": state, "status": state,
                "live": None, "ready": None, "reasons": [rec.reason] if rec.reason else []}  # fmt: skip
    return {"plugin": plugin_id, "version": rec.version, "state": state, "status": "failing",
            "live": False, "ready": None, "reasons": [rec.reason or state]}  # fmt: skip
