"""A host's stop, step by step, each step run whatever an earlier one raised.

A stop that gave up at its first failure (a backend's ``close()`` raising) left the rest
undone: the monitor's and the event bus's tasks pending, the state open and its
directory locked, so no new host could start there until the process ended. Each step
is run here in its turn; a failure is logged on ``plugbay.host`` (what failed, what may
be left of it, what the operator may do), the next step runs, and once all have run the
first failure is raised, as it was raised (its own type: what a caller that awaited the
stop without this would have seen), with the host stopped and its directory unlocked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plugbay.runtime.host import Host

__all__ = ["StopSteps", "close_host"]

log = logging.getLogger("plugbay.host")


class StopSteps:
    """The failures of a stop's steps, the first raised once every step has run."""

    __slots__ = ("failed",)

    def __init__(self) -> None:
        self.failed: list[BaseException] = []

    async def run(self, what: str, left: str, step: Callable[[], Awaitable[object]]) -> None:
        """Run ``step``; a failure is kept and logged: ``what`` failed, ``left`` says
        what may be left of it and what to do. A cancel is kept (raised at the end)."""
        try:
            await step()
        except Exception as exc:
            self.failed.append(exc)
            log.error(
                "stopping the host: %s failed: %s: %s. The stop went on with its other "
                "steps; %s", what, type(exc).__name__, exc, left, exc_info=exc,
            )  # fmt: skip
        except BaseException as exc:  # cancelled: the rest still runs, then it is raised
            self.failed.append(exc)

    def raise_first(self) -> None:
        """Raise the first failure, if any (each was logged as it happened)."""
        if self.failed:
            first = self.failed[0]
            self.failed.clear()
            raise first


async def close_host(host: Host) -> None:
    """``Host._close``: every step of a stop, each whatever an earlier one raised; the
    host is stopped and its state directory unlocked even when one fails."""
    from plugbay.runtime.loop_closed import release

    host.phase = "stopping"
    host.manager.stop_requested = True
    steps = StopSteps()
    if host._started:

        async def say_stopping() -> None:
            host.events.emit("host.stopping")
            await host.events.drain()

        await steps.run(
            "telling listeners (host.stopping)", "some may not have heard it", say_stopping
        )
    await steps.run(
        "ending the canaries, shadows and recordings (runtime.trials)",
        "a recording may be unwritten; a canary's or shadow's worker ends with its backend",
        host.trials.close,
    )
    await host.manager.close(steps)
    if (monitor := host.monitor) is not None:
        await steps.run(
            "stopping the monitor",
            "its open alerts and plugin logs may not have been saved to the state",
            monitor.stop,
        )
    await steps.run(
        "closing the event bus", "events still queued were not delivered", host.events.close
    )
    await steps.run(
        "ending the periodic state backups",
        "a backup being taken is finished or removed by the next host's start",
        host._stop_backups,
    )
    if (store := host.store) is not None:  # the copies kept for rollback, before the state
        await steps.run(
            "closing the plugin store",
            "its files are as they were written; the next start reads them again",
            lambda: asyncio.to_thread(store.close),
        )

    async def let_go() -> None:
        release(host)  # the state closed, the lock released

    await steps.run(
        "closing the state and releasing the state directory's lock",
        "the lock goes with this process at the latest: end it if a new host is refused",
        let_go,
    )
    steps.raise_first()
