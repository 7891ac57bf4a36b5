"""Events queued for a listener across its reload, when the new version no longer listens
to them: its log says which (by name, with their counts), for which plugin, in one line
for the swap, then at most one line a minute (``runtime.unheard_log``)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from plugbay.runtime.host import Host
from tests._waiting import until
from tests.conftest import PluginFactory

PRODUCER = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    async def send(self, name: str, key: str) -> int:
        return await self.context.events.emit(name, {"key": key})
"""

#: events a listener hears (and the next version drops)
EVENTS = ("cache.evicted", "cache.flushed", "cache.warmed", "cache.resized", "cache.moved")

#: a listener whose handlers each wait until it is let go
SLOW = """
import asyncio
from plugbay import UtilityPlugin, command, on_event, PluginContext

class P(UtilityPlugin):
    async def initialize(self, context: PluginContext) -> None:
        self.gate = asyncio.Event()
        self.busy: list[str] = []

    async def _wait(self, event: dict[str, str]) -> None:
        self.busy.append(event["key"])
        await self.gate.wait()

    @command
    def busy_with(self) -> list[str]:
        return self.busy
"""


def write_slow(directory: Path, version: str, *names: str) -> None:
    """acme.slow at ``version``, listening to ``names`` (queues of 10), a handler each."""
    (directory / "plugin.toml").write_text(
        f'id = "acme.slow"\nversion = "{version}"\ntype = "utility"\nentry = "main:P"\n'
        + "".join(f'[events.listens."{name}"]\nqueue = 10\n' for name in names)
    )
    (directory / "main.py").write_text(
        SLOW
        + "".join(
            f'\n    @on_event("{name}")\n    async def on_{i}(self, event: dict[str, str]) -> None:'
            "\n        await self._wait(event)\n"
            for i, name in enumerate(names)
        )
    )


class Clock:
    """The monotonic clock the log's pace reads, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_events_passed_on_unheard_are_named_for_their_plugin_once_a_swap(
    plugins: PluginFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """acme.slow 1.0 hears five events; each of its handlers holds the first of its kind
    while one or two more wait. Version 1.1 listens to none of them: the 7 that waited
    are one line naming the first three kinds with their counts and "2 more", said for
    acme.slow; a second reload within the minute adds no line, the next a minute on does,
    naming what went unheard since."""
    caplog.set_level(logging.INFO)
    plugins("acme.producer", PRODUCER, extra=f"[events]\nemits = {list(EVENTS)!r}\n")
    slow = plugins("acme.slow", SLOW)
    write_slow(slow, "1.0.0", *EVENTS)
    host = Host(plugins.root, state_dir=tmp_path / "state", entry_points=False, inline=["*"])
    await host.start()
    host.manager.plugin_events.clock = clock = Clock()
    try:
        for name in EVENTS:  # the first of each kind is held by its handler
            await host.call("acme.producer", "send", name=name, key=f"{name}/1")
        await until(lambda: _len(host.call("acme.slow", "busy_with"), 5), "five held")
        for name, more in zip(EVENTS, (2, 2, 1, 1, 1), strict=True):  # 7 wait
            for n in range(more):
                await host.call("acme.producer", "send", name=name, key=f"{name}/{n + 2}")
        await _reload(host, slow, "1.1.0", "cache.other")
        lines = await until(lambda: _said(caplog, "not delivered"), "the unheard line")
        assert lines == [
            "7 events queued for 'acme.slow' were not delivered: they waited for an earlier "
            "version, and version 1.1.0 does not listen to cache.evicted (2), cache.flushed "
            "(2), cache.warmed (1) and 2 more; each went on to the next listener (counted "
            "as unheard)"
        ]
        assert [r for r in host.logs("acme.slow") if "not delivered" in r["message"]]

        # 1.2 listens to cache.evicted, 1.3 does not: under the minute, not said yet
        await _relisten(host, slow, ("1.1.0", "1.2.0", "1.3.0"), "cache.evicted")
        await until(lambda: _unheard(host, "cache.evicted") == 1, "it passed on unheard")
        unheard_log = host.manager.plugin_events.unheard_said
        await until(lambda: not unheard_log.gathering("acme.slow"), "its line's turn")
        assert len(_said(caplog, "not delivered")) == 1
        clock.now += 61  # a minute on, the next one is said with the unsaid before it
        await _relisten(host, slow, ("1.3.0", "1.4.0", "1.5.0"), "cache.flushed")
        lines = await until(lambda: _said(caplog, "not delivered")[1:], "the next line")
        assert lines == [
            "2 events queued for 'acme.slow' were not delivered: they waited for an earlier "
            "version, and version 1.5.0 does not listen to cache.evicted (1), cache.flushed "
            "(1); each went on to the next listener (counted as unheard)"
        ]
    finally:
        await host.stop()


async def _reload(host: Host, directory: Path, new: str, instead: str) -> None:
    """Reload acme.slow as ``new``, whose manifest listens to ``instead`` only (its held
    handlers let go once the swap holds its calls)."""
    before = host.plugin("acme.slow").handle
    assert before is not None and before.instance is not None
    write_slow(directory, new, instead)
    reload = asyncio.ensure_future(host.reload("acme.slow"))
    await until(lambda: host.manager.route_of("acme.slow") is None, "the swap's hold")
    before.instance.gate.set()
    await reload
    assert host.plugin("acme.slow").version == new


async def _relisten(host: Host, directory: Path, versions: tuple[str, str, str], name: str) -> None:
    """From ``versions[0]``, reload as ``versions[1]``, listening to ``name`` (its handler
    holds one, one more waits), then as ``versions[2]``, which does not: one unheard."""
    _, listening, deaf = versions
    write_slow(directory, listening, name)
    await host.reload("acme.slow")
    for n in range(2):
        await host.call("acme.producer", "send", name=name, key=f"{name}/{listening}/{n}")
    await until(lambda: _len(host.call("acme.slow", "busy_with"), 1), "one held")
    await _reload(host, directory, deaf, "cache.other")


def _unheard(host: Host, event: str) -> int:
    rows = host.info("acme.slow")["events"]["unheard"]
    return sum(r["unheard"] for r in rows if r["event"] == event)


async def _len(value: Any, n: int) -> bool:
    return len(await value) >= n


def _said(caplog: pytest.LogCaptureFixture, words: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if words in r.getMessage()]
