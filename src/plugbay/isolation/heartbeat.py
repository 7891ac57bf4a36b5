"""One heartbeat timer for all of a loop's workers: busy workers are pinged often, idle ones rest.

A timer task per worker (and another per storage quota) made a thousand idle
sandboxed plugins cost the host about one core: ten thousand wake-ups a second,
each a few Python frames, before any worker answered. Here one task per event
loop ticks every :data:`TICK` seconds and asks each *awake* worker's handle what
is due (:meth:`Beating.pulse`): a ping, a look at its storage image, or the
verdict that it is hung. A busy worker is watched as closely as ever (a ping
every tick, killed after ``heartbeat_timeout`` without an answer).

A worker idle for ``idle_after`` seconds *rests*: it leaves the tick and is
visited once every :data:`SWEEP` seconds (its storage image's look), and pinged
only every ``idle_ping`` seconds (5 min). While every worker rests the task sleeps
until the next visit (a request that wakes a worker wakes the task too): a thousand
resting workers cost a statvfs each every 30 s and nothing in between. (Every 15 s,
and a ping a minute, cost a thousand idle workers 1.3% of a core in their own
answers, and the host as much again, on a virtual machine where waking from idle is
dear.) A ping is there to find a *hung* loop, which
harms a caller only while a call is in flight; a worker's *death* is seen at
once without one (the zygote's word on its exit, the socket's end). The first
request to a resting worker wakes it (:attr:`Beat.last_used` is set on every
request): within a tick it is pinged, and a hung loop is found within
``heartbeat_timeout`` as before. The rare idle ping still finds a worker hung
while idle, and brings the plugin's own metrics changed by its background tasks.

A plain ``def`` command runs in its worker's loop, which answers no ping until it
returns: while such a call is in flight within its time limit the silence is that
call's, and the verdict waits for it (:func:`held_by`). A command that needs more than
the heartbeat's second is not a hang; one past its deadline still holding the loop is.
Its worker reads the ping only once it returns, so the pong comes after the command's
answer, and may come a moment later: the worker has :attr:`Beat.timeout` from when the
call was last seen holding it (:meth:`Beat.held`).

A worker's handle leaves the pulse once it stops (:meth:`Pulse.leave`); the task ends
with the last one, and a stopping host waits for that end (:meth:`Pulse.quiet`): a
program that closes its own loop after the host's stop finds no task of plugbay's still
pending there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from typing import Final, Protocol

from plugbay.api.errors import PluginCrashed

__all__ = ["SWEEP", "TICK", "Beat", "Beating", "Pulse", "held_by", "hung_error", "pulse_for"]

log = logging.getLogger("plugbay.isolation.heartbeat")

#: seconds between two ticks of a loop's heartbeat
TICK: Final = 0.2
#: seconds between two visits of a resting (idle) worker
SWEEP: Final = 30.0


class Beat:
    """One worker's heartbeat: when it was last asked and answered, and its cadence."""

    __slots__ = (
        "_last_used", "holder", "idle_after", "idle_interval", "idle_ping", "interval",
        "last_pong", "pinged_at", "timeout", "wake",
    )  # fmt: skip

    def __init__(self) -> None:
        #: seconds between pings while busy, and silence after which the worker counts as hung
        self.interval = 0.2
        self.timeout = 1.0
        #: no request for this long: idle (resting), its storage looked at every
        #: ``idle_interval`` seconds and pinged every ``idle_ping`` seconds
        self.idle_after = 2.0
        self.idle_interval = SWEEP
        self.idle_ping = 300.0
        self.last_pong = 0.0
        #: when the ping not yet answered left (loop time), or None
        self.pinged_at: float | None = None
        #: the def call last seen holding the verdict on that ping: (the ping's time, when
        #: seen, the call's label), or None
        self.holder: tuple[float, float, str] | None = None
        self._last_used = 0.0
        #: set while the worker rests: called (once) by the next request, to wake it
        self.wake: Callable[[], None] | None = None

    @property
    def last_used(self) -> float:
        """When a request last went to the worker (loop time): busy or idle."""
        return self._last_used

    @last_used.setter
    def last_used(self, now: float) -> None:
        self._last_used = now
        wake = self.wake
        if wake is not None:
            self.wake = None
            wake()

    def started(self, now: float) -> None:
        """The worker has just answered ``initialize``: answered, and idle at once.

        Nothing is in flight, so it rests from its first tick (one look at its storage
        image, no ping) instead of being pinged for ``idle_after`` seconds as if a caller
        had just used it: a thousand plugins starting together cost ten pings each, host
        and worker both woken, ten thousand in all, before any caller asked anything.
        Its first request wakes it, as any resting worker's."""
        self.last_pong = now
        self._last_used = now - self.idle_after

    def busy(self, now: float, pending: bool) -> bool:
        return pending or now - self._last_used < self.idle_after

    def answered(self, now: float) -> None:
        self.last_pong = now
        self.pinged_at = None

    def due(self, now: float, stalled: float, busy: bool) -> str | None:
        """ "hung", "ping" (then sent: call :meth:`pinged`), or None: nothing to do now."""
        if stalled > 0.05:
            # Time the host's own loop did not run (an application's blocking call) is not
            # the worker's silence: its pong may be waiting, unread, in the socket.
            self.last_pong += stalled
            if self.pinged_at is not None:
                self.pinged_at += stalled
            if self.holder is not None:
                ping, seen, label = self.holder
                self.holder = (ping + stalled, seen + stalled, label)
        if self.pinged_at is not None:
            return "hung" if now - self.pinged_at > self.timeout else None
        every = self.interval if busy else self.idle_ping
        return "ping" if now - self.last_pong >= every - 0.01 else None

    def held(self, now: float, label: str | None) -> str | None:
        """The def call whose silence this is, ``label`` as :func:`held_by` found it now.

        None found is not yet a hang when one held the same ping a moment ago: the worker
        reads that ping only after the call returns, so its pong comes behind the call's
        answer, maybe not yet read here. It has :attr:`timeout` from when the call was
        last seen holding it, as it had from the ping itself: without that, a tick (or an
        ``alive()``) between the answer and the pong took a worker that had just done its
        work for a hung one."""
        if label is not None and self.pinged_at is not None:
            self.holder = (self.pinged_at, now, label)
            return label
        holder = self.holder
        if holder is not None and holder[0] == self.pinged_at and now - holder[1] <= self.timeout:
            return holder[2]
        return None

    def silent(self, now: float) -> float:
        """Seconds the ping now out has gone unanswered (0 when none is out)."""
        return 0.0 if self.pinged_at is None else now - self.pinged_at


class Beating(Protocol):
    """What the pulse needs of a worker's handle."""

    beat: Beat

    def pulse(self, now: float, stalled: float) -> bool:
        """Do what is due at loop time ``now`` (``stalled``: seconds the host's own loop did
        not run, which is not the worker's silence); False once it needs no more ticks."""
        ...

    def _busy(self, now: float) -> bool:
        """Whether a call is in flight or one was made within ``beat.idle_after``."""
        ...


class Pulse:
    """The ticking task of one event loop, and the workers it ticks for: the awake ones
    every tick, the resting ones every :data:`SWEEP` seconds."""

    def __init__(self, loop: asyncio.AbstractEventLoop, tick: float = TICK) -> None:
        self._loop = loop
        self.tick = tick
        self.sweep = SWEEP
        self._members: dict[Beating, None] = {}  # awake: insertion-ordered set
        self._resting: dict[Beating, None] = {}
        self._task: asyncio.Task[None] | None = None
        #: the task's sleep while every worker rests (a join ends it early)
        self._nap: asyncio.Future[None] | None = None
        self._next_sweep = 0.0
        self._stalled_since_sweep = 0.0

    def __len__(self) -> int:
        return len(self._members) + len(self._resting)

    @property
    def resting(self) -> int:
        return len(self._resting)

    def join(self, member: Beating) -> None:
        self._resting.pop(member, None)
        member.beat.wake = None
        self._members[member] = None
        if self._task is None or self._task.done():
            self._task = self._loop.create_task(self._run(), name="plugbay-heartbeat")
        elif self._nap is not None and not self._nap.done():
            self._nap.set_result(None)  # tick for it from now on

    def leave(self, member: Beating) -> None:
        """``member`` needs no more ticks (its worker stopped); the task ends with the last."""
        self._members.pop(member, None)
        self._resting.pop(member, None)
        member.beat.wake = None
        if not self and self._nap is not None and not self._nap.done():
            self._nap.set_result(None)  # nothing left to wait for: the task ends now

    async def quiet(self) -> None:
        """End the task once no worker is left to tick for, and wait for its end (a host's
        stop, its workers gone); a pulse still ticking for another host's is left be."""
        task = self._task
        if task is None or self._members or self._resting:
            return
        self._task = None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def _rest(self, member: Beating) -> None:
        self._members.pop(member, None)
        self._resting[member] = None
        member.beat.wake = lambda: self.join(member)

    async def _run(self) -> None:
        loop = self._loop
        self._next_sweep = loop.time() + self.sweep
        while self._members or self._resting:
            before = loop.time()
            wait = self.tick if self._members else max(self.tick, self._next_sweep - before)
            await self._sleep(wait)
            now = loop.time()
            stalled = now - before - wait
            self._stalled_since_sweep += max(0.0, stalled)
            for member in list(self._members):
                # idle, with no answer awaited: it rests
                awake = self._visit(member, now, stalled)
                if awake and not member._busy(now) and member.beat.pinged_at is None:
                    self._rest(member)
            if now >= self._next_sweep:
                stalled, self._stalled_since_sweep = self._stalled_since_sweep, 0.0
                self._next_sweep = now + self.sweep
                for member in list(self._resting):
                    if not self._visit(member, now, stalled):
                        member.beat.wake = None
                        self._resting.pop(member, None)
                    elif member.beat.pinged_at is not None:  # its answer is looked for
                        self.join(member)

    async def _sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or until a worker joins the awake ones."""
        nap = self._nap = self._loop.create_future()
        timer = self._loop.call_later(seconds, _wake, nap)
        try:
            await nap
        finally:
            timer.cancel()
            self._nap = None

    def _visit(self, member: Beating, now: float, stalled: float) -> bool:
        try:
            keep = member.pulse(now, stalled)
        except Exception:  # one handle's bug must not stop every heartbeat
            log.exception("a worker's heartbeat failed")
            keep = False
        if not keep:
            self._members.pop(member, None)
        return keep


def _wake(nap: asyncio.Future[None]) -> None:
    if not nap.done():
        nap.set_result(None)


_pulses: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Pulse] = weakref.WeakKeyDictionary()


def pulse_for(loop: asyncio.AbstractEventLoop) -> Pulse:
    """The running loop's pulse (made on first use)."""
    pulse = _pulses.get(loop)
    if pulse is None:
        pulse = _pulses[loop] = Pulse(loop)
    return pulse


def held_by(
    inflight: Mapping[int, tuple[float, str, float, str]],
    inline: AbstractSet[str],
    pinged_at: float | None,
    now: float,
) -> str | None:
    """The call that may be all that keeps a silent worker from answering its ping, or None.

    A plain ``def`` command (or event handler) runs in its worker's loop, so the loop
    answers nothing else until it returns. That is the contract of a ``def`` command, not
    a hang: such a call (``inline``, as the worker named them when it loaded), sent before
    the ping still unanswered and within its time limit, holds the heartbeat's verdict
    until it returns or its deadline passes. A call sent after the ping cannot be what
    keeps the ping waiting, so a stream of new calls never keeps a hung worker alive:
    once every call that was ahead of the ping is answered or past its deadline, the
    silence is the worker's own. ``inflight`` is ``Requests.inflight`` (start, label,
    deadline, what)."""
    if pinged_at is None or not inline:
        return None
    for start, label, due, _what in list(inflight.values()):  # any thread: one copy
        if start <= pinged_at and due > now and label in inline:
            return label
    return None


def hung_error(plugin: str, pid: int, silent: float, overran: str | None = None) -> PluginCrashed:
    """What the callers of a worker killed for a silent heartbeat are told; ``overran``: the
    ``def`` command that was past its time limit in this silence (its caller had its
    timeout already)."""
    if overran is not None:
        return PluginCrashed(
            f"its worker stopped answering its heartbeat ({silent:.1f} s without a reply) "
            f"while '{overran}' ran past its time limit, and was killed",
            plugin=plugin,
            hint="a def command holds its worker's loop until it returns; one that can run "
            "past its time limit belongs in a thread: @command(blocking=True)",
            details={"pid": pid, "layer": "heartbeat", "command": overran},
        )
    return PluginCrashed(
        f"its worker stopped answering its heartbeat ({silent:.1f} s without a reply) "
        "and was killed",
        plugin=plugin,
        hint="a def command may hold its worker's loop up to its time limit, nothing else "
        "may: an async def command or background task that blocks belongs in "
        "@command(blocking=True) or asyncio.to_thread",
        details={"pid": pid, "layer": "heartbeat"},
    )
