"""An inline plugin that fails to start leaves nothing of itself in the host's process.

A constructor that raised left the attempt's modules in ``sys.modules`` (its entry
module, every module it imported of its own) and, through the error kept on the plugin's
record, its class and their globals: each failed load added one more copy. Unloading a
started plugin (``InlineHandle.release``) already dropped them; a failed start now does
the same, and the fixed version, loaded next as the error says, runs its new code."""

from __future__ import annotations

import gc
import sys
import types
from collections.abc import Callable

import pytest

from plugbay.isolation.loading import NAMESPACE
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory

HELPER = 'WORD = "pong"\n'

CONSTRUCTOR_FAILS = """
from plugbay import UtilityPlugin, command
from . import helper

class P(UtilityPlugin):
    def __init__(self) -> None:
        super().__init__()
        raise RuntimeError("the wheel fell off")

    @command
    def ping(self) -> str:
        return helper.WORD
"""

IMPORT_FAILS = """
from plugbay import UtilityPlugin, command
from . import helper
raise RuntimeError("the wheel fell off")

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return helper.WORD
"""

FIXED = """
from plugbay import UtilityPlugin, command
from . import helper

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "fixed, " + helper.WORD
"""


def plugin_modules(plugin_id: str) -> list[str]:
    """Names of the plugin's modules in ``sys.modules`` (any load of it)."""
    prefix = f"{NAMESPACE}.{plugin_id.replace('.', '_')}_"
    return sorted(name for name in sys.modules if name.startswith(prefix))


def live_plugin_modules(plugin_id: str) -> list[str]:
    """Names of the plugin's module objects still alive, in ``sys.modules`` or not."""
    prefix = f"{NAMESPACE}.{plugin_id.replace('.', '_')}_"
    gc.collect()
    return sorted(
        o.__name__
        for o in gc.get_objects()
        if isinstance(o, types.ModuleType) and o.__name__.startswith(prefix)
    )


@pytest.mark.parametrize(
    ("broken", "code"),
    [(CONSTRUCTOR_FAILS, "plugin_init_failed"), (IMPORT_FAILS, "plugin_load_failed")],
    ids=["constructor", "module"],
)
async def test_a_failed_inline_start_leaves_no_module_and_the_fixed_code_runs(
    plugins: PluginFactory, make_host: Callable[..., Host], broken: str, code: str
) -> None:
    path = plugins("acme.flaky", broken)
    (path / "helper.py").write_text(HELPER)
    async with make_host(inline=["*"], init_timeout=30) as host:
        error = host.plugin("acme.flaky").error
        assert error is not None
        assert error.code == code
        assert "raised RuntimeError: the wheel fell off" in error.message
        # the failed attempt's modules are gone, from sys.modules and from memory
        assert plugin_modules("acme.flaky") == []
        assert live_plugin_modules("acme.flaky") == []

        (path / "main.py").write_text(FIXED)  # the fix, then what the error says: load it
        await host.load("acme.flaky")
        assert await host.call("acme.flaky", "ping") == "fixed, pong"
        loaded = plugin_modules("acme.flaky")
        assert {name.rsplit(".", 1)[-1] for name in loaded} >= {"main", "helper"}
        assert len({name.split(".")[1] for name in loaded}) == 1  # this load's, no other

        await host.unload("acme.flaky")
        assert plugin_modules("acme.flaky") == []  # as a failed start leaves it
