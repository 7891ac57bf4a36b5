"""A host embedded in an application with more than one event loop: a call awaited on
another thread's loop is refused before an inline plugin's command runs there, beside
its queues made on the host's loop; and a host is bound to the loop it first started on,
so a start on another (a second ``asyncio.run``) says to make a new ``Host``, while
another host serves the state directory at once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from plugbay import HostStateError
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory

T = TypeVar("T")

MAILBOX = """
import asyncio
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    async def initialize(self, ctx) -> None:
        self.box: asyncio.Queue[str] = asyncio.Queue()  # the host loop's
        self.loop = asyncio.get_running_loop()
        self.posted_from: list[bool] = []

    @command
    async def take(self) -> str:
        return await asyncio.wait_for(self.box.get(), 30)

    @command
    async def post(self, letter: str) -> None:
        self.posted_from.append(asyncio.get_running_loop() is self.loop)
        self.box.put_nowait(letter)

    @command
    def posts(self) -> list[bool]:
        return self.posted_from
"""


def test_an_inline_call_from_another_threads_loop_is_refused_before_it_runs(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.mailbox", MAILBOX)
    host = make_host()  # inline
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-host-loop")
    thread.start()

    def run(coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(30)

    try:
        run(host.start())
        assert host.plugin("acme.mailbox").isolation == "inline"
        taking = asyncio.run_coroutine_threadsafe(host.call("acme.mailbox", "take"), loop)
        with pytest.raises(HostStateError) as wrong:  # awaited on a loop of this thread
            asyncio.run(host.call("acme.mailbox", "post", letter="lost"))
        text = str(wrong.value)
        assert "cannot call acme.mailbox post from this event loop" in text
        assert "thread 'test-host-loop'" in text and "run_coroutine_threadsafe" in text
        with pytest.raises(HostStateError, match="from this event loop"):  # a proxy's too
            asyncio.run(host.proxy("acme.mailbox").post(letter="lost"))
        # handed over as the error says, the letter reaches the waiting taker
        run(host.call("acme.mailbox", "post", letter="kept"))
        assert taking.result(30) == "kept"
        # the refused posts never ran: every post ran on the plugin's own loop
        assert run(host.call("acme.mailbox", "posts")) == [True]
        metrics = host.plugin("acme.mailbox").metrics
        assert metrics is not None
        assert metrics.snapshot()["commands"]["post"]["errors"] == 0  # not the plugin's
    finally:
        run(host.stop())
        run(loop.shutdown_default_executor())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


def test_a_host_started_again_on_another_loop_says_to_make_a_new_host(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.mailbox", MAILBOX)
    host = make_host()

    async def main(serving: Host) -> list[bool]:
        async with serving:
            await serving.call("acme.mailbox", "post", letter="a")
            return await serving.call("acme.mailbox", "posts")  # type: ignore[no-any-return]

    assert asyncio.run(main(host)) == [True]
    with pytest.raises(HostStateError) as again:  # asyncio.run closed the first loop
        asyncio.run(main(host))
    text = str(again.value)
    assert "cannot start this host on this event loop" in text and "now closed" in text
    assert "make a new Host(...)" in text
    assert host.plugin("acme.mailbox").state == "stopped"  # nothing half started
    assert asyncio.run(main(make_host())) == [True]  # a new host serves the directory

    async def twice() -> list[bool]:  # on one loop, a stopped host starts again
        other = make_host()
        await main(other)
        return await main(other)

    assert asyncio.run(twice()) == [True]
