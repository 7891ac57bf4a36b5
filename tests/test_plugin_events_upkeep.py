"""What the host keeps of plugin events' listeners: a log that a raising listener cannot
flood, and no queue of a listener that is gone (``runtime.plugin_events``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from plugbay.runtime.host import Host
from plugbay.runtime.prometheus import exposition
from tests._waiting import until
from tests.conftest import PluginFactory

pytestmark = [pytest.mark.slow]

#: a listener whose handler raises on every event
RAISER = """
from plugbay import UtilityPlugin, on_event

class P(UtilityPlugin):
    @on_event("cache.evicted")
    def evicted(self, event: dict[str, int]) -> None:
        raise RuntimeError(f"broke on {event['n']}")
"""

#: a listener that counts the events it hears
COUNTER = """
from plugbay import UtilityPlugin, command, on_event

class P(UtilityPlugin):
    heard = 0

    @on_event("cache.evicted")
    def evicted(self, event: dict[str, int]) -> None:
        self.heard += 1

    @command
    def count(self) -> int:
        return self.heard
"""


def listens(priority: int, event: str = "cache.evicted") -> str:
    return f'[events.listens."{event}"]\npriority = {priority}\nqueue = 10000\n'


def make_host(plugins: PluginFactory, tmp_path: Path) -> Host:
    return Host(
        plugins.root,
        state_dir=tmp_path / "state",
        entry_points=False,
        init_timeout=30,
        cleanup_timeout=2.0,
    )


def rows(host: Host) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["plugin"], r["event"]): r for r in host.manager.plugin_events.stats()}


def event_series(host: Host, plugin_id: str) -> list[str]:
    """The lines of /metrics' plugin-event families (by plugin and event) that name
    ``plugin_id``."""
    lines = exposition(host.manager).decode().splitlines()
    return [
        line
        for line in lines
        if line.startswith("plugbay_plugin_event")
        and 'event="' in line
        and f'plugin="{plugin_id}"' in line
    ]


async def test_a_listener_raising_on_every_event_is_said_a_bounded_number_of_times(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """2,500 events at a listener that raises on each: its log says the first failure,
    then every thousandth, each with how many were not said since; the stats count
    every one, and the listener after it hears every event."""
    plugins("acme.raiser", RAISER, extra=listens(10))
    plugins("acme.counter", COUNTER, extra=listens(20))
    async with make_host(plugins, tmp_path) as host:
        events = host.manager.plugin_events
        for n in range(2500):
            assert await events.publish("cache.evicted", {"n": n}, source="test") == 2
        await until(lambda: _equals(host.call("acme.counter", "count"), 2500), "all 2,500 heard")
        await until(lambda: rows(host)[("acme.raiser", "cache.evicted")]["failed"] == 2500, "")
        said = [r for r in host.logs("acme.raiser", limit=10_000) if "not handled" in r["message"]]
        assert [r["fields"]["failed"] for r in said] == [1, 1000, 2000]
        assert [r["fields"]["not_logged"] for r in said] == [0, 998, 999]
        assert "broke on 0" in said[0]["message"] and "(1 failed so far)" in said[0]["message"]
        assert "broke on 1999" in said[2]["message"]
        assert (
            "(2000 failed so far; 999 more since the last one said, not logged)"
            in (said[2]["message"])
        )
        row = rows(host)[("acme.raiser", "cache.evicted")]
        assert (row["failed"], row["delivered"], row["dropped"]) == (2500, 0, 0)
        assert rows(host)[("acme.counter", "cache.evicted")]["delivered"] == 2500


async def test_an_unloaded_listeners_queue_leaves_stats_and_metrics(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.gone", COUNTER, extra=listens(10))
    plugins("acme.counter", COUNTER, extra=listens(20))
    async with make_host(plugins, tmp_path) as host:
        events = host.manager.plugin_events
        assert await events.publish("cache.evicted", {"n": 1}, source="test") == 2
        await until(lambda: _equals(host.call("acme.counter", "count"), 1), "the first heard")
        assert ("acme.gone", "cache.evicted") in rows(host)
        await host.unload("acme.gone")
        await until(lambda: ("acme.gone", "cache.evicted") not in rows(host), "its queue gone")
        assert event_series(host, "acme.gone") == []
        assert event_series(host, "acme.counter")  # the neighbour's stay
        assert await events.publish("cache.evicted", {"n": 2}, source="test") == 1
        await until(lambda: _equals(host.call("acme.counter", "count"), 2), "the next heard")
        # loaded again, it listens again, with a queue of its own from naught
        await host.load("acme.gone")
        assert await events.publish("cache.evicted", {"n": 3}, source="test") == 2
        await until(lambda: _equals(host.call("acme.gone", "count"), 1), "heard once more")
        assert rows(host)[("acme.gone", "cache.evicted")]["delivered"] == 1


async def test_a_version_that_no_longer_listens_leaves_no_queue_behind(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    changing = plugins("acme.changing", COUNTER, extra=listens(10))
    plugins("acme.counter", COUNTER, extra=listens(20))
    async with make_host(plugins, tmp_path) as host:
        events = host.manager.plugin_events
        assert await events.publish("cache.evicted", {"n": 1}, source="test") == 2
        await until(lambda: _equals(host.call("acme.changing", "count"), 1), "heard by it")
        manifest, code = changing / "plugin.toml", changing / "main.py"
        manifest.write_text(
            manifest.read_text()
            .replace('version = "1.0.0"', 'version = "1.1.0"')
            .replace('listens."cache.evicted"', 'listens."cache.other"')
        )
        code.write_text(code.read_text().replace('"cache.evicted"', '"cache.other"'))
        await host.reload("acme.changing")
        await until(
            lambda: ("acme.changing", "cache.evicted") not in rows(host), "the old queue gone"
        )
        assert event_series(host, "acme.changing") == []
        assert await events.publish("cache.evicted", {"n": 2}, source="test") == 1
        assert await events.publish("cache.other", {"n": 3}, source="test") == 1
        await until(lambda: _equals(host.call("acme.counter", "count"), 2), "both heard")
        await until(lambda: _equals(host.call("acme.changing", "count"), 1), "the new one heard")
        assert set(rows(host)) == {
            ("acme.counter", "cache.evicted"),
            ("acme.changing", "cache.other"),
        }


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)
