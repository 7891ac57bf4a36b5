"""The loop watchdog (monitor/health.py): a blocked loop is caught with its stack, and an
idle loop is never woken to prove it turns (an idle host must cost nothing)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from plugbay.monitor.health import Blocked, LoopWatchdog


def _loops() -> list[Any]:
    makers: list[Any] = [pytest.param(None, id="asyncio")]
    try:
        import uvloop
    except ImportError:
        return makers
    return [*makers, pytest.param(uvloop.new_event_loop, id="uvloop")]


def _run(
    factory: Callable[[], asyncio.AbstractEventLoop] | None, main: Coroutine[Any, Any, Any]
) -> Any:
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def _looked(watchdog: LoopWatchdog, looks: int, bound: float = 30.0) -> None:
    """In a thread: wait until the watchdog has looked at the loop ``looks`` more times."""
    target, end = watchdog.looks + looks, time.monotonic() + bound
    while watchdog.looks < target:
        if time.monotonic() > end:
            raise AssertionError(f"the watchdog looked {watchdog.looks} times, not {target}")
        time.sleep(0.01)


@pytest.mark.parametrize("factory", _loops())
def test_an_idle_loop_is_not_woken_by_the_watchdog(
    factory: Callable[[], asyncio.AbstractEventLoop] | None,
) -> None:
    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        watchdog = LoopWatchdog(loop, lambda _f: None, block_after=0.2)
        watchdog.start()
        try:
            # the loop waits in its selector while a thread counts the watchdog's looks
            await asyncio.to_thread(_looked, watchdog, 2)
            asked = watchdog.asked
            await asyncio.to_thread(_looked, watchdog, 6)
            return watchdog.asked - asked, len(watchdog.take())
        finally:
            watchdog.stop()

    asked, blocks = _run(factory, main())
    # each look found it waiting; the one look that may overlap the thread's answer
    # coming back (the loop turning) is allowed
    assert asked <= 1
    assert blocks == 0


@pytest.mark.parametrize("factory", _loops())
def test_a_blocked_loop_is_still_caught_with_its_stack(
    factory: Callable[[], asyncio.AbstractEventLoop] | None,
) -> None:
    seen: list[Blocked] = []
    caught = threading.Event()

    def on_block(block: Blocked) -> None:
        seen.append(block)
        caught.set()

    def blocking_plugin_code() -> None:
        if not caught.wait(30):  # blocks the loop's thread until the watchdog says so
            raise AssertionError("the watchdog never caught the blocked loop")

    async def main() -> list[Blocked]:
        loop = asyncio.get_running_loop()
        watchdog = LoopWatchdog(
            loop,
            lambda f: "acme.bad" if f == __file__ else None,
            block_after=0.2,
            on_block=on_block,
        )
        watchdog.start()
        try:
            await asyncio.to_thread(_looked, watchdog, 2)  # idle first: not asked
            blocking_plugin_code()
            await asyncio.to_thread(_looked, watchdog, 2)  # turning again: the block ends
            return watchdog.take()
        finally:
            watchdog.stop()

    ended = _run(factory, main())
    assert seen and seen[0].ongoing and seen[0].plugin == "acme.bad"
    assert "blocking_plugin_code" in seen[0].stack
    assert len(ended) == 1 and ended[0].seconds >= 0.2 and not ended[0].ongoing
