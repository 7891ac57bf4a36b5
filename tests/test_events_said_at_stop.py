"""A paced log line's count is said when its source stops: a trickle of time-outs, or of
events passed on unheard, that ends within the minute is not kept unsaid for ever
(``runtime.log_pace``: the first line, then at most one a minute)."""

from __future__ import annotations

import asyncio
import functools
import logging
from pathlib import Path

import pytest

from plugbay import SystemEvent
from plugbay.runtime.events import EventBus
from plugbay.runtime.host import Host
from tests._waiting import until
from tests.conftest import PluginFactory
from tests.test_events_unheard import (
    EVENTS,
    PRODUCER,
    SLOW,
    _relisten,
    _reload,
    _unheard,
    write_slow,
)

#: a host listener's time (s) on an event, short for the test (5 s on a host)
CUT_AFTER = 0.2


async def test_a_listener_cut_short_twice_then_never_again_has_its_count_said_at_stop(
    plugins: PluginFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The first time-out is said; the second, within the minute, is kept; no third
    comes: the host's stop says "1 more cut short" for it."""
    caplog.set_level(logging.WARNING, logger="plugbay.events")
    monkeypatch.setattr(
        "plugbay.runtime.host.EventBus", functools.partial(EventBus, handler_timeout=CUT_AFTER)
    )
    plugins("acme.p")

    async def hang(event: SystemEvent) -> None:
        if event.data.get("hang"):
            await asyncio.Event().wait()  # never set: it runs past its time

    host = Host(plugins.root, state_dir=tmp_path / "state", entry_points=False, inline=["*"])
    await host.start()
    try:
        host.events.listen("acme.hangs", 0, ("test.*",), hang)
        host.events.emit("test.tick", hang=True)
        host.events.emit("test.tick", hang=True)  # in its lane, cut short again
        await until(lambda: host.events.failures >= 2, "the second cut short", 30)
        assert len(_said(caplog, "took more than")) == 1
        assert _said(caplog, "more cut short") == []
    finally:
        await host.stop()
    assert _said(caplog, "more cut short") == [
        "listener 'acme.hangs': 1 more cut short since the last line said, not logged until "
        "now (it stopped listening)"
    ]


async def test_events_passed_on_unheard_within_the_minute_are_named_at_stop(
    plugins: PluginFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A swap's unheard events are said; the next swap's, within the minute, are kept;
    no swap follows: the host's stop names them."""
    caplog.set_level(logging.INFO)
    plugins("acme.producer", PRODUCER, extra=f"[events]\nemits = {list(EVENTS)!r}\n")
    slow = plugins("acme.slow", SLOW)
    write_slow(slow, "1.0.0", "cache.evicted")
    host = Host(plugins.root, state_dir=tmp_path / "state", entry_points=False, inline=["*"])
    await host.start()
    try:
        for n in range(2):  # the first held by its handler, the second waits
            await host.call("acme.producer", "send", name="cache.evicted", key=f"a/{n}")
        await until(lambda: _busy(host), "one held")
        await _reload(host, slow, "1.1.0", "cache.other")
        await until(lambda: _said(caplog, "not delivered"), "the first unheard line")
        await _relisten(host, slow, ("1.1.0", "1.2.0", "1.3.0"), "cache.flushed")
        await until(lambda: _unheard(host, "cache.flushed") == 1, "it passed on unheard")
        unheard_log = host.manager.plugin_events.unheard_said
        await until(lambda: not unheard_log.gathering("acme.slow"), "its line's turn")
        assert len(_said(caplog, "not delivered")) == 1  # kept: within the minute
    finally:
        await host.stop()
    assert _said(caplog, "not delivered")[1:] == [
        "1 event queued for 'acme.slow' was not delivered: it waited for an earlier "
        "version, and version 1.3.0 does not listen to cache.flushed (1); each went on to "
        "the next listener (counted as unheard)"
    ]


async def _busy(host: Host) -> bool:
    return bool(await host.call("acme.slow", "busy_with"))


def _said(caplog: pytest.LogCaptureFixture, words: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if words in r.getMessage()]


#: a listener of plugin events that fails on each one
FAILING = """
from plugbay import UtilityPlugin, on_event

class P(UtilityPlugin):
    @on_event("cache.evicted")
    async def evicted(self, event: dict[str, str]) -> None:
        raise RuntimeError("no room")
"""


async def test_a_plugin_listener_failing_twice_then_never_again_has_its_count_said_at_stop(
    plugins: PluginFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    plugins("acme.producer", PRODUCER, extra=f"[events]\nemits = {list(EVENTS)!r}\n")
    plugins("acme.failing", FAILING, extra='[events.listens."cache.evicted"]\n')
    host = Host(plugins.root, state_dir=tmp_path / "state", entry_points=False, inline=["*"])
    await host.start()
    try:
        for n in range(2):
            await host.call("acme.producer", "send", name="cache.evicted", key=f"a/{n}")
        await until(lambda: _failed(host) >= 2, "both failed")
        assert len(_said(caplog, "was not handled")) == 1  # the second: within the minute
    finally:
        await host.stop()
    assert _said(caplog, "more failed") == [
        "event 'cache.evicted': 1 more failed since the last line said, not logged until "
        "now (its listener stopped)"
    ]


def _failed(host: Host) -> int:
    return sum(row["failed"] for row in host.manager.plugin_events.stats())
