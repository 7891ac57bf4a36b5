"""``context.tasks``: a plugin's supervised background work.

``spawn(factory, name=…)`` runs ``await factory()`` as an asyncio task in the
process the plugin runs in (the host's loop inline, the worker's loop in a
sandbox). A task that raises is restarted after a backoff that doubles from
``backoff`` up to ``max_backoff``, at most ``max_restarts`` times, then it is
``failed`` and stays so (logged with its error). A task that returns is
``done``. At cleanup the host cancels every task and waits for them within the
cleanup's bound; a task that ignores cancellation is left behind and reported.

Each task's state and restarts are metrics of the plugin, so ``plugbay info``
and ``/metrics`` show them: the gauge ``tasks{state}`` (how many tasks are in
each state), ``task_state{task,state}`` (1 for a task's current state) and the
counter ``task_restarts{task}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

from plugbay.api._retired import Retired
from plugbay.api.errors import PlugbayError

__all__ = ["STATES", "TaskInfo", "Tasks"]

TaskState = Literal["running", "backoff", "done", "failed", "cancelled"]
STATES: Final[tuple[TaskState, ...]] = ("running", "backoff", "done", "failed", "cancelled")


class _Metrics(Protocol):
    def increment(self, name: str, value: float = 1.0, **labels: str) -> None: ...

    def gauge(self, name: str, value: float, **labels: str) -> None: ...


@dataclass(slots=True)
class TaskInfo:
    """What ``context.tasks.info()`` reports of one task."""

    name: str
    state: TaskState
    restarts: int
    last_error: str | None
    started: float


class _Supervised:
    __slots__ = ("backoff", "factory", "info", "max_backoff", "max_restarts", "task")

    def __init__(
        self,
        name: str,
        factory: Callable[[], Awaitable[Any]],
        backoff: float,
        max_backoff: float,
        max_restarts: int,
    ) -> None:
        self.factory = factory
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_restarts = max_restarts
        self.info = TaskInfo(name, "running", 0, None, time.time())
        self.task: asyncio.Task[None] | None = None


def _once(coro: Coroutine[Any, Any, Any]) -> Callable[[], Awaitable[Any]]:
    return lambda: coro


class Tasks:
    """The plugin's background tasks (``context.tasks``)."""

    __slots__ = ("_closing", "_log", "_metrics", "_plugin", "_retired", "_tasks")

    def __init__(
        self,
        plugin: str = "",
        *,
        logger: logging.Logger | None = None,
        metrics: _Metrics | None = None,
    ) -> None:
        self._plugin = plugin
        self._log = logger or logging.getLogger(f"plugbay.plugin.{plugin or 'unknown'}")
        self._metrics = metrics
        self._tasks: dict[str, _Supervised] = {}
        self._closing = False
        self._retired: Retired | None = None

    def spawn(
        self,
        work: Callable[[], Awaitable[Any]] | Coroutine[Any, Any, Any],
        *,
        name: str,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_restarts: int = 10,
    ) -> None:
        """Run ``work`` in the background, supervised, under ``name`` (unique per plugin).

        Pass a function that makes the coroutine (``self.poll``, ``lambda: self.poll(5)``)
        so a failed task can be restarted; a coroutine object runs once and is not
        restarted (there is nothing to run again). Call it from ``initialize`` or a
        command, on the plugin's event loop.
        """
        if self._closing:
            if self._retired is not None:
                raise self._retired(f"context.tasks.spawn(name={name!r})")
            raise PlugbayError(
                f"tasks: cannot start '{name}' while the plugin is being cleaned up",
                plugin=self._plugin or None,
                hint="start background tasks in initialize or a command; the host cancels "
                "them at cleanup",
            )
        known = self._tasks.get(name)
        if known is not None and known.task is not None and not known.task.done():
            raise PlugbayError(
                f"tasks: a task named '{name}' is already running",
                plugin=self._plugin or None,
                hint="give each background task its own name",
            )
        if inspect.iscoroutine(work):
            factory: Callable[[], Awaitable[Any]] = _once(work)
            max_restarts = 0
        elif callable(work):
            factory = work
        else:
            raise PlugbayError(
                f"tasks: '{name}' needs a coroutine function or a coroutine, "
                f"not {type(work).__name__}",
                plugin=self._plugin or None,
                hint="pass the method itself (self.poll), not what it returns",
            )
        supervised = _Supervised(name, factory, backoff, max_backoff, max(0, max_restarts))
        self._tasks[name] = supervised
        supervised.task = asyncio.get_running_loop().create_task(
            self._supervise(supervised), name=f"plugbay-task-{self._plugin}-{name}"
        )
        self._report()

    def retire(self, refusal: Retired) -> None:
        """Refuse every later spawn with ``refusal``: the context's instance was stopped."""
        self._closing, self._retired = True, refusal

    def info(self) -> list[TaskInfo]:
        """Every task spawned (also those done, failed or cancelled), by name."""
        return [self._tasks[n].info for n in sorted(self._tasks)]

    async def close(self, timeout: float) -> list[str]:
        """Cancel every task and wait for them up to ``timeout`` seconds; the names of
        those that did not stop in time (they are left behind and logged)."""
        self._closing = True
        running = [s.task for s in self._tasks.values() if s.task is not None and not s.task.done()]
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=max(0.0, timeout))
        stuck = [
            s.info.name for s in self._tasks.values() if s.task is not None and not s.task.done()
        ]
        for s in self._tasks.values():
            if s.info.state in ("running", "backoff"):
                s.info.state = "cancelled"
        if stuck:
            self._log.warning(
                "background task(s) %s did not stop within %.3g s of being cancelled",
                ", ".join(stuck),
                timeout,
            )
        self._report()
        return stuck

    async def _supervise(self, s: _Supervised) -> None:
        delay = s.backoff
        while True:
            s.info.state = "running"
            self._report()
            try:
                work = s.factory()
                if not inspect.isawaitable(work):
                    self._not_awaitable(s, work)
                    return
                await work
            except asyncio.CancelledError:
                s.info.state = "cancelled"
                self._report()
                raise
            except Exception as exc:
                s.info.last_error = f"{type(exc).__name__}: {exc}"
                if s.info.restarts >= s.max_restarts:
                    s.info.state = "failed"
                    self._log.error(
                        "background task '%s' failed after %d restarts: %s",
                        s.info.name,
                        s.info.restarts,
                        s.info.last_error,
                        exc_info=exc,  # its traceback names the line of the task that raised
                    )
                    self._report()
                    return
                self._log.warning(
                    "background task '%s' raised %s; restarting in %.3g s",
                    s.info.name,
                    s.info.last_error,
                    delay,
                )
                s.info.state = "backoff"
                self._report()
                try:
                    await asyncio.sleep(delay)
                except asyncio.CancelledError:
                    s.info.state = "cancelled"
                    self._report()
                    raise
                delay = min(delay * 2, s.max_backoff)
                s.info.restarts += 1
                if self._metrics is not None:
                    with contextlib.suppress(Exception):
                        self._metrics.increment("task_restarts", task=s.info.name)
            else:
                s.info.state = "done"
                self._report()
                return

    def _not_awaitable(self, s: _Supervised, result: object) -> None:
        """A factory that gave no awaitable (a plain ``def``): it already ran once, and
        running it again would not make it one, so the task fails now, saying so."""
        s.info.last_error = (
            f"TypeError: '{s.info.name}' returned {type(result).__name__}, not a coroutine: "
            "spawn needs an 'async def' method (or a function returning a coroutine); "
            "for blocking work, await asyncio.to_thread(...) inside one"
        )
        s.info.state = "failed"
        self._log.error("background task '%s' failed: %s", s.info.name, s.info.last_error)
        self._report()

    def _report(self) -> None:
        metrics = self._metrics
        if metrics is None:
            return
        counts = dict.fromkeys(STATES, 0)
        with contextlib.suppress(Exception):  # a plugin's own metric of the same name
            for s in self._tasks.values():
                counts[s.info.state] += 1
                for state in STATES:
                    metrics.gauge(
                        "task_state", 1.0 if s.info.state == state else 0.0,
                        task=s.info.name, state=state,
                    )  # fmt: skip
            for state, n in counts.items():
                metrics.gauge("tasks", float(n), state=state)
