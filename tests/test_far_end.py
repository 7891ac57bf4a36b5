"""``isolation._far_end``: a remote plugin's node is asked while a def command holds
its heartbeat; an ask that goes unanswered makes the silence a hang."""

from __future__ import annotations

import asyncio
import threading

from plugbay.isolation._far_end import ASK_WITHIN, FarEnd
from tests._waiting import until


class Node:
    """Answers at once, or never (a frozen machine)."""

    def __init__(self) -> None:
        self.frozen = False
        self.asked = 0

    async def here(self) -> bool:
        self.asked += 1
        if self.frozen:
            await asyncio.Event().wait()
        return True


async def test_the_far_end_is_there_while_it_answers_and_gone_once_an_ask_is_unanswered() -> None:
    loop, node = asyncio.get_running_loop(), Node()
    far = FarEnd(node.here)
    assert far.there(loop.time())  # asked now: there until the ask says otherwise
    await until(lambda: far.answered_at > 0, "the first answer")
    assert far.there(loop.time()) and not far.gone
    node.frozen = True
    frozen = loop.time()
    await until(lambda: not far.there(loop.time()), "the unanswered ask", seconds=10)
    assert far.gone and loop.time() - frozen >= ASK_WITHIN  # it had its time to answer
    node.frozen = False  # it answers again: there again
    await until(lambda: far.there(loop.time()), "an answer after the thaw", seconds=10)
    far.stop()


async def test_asked_from_another_thread_it_says_what_is_known_and_asks_nothing() -> None:
    loop, node = asyncio.get_running_loop(), Node()
    far = FarEnd(node.here)
    seen: list[bool] = []
    thread = threading.Thread(target=lambda: seen.append(far.there(loop.time())))
    thread.start()
    thread.join()
    assert seen == [True] and node.asked == 0  # no answer yet, none missed either


async def test_an_error_from_ray_counts_as_no_answer() -> None:
    async def gone() -> bool:
        raise RuntimeError("the actor died")

    loop = asyncio.get_running_loop()
    far = FarEnd(gone)
    far.there(loop.time())
    await until(lambda: far.gone, "the failed ask")
    assert not far.there(loop.time())
    far.stop()
