"""One heartbeat timer for all of a loop's workers, pinging busy workers often and idle ones rarely.

A timer task per worker (and another per storage quota) made a thousand idle
sandboxed plugins cost the host about one core: ten thousand wake-ups a second,
each a few Python frames, before any worker answered. Here one task per event
loop ticks every :data:`TICK` seconds and asks each worker's handle what is due
(:meth:`Beating.pulse`): a ping, a look at its storage image, or the verdict
that it is hung. The handle decides the cadence from its own activity, so a
busy worker is watched as closely as before (a ping every tick, killed after
``heartbeat_timeout`` without an answer) while an idle one costs a ping every
few seconds. An idle worker that hangs harms no caller; the first call it gets
makes it busy again, and it is then found within ``heartbeat_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass
from typing import Final, Protocol

from plugbay.api.errors import PluginCrashed

__all__ = ["TICK", "Beat", "Beating", "Pulse", "hung_error", "pulse_for"]

log = logging.getLogger("plugbay.isolation.heartbeat")

#: seconds between two ticks of a loop's heartbeat
TICK: Final = 0.2


@dataclass(slots=True)
class Beat:
    """One worker's heartbeat: when it was last asked and answered, and its cadence."""

    #: seconds between pings while busy, and silence after which the worker counts as hung
    interval: float = 0.2
    timeout: float = 1.0
    #: no request for this long: idle, pinged every ``idle_interval`` seconds
    idle_after: float = 2.0
    idle_interval: float = 5.0
    last_pong: float = 0.0
    #: when the ping not yet answered left (loop time), or None
    pinged_at: float | None = None
    #: when a request last went to the worker (loop time): busy or idle
    last_used: float = 0.0

    def busy(self, now: float, pending: bool) -> bool:
        return pending or now - self.last_used < self.idle_after

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
        if self.pinged_at is not None:
            return "hung" if now - self.pinged_at > self.timeout else None
        every = self.interval if busy else self.idle_interval
        return "ping" if now - self.last_pong >= every - 0.01 else None

    def silent(self, now: float) -> float:
        """Seconds the ping now out has gone unanswered (0 when none is out)."""
        return 0.0 if self.pinged_at is None else now - self.pinged_at


class Beating(Protocol):
    """What the pulse needs of a worker's handle."""

    def pulse(self, now: float, stalled: float) -> bool:
        """Do what is due at loop time ``now`` (``stalled``: seconds the host's own loop did
        not run, which is not the worker's silence); False once it needs no more ticks."""
        ...


class Pulse:
    """The ticking task of one event loop, and the workers it ticks for."""

    def __init__(self, loop: asyncio.AbstractEventLoop, tick: float = TICK) -> None:
        self._loop = loop
        self.tick = tick
        self._members: dict[Beating, None] = {}  # insertion-ordered set
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._members)

    def join(self, member: Beating) -> None:
        self._members[member] = None
        if self._task is None or self._task.done():
            self._task = self._loop.create_task(self._run(), name="plugbay-heartbeat")

    def leave(self, member: Beating) -> None:
        self._members.pop(member, None)

    async def _run(self) -> None:
        loop = self._loop
        while self._members:
            before = loop.time()
            await asyncio.sleep(self.tick)
            now = loop.time()
            stalled = now - before - self.tick
            for member in list(self._members):
                try:
                    keep = member.pulse(now, stalled)
                except Exception:  # one handle's bug must not stop every heartbeat
                    log.exception("a worker's heartbeat failed")
                    keep = False
                if not keep:
                    self._members.pop(member, None)


_pulses: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Pulse] = weakref.WeakKeyDictionary()


def pulse_for(loop: asyncio.AbstractEventLoop) -> Pulse:
    """The running loop's pulse (made on first use)."""
    pulse = _pulses.get(loop)
    if pulse is None:
        pulse = _pulses[loop] = Pulse(loop)
    return pulse


def hung_error(plugin: str, pid: int, silent: float) -> PluginCrashed:
    """What the callers of a worker killed for a silent heartbeat are told."""
    return PluginCrashed(
        f"its worker stopped answering its heartbeat ({silent:.1f} s without a reply) "
        "and was killed",
        plugin=plugin,
        hint="a def command must not block its worker's loop "
        "(mark long ones @command(blocking=True))",
        details={"pid": pid, "layer": "heartbeat"},
    )
