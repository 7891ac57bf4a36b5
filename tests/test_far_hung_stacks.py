"""A hung worker on another machine is killed whatever its stack read does.

``FarHandle._hung_with_stacks`` (a Ray worker's) asks the node for the worker's stacks
in a thread and then kills it. It caught only the time-out: a read that raised (the
node's answer refused, the worker gone meanwhile) ended the task with the worker never
killed, its hang unwatched. A unit test of that code around the kill: the handle is
made without its Ray parts, its read and its kill stood in for.
"""

from __future__ import annotations

import asyncio

import pytest

from plugbay.isolation._far_end import STACKS_WITHIN, FarHandle


class _Far(FarHandle):
    def __init__(self, read: object) -> None:  # none of a real handle's parts are used
        self.read = read
        self.killed: list[tuple[float, str]] = []

    def dump_stacks(self, *, tasks: bool = True) -> str:
        if isinstance(self.read, BaseException):
            raise self.read
        if self.read == "slow":
            import time

            time.sleep(STACKS_WITHIN + 0.5)
        return str(self.read)

    def _kill_hung(self, silent: float, stacks: str) -> None:
        self.killed.append((silent, stacks))


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("read", "said"),
    [
        ("Thread 0x1 (most recent call first):", "Thread 0x1 (most recent call first):"),
        (OSError("its node refused the read"), "(none: its node refused the read)"),
        (RuntimeError("the actor is gone"), "(none: the actor is gone)"),
        ("slow", f"(not given by its node within {STACKS_WITHIN:g} s)"),
    ],
)
async def test_a_hung_far_worker_is_killed_whatever_its_stack_read_does(
    read: object, said: str
) -> None:
    handle = _Far(read)
    await handle._hung_with_stacks(7.0)
    assert handle.killed == [(7.0, said)]


@pytest.mark.asyncio
async def test_a_far_worker_is_killed_when_the_host_stops_during_the_read() -> None:
    handle = _Far("slow")
    task = asyncio.create_task(handle._hung_with_stacks(3.0))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [s for s, _ in handle.killed] == [3.0]
