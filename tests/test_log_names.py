"""A sandboxed plugin's records reach a bounded number of the host's loggers
(isolation/identity.py): ``logging`` keeps a logger per name for good, so a plugin
that named a new one per record would grow the host without end."""

from __future__ import annotations

import logging
from collections.abc import Callable

from plugbay.isolation.identity import LOGGER_NAMES
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory
from tests.test_monitor import FAST, until

NAMER = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def log_names(self, n: int, prefix: str) -> int:
        for i in range(n):
            self.context.logger.getChild(f"{prefix}{i}").info("record %d", i)
        return n
"""
NEIGHBOUR = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"
"""
BOXED = 'isolation = "process"\n'


async def test_a_plugin_naming_a_logger_per_record_grows_the_host_by_a_bounded_few(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.namer", NAMER, extra=BOXED)
    plugins("acme.neighbour", NEIGHBOUR)
    loggers = logging.Logger.manager.loggerDict
    async with make_host(monitor=FAST) as host:
        assert host.plugin("acme.namer").isolation == "process"
        before = len(loggers)
        assert await host.call("acme.namer", "log_names", n=300, prefix="a") == 300
        await until(lambda: len(host.logs("acme.namer", limit=10_000)) >= 300, "the records")
        grown = len(loggers) - before
        assert grown <= LOGGER_NAMES  # not one a record
        assert await host.call("acme.namer", "log_names", n=300, prefix="b") == 300
        await until(lambda: len(host.logs("acme.namer", limit=10_000)) >= 600, "the rest")
        assert len(loggers) - before == grown  # past the bound, nothing more
        records = [
            r for r in host.logs("acme.namer", limit=10_000) if r["message"].startswith("record")
        ]
        assert len(records) == 600  # every record kept, none lost to the bound
        own = "plugbay.plugin.acme.namer"
        named = [r for r in records if r["logger"] != own]
        folded = [r for r in records if r["logger"] == own]
        assert named and all(r["logger"].startswith(own + ".") for r in named)
        assert len({r["logger"] for r in named}) <= LOGGER_NAMES
        # the rest went through its own logger, the names they gave kept
        assert {r["fields"]["claimed_logger"] for r in folded} >= {own + ".b299"}
        assert await host.call("acme.neighbour", "ping") == "pong"
        dropped = host.manager.records_by_id["acme.namer"].handle.budget.dropped  # type: ignore[union-attr]
        assert dropped["log_logger_names"] == len(folded)
