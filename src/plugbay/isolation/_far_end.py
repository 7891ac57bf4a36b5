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

__all__ = ["ASK_EVERY", "ASK_WITHIN", "FarEnd"]

#: seconds between two asks while a def command holds the heartbeat
ASK_EVERY: Final = 0.5
#: seconds an ask may take before the far end counts as gone
ASK_WITHIN: Final = 1.0


class FarEnd:
    """The last word of a remote plugin's node: when it last answered, and when an ask
    last went unanswered (loop time)."""

    __slots__ = ("_ask", "_asked_at", "_asking", "answered_at", "unanswered_at")

    def __init__(self, ask: Callable[[], Awaitable[object]]) -> None:
        self._ask = ask
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
        :data:`ASK_EVERY` seconds (only from the loop's thread: from another, a scrape's,
        what is known is the answer)."""
        if self._asking is None and now - self._asked_at >= ASK_EVERY:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                pass
            else:
                self._asked_at = now
                self._asking = loop.create_task(self._probe(loop), name="plugbay-far-end")
        return not self.gone

    async def _probe(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            async with asyncio.timeout(ASK_WITHIN):
                await self._ask()
        except Exception:  # no answer in time, or Ray's word that it is gone
            self.unanswered_at = loop.time()
        else:
            self.answered_at = loop.time()
        finally:
            self._asking = None

    def stop(self) -> None:
        if self._asking is not None:
            self._asking.cancel()
