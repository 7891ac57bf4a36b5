"""The host's own coroutines (reload, upgrade, grant, ...) awaited off its loop are refused
as a call is (``runtime.host_loop``); a call refused for its loop is none of the plugin's
calls; and a thread that ran the host's loop and ended hands no later thread its place
(``runtime.serving``)."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from plugbay import HostStateError
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory
from tests.test_embedding_loops import GATED, MAILBOX

T = TypeVar("T")


class HostThread:
    """A loop of the host's own, run in a thread of its own, and what is handed to it."""

    def __init__(self, name: str = "test-host-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(60)

    def end(self) -> None:
        """Stop the loop and let its thread end (the loop stays, not closed)."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(60)


def _pid(host: Host) -> int | None:
    handle = host.plugin("acme.mailbox").handle
    assert handle is not None
    return getattr(handle, "pid", None)


def test_a_reload_or_upgrade_from_another_threads_loop_is_refused_and_the_plugin_still_answers(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.mailbox", MAILBOX)
    host = make_host(inline=[])  # in a worker
    served = HostThread()
    try:
        served.run(host.start())
        assert host.plugin("acme.mailbox").isolation == "process"
        pid = _pid(host)
        assert pid is not None
        for name, step in {
            "reload": lambda: host.reload("acme.mailbox"),
            "upgrade": lambda: host.upgrade("acme.mailbox"),
            "grant": lambda: host.grant("acme.mailbox", "network"),
            "disable": lambda: host.disable("acme.mailbox"),
            "set_config": lambda: host.set_config("acme.mailbox", {}),
        }.items():
            with pytest.raises(HostStateError) as refused:  # awaited on this thread's loop
                asyncio.run(step())
            text = str(refused.value)
            assert (
                f"cannot await host.{name}(...) from this event loop: the host runs on "
                "another one, in thread 'test-host-loop'" in text
            )
            assert f"asyncio.run_coroutine_threadsafe(host.{name}(...), host_loop)" in text
        # nothing was swapped, granted or disabled: the same worker answers on the host's loop
        rec = host.plugin("acme.mailbox")
        assert (rec.state, _pid(host)) == ("active", pid)
        served.run(host.call("acme.mailbox", "post", letter="kept"))
        assert served.run(host.call("acme.mailbox", "posts")) == [True]
        assert host.history("acme.mailbox")[0].action not in ("reload", "grant", "disable")
        # handed over as the error says, the reload is done
        assert served.run(host.reload("acme.mailbox")).state == "active"
        assert _pid(host) != pid
    finally:
        served.run(host.stop())
        served.end()
        served.loop.close()


def _calls(host: Host, command: str) -> tuple[int, int, int]:
    """The command's calls as host.stats (the metrics snapshot) and /metrics show them, and
    its errors."""
    metrics = host.plugin("acme.mailbox").metrics
    assert metrics is not None
    figures = metrics.snapshot()["commands"].get(command, {"calls": 0, "errors": 0})
    text = host.render_metrics().decode()
    line = re.search(
        rf'^plugbay_calls_total\{{[^}}]*command="{command}"[^}}]*\}} (\S+)$', text, re.M
    )
    exposed = int(float(line.group(1))) if line is not None else 0
    return figures["calls"], exposed, figures["errors"]


@pytest.mark.parametrize(
    ("inline", "command"), [(["*"], "wait_open"), ([], "post")], ids=["inline", "sandboxed"]
)
def test_calls_refused_while_the_hosts_runner_waits_are_not_the_plugins_calls(
    plugins: PluginFactory, make_host: Callable[..., Host], inline: list[str], command: str
) -> None:
    plugins("acme.mailbox", GATED)
    host = make_host(inline=inline)
    params = {"letter": "x"} if command == "post" else {}
    with asyncio.Runner() as runner:  # the host's loop, run step by step in this thread
        runner.run(host.start())
        try:
            runner.run(host.call("acme.mailbox", "posts"))
            before = _calls(host, command)
            for _ in range(40):  # past a timed call or more (one in 32 once settled)
                with pytest.raises(HostStateError, match="is not running now"):
                    asyncio.run(host.call("acme.mailbox", command, **params))
            assert _calls(host, command) == before  # neither a call nor an error
            runner.run(host.call("acme.mailbox", "posts"))
            assert _calls(host, "posts")[:2] == (2, 2)  # a call that runs still counts
        finally:
            runner.run(host.stop())


def test_a_thread_given_the_ended_host_threads_ident_is_refused(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.mailbox", MAILBOX)
    host = make_host()  # inline: a command run on the wrong loop would run there
    served = HostThread()
    served.run(host.start())
    ended = served.thread.ident
    served.end()  # its thread ends; the host was not stopped
    outcome: list[BaseException | None] = []

    def post() -> None:
        if threading.get_ident() != ended:
            return
        try:
            asyncio.run(host.call("acme.mailbox", "post", letter="lost"))
            outcome.append(None)
        except BaseException as exc:  # judged below, in the test's thread
            outcome.append(exc)

    try:
        for _ in range(200):  # the system gives a new thread an ended one's ident, mostly at once
            later = threading.Thread(target=post)
            later.start()
            later.join(60)
            if outcome:
                break
        assert outcome, "no later thread was given the ended thread's ident"
        refused = outcome[0]
        assert isinstance(refused, HostStateError), refused
        assert (
            "cannot call acme.mailbox post: the thread that ran this host's event loop "
            "('test-host-loop') has ended, and the host was not stopped" in str(refused)
        )
        assert "host_loop.run_until_complete(host.stop())" in str(refused)
        rec = host.plugin("acme.mailbox")
        assert rec.handle is not None
        assert rec.handle.instance.posted_from == []  # type: ignore[attr-defined]
    finally:
        served.loop.run_until_complete(host.stop())  # its loop, run again here: stopped
        served.loop.close()
    assert host.plugin("acme.mailbox").state == "stopped"
