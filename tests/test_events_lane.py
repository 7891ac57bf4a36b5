"""A system listener past its time (5 s) on a real host: cut short, it gets its next
events in a lane of its own while the other listeners and the host go on; what the
operator sees of it is one line per kind of trouble (then at most one a minute) and
its drops counted in ``/metrics``, by plugin.

System plugins run inline only (a sandboxed one is not subscribed to the host's
events: ``runtime.starting``), so there is no worker path to test here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from plugbay.runtime.events import LANE_SIZE
from plugbay.runtime.host import Host
from plugbay.runtime.prometheus import exposition
from tests._waiting import until
from tests.conftest import PluginFactory
from tests.test_plugin_events import sample

#: a system listener that hangs on the events marked ``hang`` and keeps the others' n
LISTENER = """
import asyncio
from plugbay import SystemEvent, SystemPlugin, command

class P(SystemPlugin):
    system_hooks = ("test.*",)

    def __init__(self) -> None:
        self.heard: list[int] = []

    async def on_system_event(self, event: SystemEvent) -> None:
        if event.data.get("hang"):
            await asyncio.Event().wait()  # never set: it runs past its time
        self.heard.append(int(event.data["n"]))

    @command
    def heard_events(self) -> list[int]:
        return self.heard
"""


@pytest.mark.slow
async def test_a_listener_past_its_time_is_said_once_counted_and_holds_no_one_up(
    plugins: PluginFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """acme.slow hangs on event 0 (cut short after 5 s: it falls behind), then 1,101
    events wait for it in its lane of 1,000 (101 dropped, said once), the last of them
    hangs again (cut short again: not said again within the minute). acme.fast, after
    it in priority, gets every event, and the host answers calls all along."""
    caplog.set_level(logging.WARNING, logger="plugbay.events")
    plugins("acme.slow", LISTENER, type="system",
            extra="priority = 10\n")  # fmt: skip
    plugins("acme.fast", LISTENER.replace('data.get("hang")', 'data.get("never")'),
            type="system", extra="priority = 20\n")  # fmt: skip
    host = Host(plugins.root, state_dir=tmp_path / "state", entry_points=False, inline=["*"])
    await host.start()
    try:
        last = LANE_SIZE + 101
        host.events.emit("test.tick", n=0, hang=True)
        for n in range(1, last):
            host.events.emit("test.tick", n=n)
        host.events.emit("test.tick", n=last, hang=True)
        # while acme.slow hangs on event 0, the host still answers
        assert await host.call("acme.fast", "heard_events") == []
        fast = await until(
            lambda: _heard(host, "acme.fast", last + 1), "acme.fast had every event", 30
        )
        assert fast == list(range(last + 1))
        # its lane held the last 1,000 (the oldest 101 dropped), then hung on the last
        slow = await until(lambda: _heard(host, "acme.slow", LANE_SIZE - 1), "its lane", 30)
        assert slow == list(range(102, last))
        await until(lambda: host.events.failures >= 2, "the second cut short", 30)
        host.events.emit("test.tick", n=last + 1)  # in time again: back in line
        await until(lambda: _heard(host, "acme.slow", LANE_SIZE), "back in line", 30)

        cut_short = _said(caplog, "took more than 5 s")
        assert len(cut_short) == 1, cut_short
        assert cut_short[0].startswith("listener 'acme.slow' took more than 5 s on event test.tick")
        behind = _said(caplog, "events behind")
        assert behind == [
            f"listener 'acme.slow' is {LANE_SIZE} events behind: dropped test.tick for it"
        ]
        text = exposition(host.manager).decode()
        slow_labels = {"plugin": "acme.slow", "version": "1.0.0"}
        fast_labels = {"plugin": "acme.fast", "version": "1.0.0"}
        assert sample(text, "plugbay_plugin_system_events_dropped_total", **slow_labels) == 101
        assert sample(text, "plugbay_plugin_system_events_dropped_total", **fast_labels) == 0
        # the host's queue was never full: its count is not the lane's (its help says so)
        assert sample(text, "plugbay_events_dropped_total") == 0
        assert host.events.dropped == 0
    finally:
        await host.stop()


async def _heard(host: Host, plugin: str, n: int) -> list[int] | None:
    heard: list[int] = await host.call(plugin, "heard_events")
    return heard if len(heard) >= n else None


def _said(caplog: pytest.LogCaptureFixture, words: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if words in r.getMessage()]
