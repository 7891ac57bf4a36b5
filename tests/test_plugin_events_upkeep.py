"""What the host keeps of plugin events' listeners: a log that a raising listener cannot
flood and a trickle of failures is still heard in, and no queue of a listener that is gone
or failed (``runtime.plugin_events``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from plugbay import PluginCrashed
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


#: a listener that holds each event until its gate opens (its queue fills meanwhile)
GATED = """
import asyncio
from plugbay import UtilityPlugin, command, on_event

class P(UtilityPlugin):
    async def initialize(self, context):
        self.gate = asyncio.Event()

    @on_event("cache.evicted")
    async def evicted(self, event: dict[str, int]) -> None:
        await self.gate.wait()

    @command
    def open(self) -> None:
        self.gate.set()
"""

#: a sandboxed listener that counts the events it hears, and can crash its worker
CRASHING = (
    COUNTER
    + """
    @command
    def crash(self) -> None:
        import os
        os._exit(9)
"""
)


def listens(priority: int, event: str = "cache.evicted", queue: int = 10000) -> str:
    return f'[events.listens."{event}"]\npriority = {priority}\nqueue = {queue}\n'


def make_host(plugins: PluginFactory, tmp_path: Path, **kwargs: Any) -> Host:
    return Host(
        plugins.root,
        state_dir=tmp_path / "state",
        entry_points=False,
        init_timeout=30,
        cleanup_timeout=2.0,
        **kwargs,
    )


class Clock:
    """The monotonic clock the host's log pace reads, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


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


async def test_a_listener_s_failures_are_said_once_a_minute_a_flood_and_a_trickle_alike(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """2,500 failures within a minute are one line of the log; the next one, a minute
    on, says how many went unsaid; then one failure a minute is said each time (a count
    rule, the first then every thousandth, would never say that trickle). The stats
    count every one, and the listener after it hears every event."""
    plugins("acme.raiser", RAISER, extra=listens(10))
    plugins("acme.counter", COUNTER, extra=listens(20))
    async with make_host(plugins, tmp_path) as host:
        events = host.manager.plugin_events
        events.clock = clock = Clock()

        def failed() -> int:
            return int(rows(host)[("acme.raiser", "cache.evicted")]["failed"])

        for n in range(2500):
            assert await events.publish("cache.evicted", {"n": n}, source="test") == 2
        await until(lambda: _equals(host.call("acme.counter", "count"), 2500), "all 2,500 heard")
        await until(lambda: failed() == 2500, "2,500 failed")
        for n in range(2500, 2503):  # a trickle: one a minute
            clock.now += 61
            assert await events.publish("cache.evicted", {"n": n}, source="test") == 2
            await until(lambda n=n: failed() == n + 1, f"failure {n + 1}")
        said = [r for r in host.logs("acme.raiser", limit=10_000) if "not handled" in r["message"]]
        assert [r["fields"]["failed"] for r in said] == [1, 2501, 2502, 2503]
        assert [r["fields"]["not_logged"] for r in said] == [0, 2499, 0, 0]
        assert "broke on 0" in said[0]["message"] and "(1 failed so far)" in said[0]["message"]
        assert "broke on 2500" in said[1]["message"]
        assert (
            "(2501 failed so far; 2499 more since the last one said, not logged)"
            in said[1]["message"]
        )
        assert "broke on 2502" in said[3]["message"]
        assert "(2503 failed so far)" in said[3]["message"]
        row = rows(host)[("acme.raiser", "cache.evicted")]
        assert (row["failed"], row["delivered"], row["dropped"]) == (2503, 0, 0)
        assert rows(host)[("acme.counter", "cache.evicted")]["delivered"] == 2503


async def test_a_full_queue_s_drops_are_said_once_a_minute_a_flood_and_a_trickle_alike(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """A listener holding its events with a queue of 1: the drops of a flood are one
    line, the next drop a minute on says how many went unsaid, and one drop a minute
    is said each time."""
    plugins("acme.gated", GATED, extra=listens(10, queue=1))
    async with make_host(plugins, tmp_path, inline=["acme.*"]) as host:
        events = host.manager.plugin_events
        events.clock = clock = Clock()

        def dropped() -> int:
            return int(rows(host)[("acme.gated", "cache.evicted")]["dropped"])

        for n in range(2000):  # the first is held by its handler, the next one waits
            await events.publish("cache.evicted", {"n": n}, source="test")
        flood = dropped()
        assert flood >= 1000
        for _ in range(3):  # a trickle: one a minute
            clock.now += 61
            assert await events.publish("cache.evicted", {"n": 0}, source="test") == 1
        said = [r for r in host.logs("acme.gated", limit=10_000) if "dropped:" in r["message"]]
        assert [r["fields"]["dropped_so_far"] for r in said] == [1, flood + 1, flood + 2, flood + 3]
        assert [r["fields"]["not_logged"] for r in said] == [0, flood - 1, 0, 0]
        assert f"{flood - 1} more since the last one said, not logged" in said[1]["message"]
        await host.call("acme.gated", "open")


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


async def test_a_failed_listeners_queue_leaves_and_it_listens_again_once_started(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """A listener whose worker crashed past its restart budget (failed: the host gave up
    on it) leaves stats and /metrics; started again, it hears events again."""
    plugins("acme.crashing", CRASHING, extra='isolation = "process"\n' + listens(10))
    plugins("acme.counter", COUNTER, extra=listens(20))
    async with make_host(plugins, tmp_path, max_crashes=1) as host:
        events = host.manager.plugin_events
        assert await events.publish("cache.evicted", {"n": 1}, source="test") == 2
        await until(lambda: _equals(host.call("acme.crashing", "count"), 1), "heard by it")
        with pytest.raises(PluginCrashed):
            await host.call("acme.crashing", "crash")
        assert host.plugin("acme.crashing").state == "failed"
        await until(lambda: ("acme.crashing", "cache.evicted") not in rows(host), "queue gone")
        assert event_series(host, "acme.crashing") == []
        assert event_series(host, "acme.counter")  # the neighbour's stay
        assert await events.publish("cache.evicted", {"n": 2}, source="test") == 1
        await until(lambda: _equals(host.call("acme.counter", "count"), 2), "the next heard")
        await host.enable("acme.crashing")  # started again: it listens again
        assert host.plugin("acme.crashing").state == "active"
        assert await events.publish("cache.evicted", {"n": 3}, source="test") == 2
        await until(lambda: _equals(host.call("acme.crashing", "count"), 1), "heard again")
        assert rows(host)[("acme.crashing", "cache.evicted")]["delivered"] == 1


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)
