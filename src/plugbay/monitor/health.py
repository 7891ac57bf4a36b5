"""Health: liveness, readiness, and the green / degraded / failing they add up to.

* **Liveness** — a plugin in a worker is live while its worker answers its
  heartbeat; an inline plugin is live while the host's event loop turns.
  :class:`LoopWatchdog` is a thread that asks the loop to answer four times a
  second; when it does not for ``block_after`` seconds, the thread takes the
  loop thread's stack at that moment and names the plugin whose code is on it.
  That is how an inline plugin that deadlocks or sleeps on the loop shows up. A
  loop found waiting in its selector is not asked, and looked at again only after
  twice the time: it turns as soon as anything wakes it, and asking would wake an
  idle host four times a second for nothing (on a virtual machine each wake-up of
  an idle process costs about a millisecond of CPU, docs/architecture.md). A loop
  that is not running at all (an application between two ``asyncio.Runner.run``
  calls) is not blocked either: that time is never counted as a block.
* **Readiness** — a plugin may have a ``health`` command; the monitor runs it
  every few seconds, bounded by a timeout (a health check that hangs is itself
  a failing answer, never a stuck host). It may return ``True``/``False``,
  ``"green"``/``"degraded"``/``"failing"``, or ``{"status": ..., "reason": ...}``.
* **Status** — failing: the plugin failed, is not live, or says it is failing;
  degraded: it says so, its health check could not answer, or an alert fires;
  green otherwise. Disabled and stopped plugins, and one restarting after a crash
  (its restarts have an alert rule of their own), are shown, not rated. The
  host's overall status is the worst rated one.
"""

from __future__ import annotations

import asyncio
import selectors
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

__all__ = ["RANK", "Blocked", "LoopWatchdog", "Readiness", "overall", "readiness_from"]

Status = Literal["green", "degraded", "failing"]
RANK: Final[dict[str, int]] = {"green": 0, "degraded": 1, "failing": 2}


@dataclass(slots=True)
class Readiness:
    status: Status
    reason: str | None = None
    checked: float = field(default_factory=time.time)


def readiness_from(answer: Any) -> Readiness:
    """What a plugin's ``health()`` answered, as a readiness."""
    if answer is None or answer is True:
        return Readiness("green")
    if answer is False:
        return Readiness("failing", "health() answered false")
    if isinstance(answer, str) and answer in RANK:
        return Readiness(answer)  # type: ignore[arg-type]
    if isinstance(answer, dict):
        status = answer.get("status", "green" if answer.get("ok", True) else "failing")
        if status in RANK:
            reason = answer.get("reason")
            return Readiness(status, str(reason) if reason is not None else None)
    return Readiness(
        "degraded",
        f"health() answered {answer!r}; expected a bool, 'green'/'degraded'/'failing', "
        "or {'status': ..., 'reason': ...}",
    )


def overall(statuses: Iterable[str]) -> Status:
    worst: Status = "green"
    for status in statuses:
        if status in RANK and RANK[status] > RANK[worst]:
            worst = status  # type: ignore[assignment]
    return worst


@dataclass(frozen=True, slots=True)
class Blocked:
    """One stretch of time the host's loop did not turn."""

    started: float
    seconds: float
    stack: str
    #: the plugin whose code was on the loop's stack (None: the host's own, or unknown)
    plugin: str | None
    ongoing: bool = False


def _waiting_codes() -> frozenset[object]:
    """The code of the innermost Python frame of a loop thread that waits for events:
    a selector's ``select`` (asyncio's loops), or ``asyncio.Runner.run`` for a loop
    written in C (uvloop under ``asyncio.run``, ``uvloop.run`` or ``plugbay run``:
    while it waits, or runs only its own C code, no Python frame is above it)."""
    codes: set[object] = {asyncio.Runner.run.__code__}
    for name in ("SelectSelector", "PollSelector", "EpollSelector", "DevpollSelector",
                 "KqueueSelector"):  # fmt: skip
        selector = getattr(selectors, name, None)
        if selector is not None:
            codes.add(selector.select.__code__)
    return frozenset(codes)


_WAITING: Final = _waiting_codes()


class LoopWatchdog:
    """A daemon thread that notices the host's event loop not turning (see module doc).

    ``owner_of(filename)`` names the plugin a source file belongs to. Finished
    blocks are kept in :attr:`episodes` for the monitor to report; the one in
    progress is :meth:`current`.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        owner_of: Callable[[str], str | None],
        *,
        block_after: float = 1.0,
        on_block: Callable[[Blocked], None] | None = None,
    ) -> None:
        self._loop = loop
        self._owner_of = owner_of
        self.block_after = block_after
        self._on_block = on_block
        self._last_turn = time.monotonic()
        self._loop_thread = threading.get_ident()
        self._stop = threading.Event()
        self._block: tuple[float, float, str, str | None] | None = None  # wall, mono, stack, who
        self.episodes: list[Blocked] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="plugbay-loop-watchdog", daemon=True)
        #: times the loop was asked to answer (a loop found waiting is not)
        self.asked = 0
        #: times the thread looked at the loop
        self.looks = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _turned(self) -> None:
        self._last_turn = time.monotonic()

    def current(self) -> Blocked | None:
        block = self._block
        if block is None:
            return None
        wall, mono, stack, who = block
        return Blocked(wall, time.monotonic() - mono, stack, who, ongoing=True)

    def take(self) -> list[Blocked]:
        with self._lock:
            episodes, self.episodes = self.episodes, []
        return episodes

    def _run(self) -> None:
        period = wait = min(0.25, self.block_after / 4)
        while not self._stop.wait(wait):
            self.looks += 1
            wait = period
            if not self._loop.is_running():
                # between an application's runs (``asyncio.Runner.run`` after
                # ``Runner.run``): no loop runs, so none is blocked, the host's least of
                # all; a block is what a running loop does without turning
                self._last_turn = time.monotonic()
                wait = 2 * period
            elif self._waiting():  # idle: it turns when woken, and a block needs a turn
                self._last_turn = time.monotonic()
                # a block that starts after this look is still caught at the look
                # ``block_after`` later, every look after the next one ``period`` apart
                wait = 2 * period
            else:
                try:
                    self._loop.call_soon_threadsafe(self._turned)
                except RuntimeError:  # the loop closed
                    return
                self.asked += 1
            silent = time.monotonic() - self._last_turn
            if silent >= self.block_after and self._block is None:
                stack, who = self._stack()
                self._block = (time.time() - silent, self._last_turn, stack, who)
                if self._on_block is not None:
                    self._on_block(Blocked(time.time() - silent, silent, stack, who, ongoing=True))
            elif silent < self.block_after and self._block is not None:
                wall, mono, stack, who = self._block
                self._block = None
                with self._lock:
                    self.episodes.append(Blocked(wall, self._last_turn - mono, stack, who))

    def _waiting(self) -> bool:
        """Whether the loop thread waits for events now (its innermost Python frame is
        its selector's wait); any other frame, or none known, and the loop is asked."""
        frame = sys._current_frames().get(self._loop_thread)
        return frame is not None and frame.f_code in _WAITING

    def _stack(self) -> tuple[str, str | None]:
        frame = sys._current_frames().get(self._loop_thread)
        if frame is None:
            return "(the loop thread's stack is not available)", None
        summary = traceback.extract_stack(frame)
        who = None
        for entry in reversed(summary):  # the innermost plugin frame is the culprit
            who = self._owner_of(entry.filename)
            if who is not None:
                break
        return "".join(traceback.format_list(summary)), who
