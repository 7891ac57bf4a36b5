"""The one call path (``runtime.calling``): what it decides once per route instead of per
call still holds call by call. A command's own shorter timeout bounds it, a result is
checked where the command runs (in the host for an inline plugin, in the worker for a
sandboxed one), a typed proxy gives back the declared types, and calls nobody counts
(monitoring off, the monitor's probes) leave no figures and mark no plugin.

Real hosts: inline plugins and sandboxed workers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from plugbay import ParameterError, PluginCallError, PluginTimeout, ResultTypeError
from plugbay.isolation.loading import import_plugin
from plugbay.model.manifest import load_manifest
from tests.conftest import PluginFactory

SLOW = """
import asyncio
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command(timeout=0.3)
    async def hurried(self) -> int:
        await asyncio.sleep(30)
        return 1

    @command
    async def patient(self, seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds

    @command
    def quick(self, x: int) -> int:
        return x + 1
"""

RESULTS = """
from dataclasses import dataclass
from typing import Any
from plugbay import UtilityPlugin, command

@dataclass
class Point:
    x: int
    y: int

class P(UtilityPlugin):
    @command
    def half(self, x: int) -> float:
        return x / 2 if x % 2 else x // 2   # an int when even: still a float to the caller

    @command
    def count(self, x: int) -> int:
        return x

    @command
    def name(self) -> str:
        return "calc"

    @command
    def even(self, x: int) -> bool:
        return x % 2 == 0

    @command
    def point(self, x: int) -> Point:
        return Point(x, -x)

    @command
    def lies(self) -> int:
        return "not a number"  # type: ignore[return-value]

    @command
    def anything(self, x: int) -> Any:
        return {"x": x} if x else [x]

    @command
    def boom(self) -> int:
        raise KeyError("no luck")
"""


def _calls(host: Any, plugin_id: str, command: str) -> tuple[int, int]:
    figures = host.info(plugin_id)["metrics"]["commands"].get(command, {"calls": 0, "errors": 0})
    return figures["calls"], figures["errors"]


@pytest.mark.parametrize("isolation", ["inline", "process"])
async def test_a_commands_own_shorter_timeout_bounds_it_and_the_plugin_keeps_answering(
    make_host: Callable[..., Any], plugins: PluginFactory, isolation: str
) -> None:
    plugins("acme.slow", SLOW, extra="[resources]\ntimeout = 20\n")
    host = make_host(inline=["*"] if isolation == "inline" else [], init_timeout=30.0)
    async with host:
        with pytest.raises(PluginTimeout) as caught:
            await host.call("acme.slow", "hurried")
        assert "within 0.3 s" in caught.value.message  # the command's, not the plugin's 20 s
        assert _calls(host, "acme.slow", "hurried") == (1, 1)
        # the plugin's own bound is the rest's: a call longer than 0.3 s finishes
        assert await host.call("acme.slow", "patient", seconds=0.5) == 0.5
        assert await host.call("acme.slow", "quick", x=1) == 2
        assert host.manager.timeout_of("acme.slow") == 20
        assert host.manager.inflight("acme.slow") == 0


@pytest.mark.parametrize("isolation", ["inline", "process"])
async def test_a_timeouts_hint_names_the_deadline_that_fired(
    make_host: Callable[..., Any], plugins: PluginFactory, isolation: str
) -> None:
    plugins("acme.slow", SLOW, extra="[resources]\ntimeout = 20\n")
    bounded = plugins("acme.bounded", SLOW, extra="[resources]\ntimeout = 0.3\n")
    unbounded = plugins("acme.unbounded", SLOW)  # no resources.timeout: the host's
    host = make_host(
        inline=["*"] if isolation == "inline" else [], init_timeout=30.0, call_timeout=0.4
    )
    async with host:
        # the command's own @command(timeout=0.3), though the manifest allows 20 s
        with pytest.raises(PluginTimeout) as own:
            await host.call("acme.slow", "hurried")
        [batched] = await host.call_many("acme.slow", "hurried", [{}])
        for error in (own.value, batched):
            assert isinstance(error, PluginTimeout)
            assert "within 0.3 s" in error.message
            assert "raise @command(timeout=0.3) on 'hurried' in the plugin's code" in str(
                error.hint
            )
            assert "resources.timeout" not in str(error.hint)  # raising it would not help
        # the manifest's resources.timeout
        with pytest.raises(PluginTimeout) as manifests:
            await host.call("acme.bounded", "patient", seconds=5)
        assert "within 0.3 s" in manifests.value.message
        assert f"raise timeout under [resources] in {bounded / 'plugin.toml'}" in str(
            manifests.value.hint
        )
        # the host's own call timeout (Host(call_timeout=0.4)): the manifest sets none
        with pytest.raises(PluginTimeout) as hosts:
            await host.call("acme.unbounded", "patient", seconds=5)
        assert "within 0.4 s" in hosts.value.message
        # what each who meets it changes: the manifest's key (an author, or an operator
        # of plugbay run, who passes no Host arguments), or an application's argument
        assert hosts.value.hint == (
            "the call was cancelled; the limit is the host's call timeout, 0.4 s, as "
            f"{unbounded / 'plugin.toml'} sets no [resources] timeout: set one there "
            "(timeout = SECONDS under [resources]; for plugbay run, in the plugin's "
            "manifest), or, in an application that starts the host, pass a longer "
            "Host(call_timeout=...) if this command needs longer"
        )


@pytest.mark.parametrize("isolation", ["inline", "process"])
async def test_results_are_checked_where_the_command_runs(
    make_host: Callable[..., Any], plugins: PluginFactory, isolation: str
) -> None:
    plugins("acme.calc", RESULTS)
    plugins("acme.ok")
    host = make_host(inline=["*"] if isolation == "inline" else [], init_timeout=30.0)
    async with host:
        with pytest.raises(ResultTypeError) as caught:
            await host.call("acme.calc", "lies")
        assert "declared to return int" in caught.value.message
        assert _calls(host, "acme.calc", "lies") == (1, 1)
        # a result declared Any is whatever the command gave (as plain data from a worker)
        assert await host.call("acme.calc", "anything", x=3) == {"x": 3}
        assert await host.call("acme.calc", "anything", x=0) == [0]
        with pytest.raises(PluginCallError):
            await host.call("acme.calc", "boom")
        assert await host.call("acme.ok", "ping") == "pong from acme.ok 1.0.0"


@pytest.mark.parametrize("isolation", ["inline", "process"])
async def test_a_typed_proxy_gives_back_the_declared_types_from_any_backend(
    make_host: Callable[..., Any], plugins: PluginFactory, isolation: str
) -> None:
    plugins("acme.calc", RESULTS)
    host = make_host(inline=["*"] if isolation == "inline" else [], init_timeout=30.0)
    async with host:
        # the caller's own copy of the plugin class, as an application imports it
        cls = import_plugin(load_manifest(plugins.root / "acme.calc-1.0.0")).cls
        calc = host.get(cls, "acme.calc")
        half = await calc.half(4)
        assert half == 2.0 and type(half) is float
        assert await calc.half(3) == 1.5
        count = await calc.count(x=7)
        assert count == 7 and type(count) is int
        even = await calc.even(2)
        assert even is True and type(even) is bool
        assert await calc.name() == "calc"
        point = await calc.point(5)
        assert type(point).__name__ == "Point" and (point.x, point.y) == (5, -5)
        with pytest.raises(ParameterError):
            await calc.count(x="seven")
        assert _calls(host, "acme.calc", "count") == (2, 0)  # the caller's mistake is not its


async def test_with_monitoring_off_calls_are_checked_and_answered_and_nothing_is_kept(
    make_host: Callable[..., Any], plugins: PluginFactory
) -> None:
    plugins("acme.calc", RESULTS)
    async with make_host(monitoring=False) as host:
        # past the always-timed start and many sampling periods
        answers = [await host.call("acme.calc", "count", x=i) for i in range(600)]
        assert answers == list(range(600))
        with pytest.raises(ParameterError):
            await host.call("acme.calc", "count", x="one")
        with pytest.raises(PluginCallError):
            await host.call("acme.calc", "boom")
        assert host.manager.touched == set()  # no call was timed, none marked the plugin
        metrics = host.plugin("acme.calc").metrics
        assert metrics is not None and metrics.commands == {}
        assert host.manager.inflight("acme.calc") == 0


@pytest.mark.parametrize("isolation", ["inline", "process"])
async def test_an_uncounted_call_leaves_the_figures_alone_even_when_it_fails(
    make_host: Callable[..., Any], plugins: PluginFactory, isolation: str
) -> None:
    plugins("acme.calc", RESULTS)
    host = make_host(inline=["*"] if isolation == "inline" else [], init_timeout=30.0)
    async with host:
        manager = host.manager
        assert await host.call("acme.calc", "count", x=1) == 1
        manager.touched.clear()
        before = _calls(host, "acme.calc", "count"), _calls(host, "acme.calc", "boom")
        for i in range(300):
            assert await manager.call("acme.calc", "count", {"x": i}, counted=False) == i
        with pytest.raises(PluginCallError):
            await manager.call("acme.calc", "boom", {}, counted=False)
        assert (_calls(host, "acme.calc", "count"), _calls(host, "acme.calc", "boom")) == before
        assert "acme.calc" not in manager.touched
        # the next counted call is counted as ever
        with pytest.raises(PluginCallError):
            await host.call("acme.calc", "boom")
        assert _calls(host, "acme.calc", "boom") == (1, 1)
