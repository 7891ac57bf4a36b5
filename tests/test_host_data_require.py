"""Requiring a service of host data needs only one of the permissions its commands need
(``isolation.host_data``): a plugin granted only ``host:metrics-read`` requires
``plugbay.host`` and asks its ``health``, inline and sandboxed alike, and each other
command is refused at its call in the broker's words; a plugin with no permission to
``logging`` still requires it to ``log`` its own lines, and is refused ``tail``."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from plugbay.api.errors import PlugbayError
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory
from tests.test_services_at_load import reason_without_id

WATCHER = """
import inspect
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    async def initialize(self, context):
        self.host = context.services.require("plugbay.host", "*")

    async def _answer(self, command):
        answer = getattr(self.host, command)()
        return await answer if inspect.isawaitable(answer) else answer

    @command
    async def health_of(self, plugin: str) -> str:
        rows = (await self._answer("health"))["plugins"]
        return next(row["status"] for row in rows if row["plugin"] == plugin)

    @command
    async def plugin_ids(self) -> list:
        return [row["id"] for row in await self._answer("plugins")]

    @command
    def has(self, name: str) -> bool:
        return hasattr(self.host, name)
"""

LOGGER = """
import inspect
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    async def initialize(self, context):
        self.logging = context.services.require("logging", "^1")

    async def _answer(self, command, **params):
        answer = getattr(self.logging, command)(**params)
        return await answer if inspect.isawaitable(answer) else answer

    @command
    async def note(self, message: str) -> None:
        await self._answer("log", message=message)

    @command
    async def everyone_else(self) -> list:
        return await self._answer("tail")
"""

METRICS_READ = '[permissions]\nhost = ["metrics-read"]\n'
BOXED = 'isolation = "process"\n'


async def refused_words(host: Host, plugin: str, command: str) -> str:
    with pytest.raises(PlugbayError) as caught:
        await host.call(plugin, command)
    return str(caught.value).replace(plugin, "PLUGIN")


async def test_metrics_read_alone_requires_the_host_service_for_its_health_in_both_backends(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.inline", WATCHER, extra=METRICS_READ)
    plugins("acme.boxed", WATCHER, extra=BOXED + METRICS_READ)
    async with make_host(inline=["acme.inline"], init_timeout=30.0) as host:
        # asked for, not granted yet: refused at load, naming the permission it asked for
        assert reason_without_id(host, "acme.boxed") == (
            "plugin 'PLUGIN': the host refused the service 'plugbay.host', which needs "
            "host:metrics-read: not declared or granted. the operator can run "
            "'plugbay grant PLUGIN host:metrics-read'"
        )
        await host.grant("acme.boxed", "host:metrics-read")
        await host.load("acme.boxed")
        for plugin in ("acme.inline", "acme.boxed"):
            assert await host.call(plugin, "health_of", plugin=plugin) == "green", plugin
        # every other command of the host's service still needs host:state-read, at its call
        inline = await refused_words(host, "acme.inline", "plugin_ids")
        assert (
            "the host refused 'plugbay.host.plugins', which needs host:state-read: "
            "not declared or granted"
        ) in inline, inline
        assert await refused_words(host, "acme.boxed", "plugin_ids") == inline
        for plugin in ("acme.inline", "acme.boxed"):  # looking is not calling: no refusal
            assert await host.call(plugin, "has", name="plugins") is True, plugin
        assert await host.call("acme.inline", "health_of", plugin="acme.boxed") == "green"


async def test_logging_is_required_without_logs_read_to_log_and_tail_is_refused_in_both_backends(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    requires = (
        '[dependencies]\n"system.logging" = "^1"\n[services]\nrequires = { logging = "^1" }\n'
    )
    plugins("acme.inline", LOGGER, extra=requires)
    plugins("acme.boxed", LOGGER, extra=BOXED + requires)
    async with make_host(inline=["acme.inline"], init_timeout=30.0) as host:
        for plugin in ("acme.inline", "acme.boxed"):
            assert str(host.plugin(plugin).state) == "active", host.plugin(plugin).reason
            await host.call(plugin, "note", message=f"a line of {plugin}")
            kept = [r["message"] for r in await host.call("system.logging", "tail")]
            assert f"a line of {plugin}" in kept, kept
        inline = await refused_words(host, "acme.inline", "everyone_else")
        assert (
            "the host refused 'system.logging.tail', which needs host:logs-read: "
            "not declared or granted"
        ) in inline, inline
        assert await refused_words(host, "acme.boxed", "everyone_else") == inline
