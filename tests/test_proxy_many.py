"""Many calls at once through a plugin's proxy: ``await proxy.cmd.many([...])`` and, typed
for mypy, ``await plugbay.many(proxy.cmd, [...])`` are ``host.call_many``: each call
checked and counted, one bad call failing only itself, answers in order and, through a
typed proxy, of the command's declared result type whatever the backend."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

import plugbay
from plugbay import ParameterError, PlugbayError, PluginCallError
from plugbay.isolation.loading import import_plugin
from plugbay.model.manifest import load_manifest
from tests.conftest import PluginFactory

CALC = """
from dataclasses import dataclass
from plugbay import UtilityPlugin, command

@dataclass
class Point:
    x: int
    y: int

class P(UtilityPlugin):
    @command
    def div(self, a: int, b: int = 1) -> int:
        return a // b

    @command
    def move(self, p: Point, dx: int) -> Point:
        return Point(p.x + dx, p.y)
"""


@pytest.mark.parametrize("isolation", ["process", "inline"])
async def test_a_typed_proxy_runs_many_calls_each_answer_in_order(
    make_host: Callable[..., Any], plugins: PluginFactory, isolation: str
) -> None:
    plugins("acme.calc", CALC)
    plugins("acme.ok")
    host = make_host(inline=["*"] if isolation == "inline" else [], init_timeout=30.0)
    async with host:
        # the caller's own copy of the plugin class, as an application imports it
        cls = import_plugin(load_manifest(plugins.root / "acme.calc-1.0.0")).cls
        calc = host.get(cls, "acme.calc")
        answers = await calc.div.many([{"a": 7, "b": 2}, {"a": "x"}, {"a": 1, "b": 0}, {"a": 9}])
        assert answers[0] == 3 and answers[3] == 9
        assert isinstance(answers[1], ParameterError) and "parameter 'a'" in answers[1].message
        assert isinstance(answers[2], PluginCallError) and "ZeroDivisionError" in str(answers[2])
        # the declared result type, from a worker's plain data too
        moved = await plugbay.many(calc.move, [{"p": {"x": 1, "y": 2}, "dx": d} for d in (1, 2)])
        assert [type(m).__name__ for m in moved] == ["Point", "Point"]
        assert [(m.x, m.y) for m in moved] == [(2, 2), (3, 2)]  # type: ignore[union-attr]
        # counted as calls through the host are; a neighbour still answers
        figures = host.info("acme.calc")["metrics"]["commands"]["div"]
        assert (figures["calls"], figures["errors"]) == (4, 1), figures  # as one call each
        assert await host.call("acme.ok", "ping") == "pong from acme.ok 1.0.0"
        # an untyped proxy has the same form (its answers what the backend gives)
        untyped = await host.proxy("acme.calc").move.many([{"p": {"x": 0, "y": 0}, "dx": 1}])
        assert msgspec.to_builtins(untyped) == [{"x": 1, "y": 0}]
        assert await calc.div.many([]) == []


async def test_an_on_call_plugin_starts_for_its_first_batch(
    make_host: Callable[..., Any], plugins: PluginFactory
) -> None:
    plugins("acme.calc", CALC, extra='activation = "on-call"\n')
    async with make_host(inline=[], init_timeout=30.0) as host:
        proxy = host.proxy("acme.calc")
        assert str(host.plugin("acme.calc").state) == "on-demand"
        assert await proxy.div.many([{"a": 4, "b": 2}, {"a": 9, "b": 3}]) == [2, 3]
        assert str(host.plugin("acme.calc").state) == "active"


async def test_many_refuses_what_is_not_a_proxys_command(
    make_host: Callable[..., Any], plugins: PluginFactory
) -> None:
    plugins("acme.calc", CALC)
    async with make_host() as host:
        with pytest.raises(PlugbayError, match="is not a command of a plugin proxy") as bad:
            await plugbay.many(print, [{}])  # type: ignore[arg-type]
        assert "host.get(PluginClass)" in (bad.value.hint or "")
        with pytest.raises(PlugbayError, match="no command 'nope'"):
            await host.proxy("acme.calc").nope.many([{}])


def test_mypy_sees_the_declared_result_type_of_a_batch(tmp_path: Path) -> None:
    snippet = tmp_path / "caller.py"
    snippet.write_text(
        textwrap.dedent(
            """
            import plugbay
            from plugbay import PlugbayError, UtilityPlugin, command
            from plugbay.runtime.host import Host

            class Calc(UtilityPlugin):
                @command
                def div(self, a: int, b: int = 1) -> int:
                    return a // b

            async def main(host: Host) -> None:
                calc = host.get(Calc)
                ok: list[int | PlugbayError] = await plugbay.many(calc.div, [{"a": 1}])
                wrong: list[str] = await plugbay.many(calc.div, [{"a": 1}])
                reveal_type(await plugbay.many(calc.div, [{"a": 1}]))
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(snippet)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stdout
    out = result.stdout
    assert "caller.py:14: error: Incompatible types in assignment" in out, out
    assert "caller.py:13" not in out, out
    assert (
        'caller.py:15: note: Revealed type is "list[int | plugbay.api.errors.PlugbayError]"' in out
    )
