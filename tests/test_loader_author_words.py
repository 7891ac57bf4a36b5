"""What a plugin author reads when the host refuses a plugin: the file and line to fix,
never the host's own names for their code."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from plugbay import PlugbayError
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory

UNCHECKABLE = """
import socket

from plugbay import UtilityPlugin, command


class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"

    @command
    def send(self, count: int, sock: socket.socket) -> int:
        return count
"""

WRONG_ENTRY = """
from plugbay import UtilityPlugin, command


class Greeter(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"
"""


async def test_an_uncheckable_parameter_is_named_at_its_def_line(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    folder = plugins("acme.sock", UNCHECKABLE)
    plugins("acme.ok")
    async with make_host() as host:
        error = host.plugin("acme.sock").error
        assert error is not None
        assert error.where == f"{folder / 'main.py'}:13"  # 'def send', not plugbay's module name
        assert "parameter 'sock': socket cannot cross a process or JSON boundary" in str(error)
        assert await host.call("acme.ok", "ping") == "pong from acme.ok 1.0.0"


async def test_an_entry_naming_no_class_points_at_the_entry_line_and_the_real_classes(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    folder = plugins("acme.typo", WRONG_ENTRY, cls="Greter")
    async with make_host() as host:
        error = host.plugin("acme.typo").error
        assert error is not None
        assert error.where == f"{folder / 'plugin.toml'}:4"  # entry = "main:Greter"
        # the class to name, not the interface it imported to subclass
        assert error.hint == "plugin classes in that module: Greeter; fix entry"


async def test_a_reload_that_would_close_a_dependency_cycle_is_refused(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    base = plugins("acme.base")
    plugins("acme.hello", extra='[dependencies]\n"acme.base" = "^1.0"\n')
    async with make_host() as host:
        assert host.plugin("acme.hello").state == "active"
        # the author makes acme.base depend on its own dependent
        manifest = base / "plugin.toml"
        manifest.write_text(manifest.read_text() + '[dependencies]\n"acme.hello" = "^1.0"\n')
        with pytest.raises(PlugbayError) as refused:
            await host.reload("acme.base")
        assert "dependencies would make a cycle: acme.base → acme.hello → acme.base" in str(
            refused.value
        )
        assert refused.value.where == str(manifest)
        # the version that served keeps serving, and so does its dependent
        assert await host.call("acme.base", "ping") == "pong from acme.base 1.0.0"
        assert await host.call("acme.hello", "ping") == "pong from acme.hello 1.0.0"
        assert host.plugin("acme.base").needs == frozenset()
