"""Inline ``def`` commands: a plain one takes the short path (one small coroutine, no
timer), and everything a call promises still holds: checked parameters and results,
errors as the plugin's, counted calls, a blocking one bounded by its timeout, and the
command running when the call is awaited, not when it is made."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from plugbay import ParameterError, PluginCallError, PluginTimeout, ResultTypeError
from plugbay.isolation.inline import InlineHandle
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory

PLUGIN = """
import threading
from plugbay import UtilityPlugin, command

class Defs(UtilityPlugin):
    ran = 0
    release = threading.Event()

    @command
    def echo(self, x: int) -> int:
        type(self).ran += 1
        return x

    @command
    def wrong(self, x: int) -> int:
        return "not an int"

    @command
    def boom(self, x: int) -> int:
        raise ValueError(f"bad {x}")

    @command(blocking=True)
    def stuck(self, x: int) -> int:
        type(self).release.wait(30)
        return x

    @command
    async def echo_async(self, x: int) -> int:
        return x
"""


async def test_a_def_command_keeps_checks_errors_metrics_and_timeouts(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.defs", PLUGIN, cls="Defs")
    async with make_host(call_timeout=0.3) as host:
        rec = host.plugin("acme.defs")
        handle = rec.handle
        assert isinstance(handle, InlineHandle)
        assert {s.name for s in handle._plain} == {"echo", "wrong", "boom"}
        assert await host.call("acme.defs", "echo", x=3) == 3
        with pytest.raises(ParameterError):
            await host.call("acme.defs", "echo", x="3")
        with pytest.raises(ResultTypeError):
            await host.call("acme.defs", "wrong", x=1)
        with pytest.raises(PluginCallError, match="bad 7"):
            await host.call("acme.defs", "boom", x=7)
        instance = handle.instance
        try:
            with pytest.raises(PluginTimeout):
                await host.call("acme.defs", "stuck", x=1)
        finally:
            type(instance).release.set()  # type: ignore[attr-defined]
        commands = host.info("acme.defs")["metrics"]["commands"]
        assert commands["echo"]["calls"] == 2
        assert commands["boom"]["errors_by_type"] == {"ValueError": 1}
        # the typed proxy takes the same path, and the host still serves
        assert await host.proxy("acme.defs").echo(x=4) == 4
        assert await host.call("acme.defs", "echo_async", x=5) == 5


async def test_a_def_command_runs_when_its_call_is_awaited(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.defs", PLUGIN, cls="Defs")
    async with make_host() as host:
        handle = host.plugin("acme.defs").handle
        assert isinstance(handle, InlineHandle)
        spec = handle.commands["echo"]
        cls = type(handle.instance)
        before = cls.ran  # type: ignore[attr-defined]
        pending = handle.call(spec, {"x": 1}, 1.0)
        assert cls.ran == before  # type: ignore[attr-defined]  # made, not yet run
        assert await pending == 1
        assert cls.ran == before + 1  # type: ignore[attr-defined]
        # a batch made first and awaited together runs each once, in order
        calls = [handle.call(spec, {"x": i}, 1.0) for i in range(5)]
        assert await asyncio.gather(*calls) == [0, 1, 2, 3, 4]
        assert cls.ran == before + 6  # type: ignore[attr-defined]
        assert threading.current_thread() is threading.main_thread()
