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
from typing import Final, Protocol

__all__ = ["TICK", "Beating", "Pulse", "pulse_for"]

log = logging.getLogger("plugbay.isolation.heartbeat")

#: seconds between two ticks of a loop's heartbeat
TICK: Final = 0.2


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
