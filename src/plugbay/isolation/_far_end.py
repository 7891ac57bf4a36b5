"""Whether the far end of a silent Ray plugin is still there, asked through Ray.

A plain ``def`` command holds its worker's loop, so the heartbeat waits for it up to
its time limit (``heartbeat.held_by``). On this machine a worker that dies closes its
socket at once. A Ray node whose machine vanishes (powered off, cut off) closes
nothing, and its silence looks the same as the command's. So while a def command
holds a remote worker's heartbeat, another process on its node is asked through Ray
whether it is there: the node's plugbay agent, or the bare actor's own Ray thread
(which answers whatever its plugin's loop is doing). An ask that gets no answer
within :data:`ASK_WITHIN` makes the silence a hang, as anywhere else: the worker is
killed and its node passed over.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Final

from plugbay.isolation.process import ProcessHandle

__all__ = ["ASK_EVERY", "ASK_WITHIN", "STACKS_WITHIN", "FarEnd", "FarHandle"]

#: seconds between two asks while a def command holds the heartbeat
ASK_EVERY: Final = 0.5
#: seconds an ask may take before the far end counts as gone
ASK_WITHIN: Final = 1.0
#: seconds a hung remote worker's stacks are waited for before it is killed without them
STACKS_WITHIN: Final = 1.5


class FarEnd:
    """The last word of a remote plugin's node: when it last answered, and when an ask
    last went unanswered (loop time)."""

    __slots__ = ("_ask", "_asked_at", "_asking", "_loop", "answered_at", "unanswered_at")

    def __init__(self, ask: Callable[[], Awaitable[object]]) -> None:
        self._ask = ask
        #: the loop its handle lives on (made on it): the only one that asks
        self._loop = asyncio.get_running_loop()
        self.answered_at = -math.inf
        self.unanswered_at = -math.inf
        self._asked_at = -math.inf
        self._asking: asyncio.Task[None] | None = None

    @property
    def gone(self) -> bool:
        """The last ask went unanswered (no answer came after it)."""
        return self.unanswered_at > self.answered_at

    def there(self, now: float) -> bool:
        """False once an ask went unanswered since the last answer; asks again every
        :data:`ASK_EVERY` seconds (only from its handle's loop: from another thread, a
        scrape's, what is known is the answer)."""
        if self._asking is None and now - self._asked_at >= ASK_EVERY and self._on_loop():
            self._asked_at = now
            self._asking = self._loop.create_task(self._probe(), name="plugbay-far-end")
        return not self.gone

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    async def _probe(self) -> None:
        try:
            async with asyncio.timeout(ASK_WITHIN):
                await self._ask()
        except Exception:  # no answer in time, or Ray's word that it is gone
            self.unanswered_at = self._loop.time()
        else:
            self.answered_at = self._loop.time()
        finally:
            self._asking = None

    def stop(self) -> None:
        if self._asking is not None:
            self._asking.cancel()


class FarHandle(ProcessHandle):
    """A process handle whose worker is on another machine (``ray.RayHandle``): its
    heartbeat's verdict waits for a def command only while its node answers (``_far``),
    and its stacks, read on its node, are never waited for on the loop."""

    _far: FarEnd

    def _node_gone(self) -> None:
        """Its node did not answer: placing plugins there is avoided for a while."""
        raise NotImplementedError

    def _held(self, now: float) -> str | None:
        """As on this machine, while its node answers for it: a machine that vanished
        closes no socket, and is as silent as a def command."""
        held = super()._held(now)
        return held if held is not None and self._far.there(now) else None

    def _hung(self, silent: float) -> None:
        if self._far.gone:  # its node did not answer either: nobody to ask for stacks
            self._node_gone()
            self._kill_hung(silent, "(none: its node did not answer)")
            return
        task = asyncio.get_running_loop().create_task(self._hung_with_stacks(silent))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _hung_with_stacks(self, silent: float) -> None:
        """Its stacks come from its node (a Ray call of up to 5 s): asked in a thread,
        waited for :data:`STACKS_WITHIN` seconds, then it is killed with or without them
        (a read that fails, or the host stopping meanwhile, kills it all the same)."""
        stacks = f"(not given by its node within {STACKS_WITHIN:g} s)"
        try:
            async with asyncio.timeout(STACKS_WITHIN):
                stacks = await asyncio.to_thread(self.dump_stacks, tasks=False)
        except TimeoutError:
            pass
        except Exception as exc:
            stacks = f"(none: {exc})"
        finally:
            self._kill_hung(silent, stacks)
