"""``context.config`` asked for a key the manifest does not declare: the plugin author
reads what to declare (and where their code asked), in a worker as inline; reading a
declared key, ``get`` and ``in`` are unchanged."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from plugbay import PluginCallError
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory

ASKS = """
from typing import Any

from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def width(self) -> Any:
        return self.context.config["width"]

    @command
    def colour(self) -> Any:
        return self.context.config["colour"]

    @command
    def gently(self) -> Any:
        return [self.context.config.get("colour", "red"), "colour" in self.context.config]

    @command
    def caught(self) -> str:
        try:
            return self.context.config["colour"]
        except KeyError:
            return "caught"
"""

SCHEMA = '\n[config.width]\ntype = "integer"\ndefault = 30\n'


@pytest.mark.parametrize("inline", [["*"], []], ids=["inline", "sandboxed"])
async def test_a_key_the_manifest_does_not_declare_says_what_to_declare_and_where(
    plugins: PluginFactory, make_host: Callable[..., Host], inline: list[str]
) -> None:
    plugins("acme.asks", ASKS, extra=SCHEMA)
    async with make_host(inline=inline, init_timeout=20) as host:
        assert host.plugin("acme.asks").isolation == ("inline" if inline else "process")
        assert await host.call("acme.asks", "width") == 30
        with pytest.raises(PluginCallError) as raised:
            await host.call("acme.asks", "colour")
        words = str(raised.value)
        assert "context.config has no 'colour' (it has: width)" in words
        assert "declare it in the manifest as [config.colour] with a default" in words
        assert "context.config.get('colour')" in words
        assert raised.value.where is not None and raised.value.where.endswith("main.py:13")
        # what a careful author does is unchanged
        assert await host.call("acme.asks", "gently") == ["red", False]
        assert await host.call("acme.asks", "caught") == "caught"
