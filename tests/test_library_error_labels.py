"""A library's exception is labelled by its ``module.Class`` in /metrics, inline and in a
worker alike; a plugin's own class stays ``other``; a worker that claims library names
in bad faith gets a few per command, the rest ``other`` (``monitor.library_errors``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from plugbay import PlugbayError
from plugbay.monitor.library_errors import MAX_LIBRARY_LABELS
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory
from tests.test_metric_labels import FAST, promtool_accepts, scraped, series

FAILING = """
import json
import sqlite3

from plugbay import UtilityPlugin, command

class Own(Exception):
    pass

class P(UtilityPlugin):
    @command
    def fail(self, n: int) -> int:
        if n == 0:
            json.loads("{not json")
        if n == 1:
            sqlite3.connect(":memory:").execute("select * from nowhere")
        if n == 2:
            raise Own("its own class")
        # made up at run time, posing as the standard library's: not what json names
        raise type("Posing", (Exception,), {"__module__": "json"})("posing")
"""

CLAIMING = """
from plugbay import UtilityPlugin, command, PluginCallError

class P(UtilityPlugin):
    @command
    def fail(self, n: int) -> int:
        raise PluginCallError(
            "made up", details={"exception": "Made", "library": f"evil.Made{n}"}
        )
"""


def labels(text: str, plugin: str) -> dict[str, float]:
    errors = series(text, "plugbay_call_errors_total")
    return {dict(lb)["error"]: v for lb, v in errors.items() if dict(lb)["plugin"] == plugin}


async def test_a_library_exception_is_labelled_by_its_name_inline_and_in_a_worker(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.inline", FAILING)
    plugins("acme.boxed", FAILING, extra='isolation = "process"\n')
    async with make_host(monitor=FAST) as host, scraped(host) as scrape:
        for plugin in ("acme.inline", "acme.boxed"):
            for n in range(4):
                with pytest.raises(PlugbayError):
                    await host.call(plugin, "fail", n=n)
        text = await scrape()
    await promtool_accepts(text)
    inline, boxed = labels(text, "acme.inline"), labels(text, "acme.boxed")
    assert (
        inline
        == boxed
        == {
            "json.decoder.JSONDecodeError": 1,
            "sqlite3.OperationalError": 1,
            "other": 2,  # its own class, and one posing as json's
        }
    )


async def test_a_worker_claiming_library_names_gets_a_few_per_command(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.claims", CLAIMING, extra='isolation = "process"\n')
    async with make_host(monitor=FAST) as host, scraped(host) as scrape:
        for n in range(3 * MAX_LIBRARY_LABELS):
            with pytest.raises(PlugbayError):
                await host.call("acme.claims", "fail", n=n)
        text = await scrape()
    claimed = labels(text, "acme.claims")
    assert len(claimed) == MAX_LIBRARY_LABELS + 1
    assert claimed["other"] == 2 * MAX_LIBRARY_LABELS
    assert {f"evil.Made{n}" for n in range(MAX_LIBRARY_LABELS)} < set(claimed)
