"""A host embedded in an application with more than one event loop: a call awaited on
another thread's loop is refused before an inline plugin's command runs there, beside
its queues made on the host's loop; and a host is bound to the loop it first started on,
so a start on another (a second ``asyncio.run``) says to make a new ``Host``, while
another host serves the state directory at once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Coroutine
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


def _refused_once_the_loop_closed(host: Host) -> tuple[dict[str, Any], Any]:
    """Start ``host`` in an ``asyncio.run`` that returns without its stop (closing its loop),
    post by call and by proxy in the next ``asyncio.run``s, each refused in the words of a
    closed loop; then stop it (what can be done without its loop). The post's figures, and
    the plugin's instance (an inline one's; else None)."""

    async def start() -> None:
        await host.start()
        await host.call("acme.mailbox", "post", letter="first")

    asyncio.run(start())  # returns with the host serving: its loop is closed
    rec = host.plugin("acme.mailbox")
    instance = rec.handle.instance if rec.handle is not None else None
    try:
        for post in (
            lambda: host.call("acme.mailbox", "post", letter="lost"),
            lambda: host.proxy("acme.mailbox").post(letter="lost"),
        ):
            with pytest.raises(HostStateError) as refused:
                asyncio.run(post())
            text = str(refused.value)
            assert (
                "cannot call acme.mailbox post: the event loop this host started on (in "
                f"thread '{threading.current_thread().name}') is closed" in text
            )
            assert "one asyncio.run(main())" in text and "await host.stop() ends" in text
        assert rec.metrics is not None
        return rec.metrics.snapshot()["commands"]["post"], instance
    finally:
        with pytest.raises(HostStateError, match="without its plugins' cleanup"):
            asyncio.run(host.stop())


def test_an_inline_call_after_the_hosts_loop_closed_without_a_stop_never_runs(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.mailbox", MAILBOX)
    figures, instance = _refused_once_the_loop_closed(make_host())  # inline
    assert instance is not None
    assert instance.posted_from == [True]  # only the first post ran, on the host's loop
    assert (figures["calls"], figures["errors"]) == (1, 0)  # the refused ones: nobody's


def test_a_sandboxed_call_after_the_hosts_loop_closed_is_refused_before_it_is_sent(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.mailbox", MAILBOX)
    host = make_host(inline=[])  # in a worker
    figures, _ = _refused_once_the_loop_closed(host)
    assert host.plugin("acme.mailbox").isolation == "process"
    # the refused posts never reached its worker: counted neither as calls nor as errors
    assert (figures["calls"], figures["errors"]) == (1, 0)


def test_a_call_made_as_the_hosts_loop_shuts_down_does_not_let_the_next_loop_in(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.mailbox", MAILBOX)
    host = make_host()  # inline

    async def session() -> AsyncGenerator[None, None]:  # closed by the loop's shutdown
        try:
            yield
        finally:
            await asyncio.sleep(0)  # after the host noticed the shutdown
            await host.call("acme.mailbox", "post", letter="last")  # on its loop: runs

    async def start() -> AsyncGenerator[None, None]:
        await host.start()
        opened = session()
        await opened.asend(None)
        return opened

    kept = asyncio.run(start())  # held: the loop holds its generators weakly
    rec = host.plugin("acme.mailbox")
    assert rec.handle is not None and rec.handle.instance is not None
    try:
        with pytest.raises(HostStateError, match="is closed"):
            asyncio.run(host.call("acme.mailbox", "post", letter="lost"))
        # the last post ran on the host's loop as it shut down; the next loop's did not
        assert rec.handle.instance.posted_from == [True]  # type: ignore[attr-defined]
    finally:
        with pytest.raises(HostStateError, match="without its plugins' cleanup"):
            asyncio.run(host.stop())
    del kept


#: MAILBOX, and a command that waits for a future of the host's loop: awaited on another
#: loop it fails at once (asyncio's "attached to a different loop"), as a plugin's own
#: locks and queues would, so the call path's failure side judges where it came from
GATED = (
    MAILBOX.replace(
        "        self.posted_from: list[bool] = []",
        "        self.posted_from: list[bool] = []\n        self.opened = self.loop.create_future()",
    )
    + """
    @command
    async def wait_open(self) -> None:
        await self.opened
"""
)


async def _until(done: Callable[[], bool], what: str) -> None:
    """Poll ``done`` on the running loop until it holds, for up to 30 s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while not done():
        assert loop.time() < deadline, f"not within 30 s: {what}"
        await asyncio.sleep(0.01)


def _errors(host: Host, command: str) -> int:
    metrics = host.plugin("acme.mailbox").metrics
    assert metrics is not None
    return metrics.snapshot()["commands"].get(command, {}).get("errors", 0)  # type: ignore[no-any-return]


def _idle_runner_refusal(text: str, command: str) -> None:
    """The words of a call refused on another loop while the host's idles in this thread:
    not the hand-over to another thread's running loop (that would wait for ever)."""
    assert (
        f"cannot call acme.mailbox {command} from this event loop: the host's own, in thread "
        f"'{threading.current_thread().name}', is not running now" in text
    )
    assert "runner.run(host.call(...))" in text and "run_coroutine_threadsafe" not in text


def test_an_inline_call_while_the_hosts_runner_waits_between_steps_says_to_await_it_there(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.mailbox", GATED)
    host = make_host()  # inline
    with asyncio.Runner() as runner:  # the host's loop, run step by step in this thread
        runner.run(host.start())
        try:
            with pytest.raises(HostStateError) as refused:  # another loop between two steps
                asyncio.run(host.call("acme.mailbox", "wait_open"))
            _idle_runner_refusal(str(refused.value), "wait_open")
            assert _errors(host, "wait_open") == 0  # the caller's mistake, not the plugin's
            # a command that does not fail there is not noticed (that would cost every
            # call, docs/applications.md): it runs on that loop
            asyncio.run(host.call("acme.mailbox", "post", letter="there"))
            assert runner.run(host.call("acme.mailbox", "posts")) == [False]
        finally:
            runner.run(host.stop())


def test_a_sandboxed_call_while_the_hosts_runner_waits_between_steps_reaches_its_worker(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.mailbox", MAILBOX)
    host = make_host(inline=[])  # in a worker
    with asyncio.Runner() as runner:
        runner.run(host.start())
        try:
            assert host.plugin("acme.mailbox").isolation == "process"
            runner.run(host.call("acme.mailbox", "post", letter="first"))
            with pytest.raises(HostStateError) as refused:
                asyncio.run(host.call("acme.mailbox", "post", letter="sent"))
            _idle_runner_refusal(str(refused.value), "post")
            assert _errors(host, "post") == 0

            # what is sent: the call left for the worker before its answer, awaited on the
            # wrong loop, failed; the worker ran it (docs/applications.md says so)
            async def posted() -> list[bool]:
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 30
                while len(posts := await host.call("acme.mailbox", "posts")) < 2:
                    assert loop.time() < deadline, f"the sent post never ran: {posts}"
                    await asyncio.sleep(0.01)
                return posts  # type: ignore[no-any-return]

            assert runner.run(posted()) == [True, True]  # both on the worker's own loop
            assert _errors(host, "post") == 0
        finally:
            runner.run(host.stop())


def _closed_without_its_shutdown(host: Host) -> asyncio.AbstractEventLoop:
    """Start ``host`` on a loop of this thread and close that loop by ``loop.close()``
    alone (no ``shutdown_asyncgens``, so the host does not notice), once the monitor
    rests: the first call after is a timed one (``CommandStats``), which wakes it."""
    loop = asyncio.new_event_loop()
    loop.run_until_complete(host.start())
    loop.run_until_complete(
        _until(lambda: host.manager.wake_monitor is not None, "the monitor rests")
    )
    loop.close()
    return loop


@pytest.mark.parametrize("inline", [["*"], []], ids=["inline", "sandboxed"])
def test_a_call_after_the_hosts_loop_was_closed_alone_is_told_it_is_closed(
    plugins: PluginFactory, make_host: Callable[..., Host], inline: list[str]
) -> None:
    plugins("acme.mailbox", GATED)
    host = make_host(inline=inline)
    _closed_without_its_shutdown(host)
    rec = host.plugin("acme.mailbox")
    instance = rec.handle.instance if rec.handle is not None else None
    closed = (
        "the event loop this host started on (in thread "
        f"'{threading.current_thread().name}') is closed"
    )
    try:
        # the timed call wakes the resting monitor, on the closed loop: refused before
        # the plugin's command runs (or its worker is sent it), not a raw RuntimeError
        with pytest.raises(HostStateError) as refused:
            asyncio.run(host.call("acme.mailbox", "post", letter="lost"))
        assert f"cannot call acme.mailbox post: {closed}" in str(refused.value)
        assert "await host.stop() ends its workers" in str(refused.value)
        if instance is not None:
            assert instance.posted_from == []  # never ran
        # a command failing on the next loop is told the same, not blamed on the plugin
        with pytest.raises(HostStateError) as refused:
            asyncio.run(host.call("acme.mailbox", "wait_open"))
        assert f"cannot call acme.mailbox wait_open: {closed}" in str(refused.value)
        assert (_errors(host, "post"), _errors(host, "wait_open")) == (0, 0)
    finally:
        with pytest.raises(HostStateError, match="without its plugins' cleanup"):
            asyncio.run(host.stop())
