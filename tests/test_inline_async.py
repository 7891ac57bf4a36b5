"""Inline ``async def`` commands: the ones that cannot suspend take the short path (no
timer, no first-step dance), and everything a call promises still holds for both kinds:
checked parameters and results, errors as the plugin's, timeouts where a command waits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from plugbay import ParameterError, PluginCallError, PluginTimeout, ResultTypeError
from plugbay.isolation.inline import InlineHandle, straight
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory


async def _plain(x: int) -> int:
    return x


async def _awaits(x: int) -> int:
    await asyncio.sleep(0)
    return x


async def _async_for(xs: object) -> list[object]:
    return [x async for x in xs]  # type: ignore[attr-defined]


async def _async_with(lock: asyncio.Lock) -> None:
    async with lock:
        pass


async def _awaits_in_a_comprehension(fs: list[asyncio.Future[int]]) -> list[int]:
    return [await f for f in fs]


def _returns_a_coroutine(x: int) -> object:
    return _awaits(x)


def test_only_an_async_def_without_any_suspension_point_is_straight() -> None:
    assert straight(_plain)
    for func in (_awaits, _async_for, _async_with, _awaits_in_a_comprehension):
        assert not straight(func), func.__name__
    assert not straight(_returns_a_coroutine)  # not an async def: what it returns may wait
    assert not straight(print)  # no code object at all


PLUGIN = """
import asyncio
from plugbay import UtilityPlugin, command

class Mixed(UtilityPlugin):
    @command
    async def echo(self, x: int) -> int:
        return x

    @command
    async def wrong(self, x: int) -> int:
        return "not an int"

    @command
    def flag(self, x: int) -> int:
        return True  # a bool is not taken for an int, on the fast path or not

    @command
    async def boom(self, x: int) -> int:
        raise ValueError(f"bad {x}")

    @command
    async def slow(self, x: int) -> int:
        await asyncio.sleep(30)
        return x
"""


async def test_both_kinds_of_async_command_keep_checks_errors_and_timeouts(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.mixed", PLUGIN, cls="Mixed")
    async with make_host(call_timeout=0.3) as host:
        rec = host.plugin("acme.mixed")
        assert isinstance(rec.handle, InlineHandle)
        straight_ones = {s.name for s in rec.handle._straight}
        assert straight_ones == {"echo", "wrong", "boom"}
        assert await host.call("acme.mixed", "echo", x=3) == 3
        with pytest.raises(ParameterError):
            await host.call("acme.mixed", "echo", x="3")
        with pytest.raises(ResultTypeError):
            await host.call("acme.mixed", "wrong", x=1)
        with pytest.raises(ResultTypeError):
            await host.call("acme.mixed", "flag", x=1)
        with pytest.raises(PluginCallError, match="bad 7"):
            await host.call("acme.mixed", "boom", x=7)
        with pytest.raises(PluginTimeout):
            await host.call("acme.mixed", "slow", x=1)
        commands = host.info("acme.mixed")["metrics"]["commands"]
        assert commands["echo"]["calls"] == 2
        assert commands["boom"]["errors_by_type"] == {"ValueError": 1}
        assert await host.call("acme.mixed", "echo", x=4) == 4  # still serving
