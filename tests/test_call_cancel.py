"""A call its caller cancels (a client gone, a ``wait_for`` run out) still ends its
sampling period: the command's next calls are timed as before, so its latency figures
and a canary's turns go on (monitor.metrics.CommandStats, runtime.calling)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from plugbay.runtime.host import Host
from tests.conftest import PluginFactory
from tests.test_recorder_route import SLOW  # one command: wait(seconds) sleeps


async def _cancelled(call: asyncio.Task[object]) -> None:
    for _ in range(5):  # until the call is under way in the plugin
        await asyncio.sleep(0)
    call.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await call
    assert call.cancelled()


async def test_a_cancelled_call_leaves_the_next_calls_timed(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.napper", SLOW)
    async with make_host() as host:
        await _cancelled(asyncio.create_task(host.call("acme.napper", "wait", seconds=60)))
        for _ in range(5):
            assert await host.call("acme.napper", "wait", seconds=0) == 0
        record = host.plugin("acme.napper")
        assert record.metrics is not None
        stats = record.metrics.commands["wait"]
        assert stats.calls == 6 and stats.errors == 0  # a caller's cancel is nobody's error
        assert stats.timed == 5  # the first ALWAYS calls are each timed; none was lost


async def test_a_cancelled_batch_leaves_the_next_calls_timed(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.napper", SLOW)
    async with make_host() as host:
        batch = host.call_many("acme.napper", "wait", [{"seconds": 60}] * 3)
        await _cancelled(asyncio.create_task(batch))
        assert await host.call_many("acme.napper", "wait", [{"seconds": 0}] * 2) == [0, 0]
        record = host.plugin("acme.napper")
        assert record.metrics is not None
        stats = record.metrics.commands["wait"]
        assert stats.calls == 5 and stats.errors == 0
        assert stats.timed == 1  # a batch times one item of its sampling period
