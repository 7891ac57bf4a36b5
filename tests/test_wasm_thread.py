"""A Wasm instance's thread (isolation/_wasm_thread.py): a lone short job is answered in
place, without a turn of the loop; anything longer never holds the loop past IN_PLACE."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from plugbay.isolation._wasm_thread import IN_PLACE, Closed, InstanceThread
from tests._waiting import until


def _thread() -> tuple[InstanceThread, threading.Event]:
    exited = threading.Event()
    return InstanceThread("plugbay-wasm-test", exited.set), exited


async def test_a_lone_short_job_is_answered_without_a_turn_of_the_loop() -> None:
    thread, exited = _thread()
    loop = asyncio.get_running_loop()
    try:
        await thread.run(loop, lambda: None)  # the thread is up and idle
        answers = []
        for i in range(20):
            turned: list[bool] = []
            loop.call_soon(turned.append, True)
            answers.append(await thread.run(loop, lambda i=i: i * 2))
            answers.append(not turned)  # answered before the loop ran anything else
        # in place nearly always (a preempted instance thread may miss IN_PLACE now and then)
        assert answers[0::2] == [i * 2 for i in range(20)]
        assert sum(answers[1::2]) >= 10
    finally:
        thread.close()
    assert await asyncio.to_thread(exited.wait, 10)


async def test_a_slow_job_lets_the_loop_run_and_the_next_one_is_awaited() -> None:
    thread, _ = _thread()
    loop = asyncio.get_running_loop()
    release = threading.Event()
    ticks = 0

    async def ticking() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(ticking())
    try:
        job = asyncio.ensure_future(thread.run(loop, lambda: release.wait(30)))
        await asyncio.sleep(0)
        before, started = ticks, time.monotonic()
        await until(lambda: ticks >= before + 100, "the loop turns while the job waits")
        release.set()
        assert await job is True
        assert time.monotonic() - started < 10
        assert thread.slow  # it outlasted IN_PLACE: the next job is not waited for
        turned: list[bool] = []
        loop.call_soon(turned.append, True)
        assert await thread.run(loop, lambda: "next") == "next"
        assert turned  # awaited: the loop ran meanwhile
        assert not thread.slow  # and that one was short again
    finally:
        ticker.cancel()
        thread.close()


async def test_a_job_that_needs_the_loop_is_answered_after_the_in_place_wait() -> None:
    """A module's service call runs a coroutine on the loop and waits for it: waited for
    in place, it would wait for a loop that waits for it; past IN_PLACE the loop runs it."""
    thread, _ = _thread()
    loop = asyncio.get_running_loop()

    async def service() -> str:
        return "from the loop"

    def job() -> Any:
        return asyncio.run_coroutine_threadsafe(service(), loop).result(30)

    try:
        started = time.monotonic()
        assert await thread.run(loop, job) == "from the loop"
        assert time.monotonic() - started < 10
    finally:
        thread.close()


async def test_what_a_job_raises_reaches_its_caller_in_place_or_awaited() -> None:
    thread, _ = _thread()
    loop = asyncio.get_running_loop()

    def fails() -> None:
        raise ValueError("the job's own")

    def fails_slowly() -> None:
        time.sleep(IN_PLACE * 20)
        raise ValueError("the job's own, later")

    try:
        with pytest.raises(ValueError, match="the job's own"):
            await thread.run(loop, fails)
        with pytest.raises(ValueError, match="later"):
            await thread.run(loop, fails_slowly)
        assert await thread.run(loop, lambda: "still serving") == "still serving"
    finally:
        thread.close()


async def test_jobs_at_once_run_in_order_and_a_job_after_close_is_refused() -> None:
    thread, exited = _thread()
    loop = asyncio.get_running_loop()
    order: list[int] = []

    def job(i: int) -> int:
        time.sleep(0.001)
        order.append(i)
        return i

    results = await asyncio.gather(*(thread.run(loop, lambda i=i: job(i)) for i in range(8)))
    assert results == list(range(8)) and order == list(range(8))
    gate = threading.Event()
    first = asyncio.ensure_future(thread.run(loop, lambda: gate.wait(30)))
    queued = asyncio.ensure_future(thread.run(loop, lambda: "queued before the close"))
    await asyncio.sleep(0)
    thread.close()
    with pytest.raises(Closed):
        await thread.run(loop, lambda: "after the close")
    gate.set()
    assert await first is True
    assert await queued == "queued before the close"
    assert await asyncio.to_thread(exited.wait, 10)
