"""Plugin events: any plugin emits and listens, inline and in a sandboxed worker.

Real host, real sandboxed workers: an event reaches an inline and a sandboxed
listener in priority order; a full queue drops per its declared policy and the
drops are counted in ``/metrics``; an event a plugin did not declare is refused
with a clear error while its neighbours keep answering.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from plugbay import CommandNotFound, ParameterError, PermissionDenied, PlugbayError
from plugbay.cli.events import event_rows
from plugbay.runtime.host import Host
from plugbay.runtime.prometheus import exposition
from tests._waiting import until
from tests.conftest import PluginFactory

PRODUCER = """
from dataclasses import dataclass
from plugbay import UtilityPlugin, command

@dataclass
class Evicted:
    key: str
    size: int = 0

class P(UtilityPlugin):
    @command
    async def evict(self, key: str) -> int:
        return await self.context.events.emit("cache.evicted", Evicted(key, len(key)))

    @command
    async def sneak(self) -> int:
        return await self.context.events.emit("cache.secret", {"key": "x"})

    @command
    def ping(self) -> str:
        return "pong"
"""

PRODUCER_MANIFEST = """
[events]
emits = ["cache.evicted"]
"""

#: a listener that records when it started and finished handling each event
LISTENER = """
import time
import msgspec
from plugbay import UtilityPlugin, command, on_event

class Evicted(msgspec.Struct):
    key: str
    size: int

class P(UtilityPlugin):
    @on_event("cache.evicted")
    async def evicted(self, event: Evicted) -> None:
        start = time.time_ns()
        seen = self.context.storage.get("seen", [], type=list)
        seen.append([event.key, event.size, start, time.time_ns()])
        self.context.storage.set("seen", seen)

    @command
    def seen(self) -> list[list[int | str]]:
        return self.context.storage.get("seen", [], type=list)
"""

#: a listener whose handler waits until it is let go, so its queue fills
SLOW = """
import asyncio
from plugbay import UtilityPlugin, command, on_event, PluginContext

class P(UtilityPlugin):
    async def initialize(self, context: PluginContext) -> None:
        self.gate = asyncio.Event()
        self.handled: list[str] = []
        self.current = ""

    @on_event("cache.evicted")
    async def evicted(self, event: dict[str, str | int]) -> None:
        self.current = str(event["key"])
        await self.gate.wait()
        self.handled.append(str(event["key"]))

    @command
    def busy_with(self) -> str:
        return self.current

    @command
    def let_go(self) -> None:
        self.gate.set()

    @command
    def handled_keys(self) -> list[str]:
        return self.handled
"""


def listens(priority: int, extra: str = "") -> str:
    return f'[events.listens."cache.evicted"]\npriority = {priority}\n{extra}'


def make_host(plugins: PluginFactory, tmp_path: Path, inline: list[str]) -> Host:
    return Host(
        plugins.root,
        state_dir=tmp_path / "state",
        entry_points=False,
        init_timeout=30,
        cleanup_timeout=2.0,
        inline=inline,
    )


async def test_an_event_reaches_inline_and_sandboxed_listeners_in_priority_order(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.producer", PRODUCER, extra=PRODUCER_MANIFEST)
    plugins("acme.first", LISTENER, extra=listens(10))  # sandboxed, runs first
    plugins("acme.second", LISTENER, extra=listens(20))  # inline, runs after
    plugins("acme.deaf")  # declares nothing: hears nothing
    host = make_host(plugins, tmp_path, inline=["acme.second", "acme.producer", "acme.deaf"])
    await host.start()
    try:
        assert host.manager.record("acme.first").isolation == "process"
        assert host.manager.record("acme.second").isolation == "inline"
        for key in ("alpha", "beta", "gamma"):
            assert await host.call("acme.producer", "evict", key=key) == 2
        first = await until(
            lambda: _seen(host, "acme.first", 3), "the sandboxed listener had all three"
        )
        second = await until(lambda: _seen(host, "acme.second", 3), "the inline one too")
        # the payload arrived typed (the size field came through) and in emit order
        assert [(k, s) for k, s, *_ in first] == [("alpha", 5), ("beta", 4), ("gamma", 5)]
        assert [(k, s) for k, s, *_ in second] == [("alpha", 5), ("beta", 4), ("gamma", 5)]
        # priority: the inline listener (priority 20), though faster to reach, started
        # each event only after the sandboxed one (priority 10) had finished it
        for (_, _, _, first_done), (_, _, second_start, _) in zip(first, second, strict=True):
            assert first_done <= second_start
        rows = {r["plugin"]: r for r in host.manager.plugin_events.stats()}
        assert rows["acme.first"]["delivered"] == rows["acme.second"]["delivered"] == 3
        assert "acme.deaf" not in rows
        # a handler is not a command: a caller cannot invoke it, in a worker or inline
        for plugin in ("acme.first", "acme.second"):
            with pytest.raises(CommandNotFound):
                await host.call(plugin, "event:cache.evicted", event={"key": "x", "size": 1})
    finally:
        await host.stop()


async def _seen(host: Host, plugin: str, n: int) -> list[Any] | None:
    seen: list[Any] = await host.call(plugin, "seen")
    return seen if len(seen) >= n else None


@pytest.mark.parametrize(
    ("policy", "handled", "isolation"),
    [
        # e1 is being handled; e2, e3 wait (queue 2); e4, e5 arrive to a full queue
        ("drop-oldest", ["e1", "e4", "e5"], "process"),
        ("drop-newest", ["e1", "e2", "e3"], "inline"),
        ("block", ["e1", "e2", "e3"], "inline"),
    ],
)
async def test_a_full_queue_drops_by_its_declared_policy_and_counts_the_drops(
    plugins: PluginFactory, tmp_path: Path, policy: str, handled: list[str], isolation: str
) -> None:
    plugins("acme.producer", PRODUCER, extra=PRODUCER_MANIFEST)
    plugins(
        "acme.slow",
        SLOW,
        extra=listens(10, f'queue = 2\noverflow = "{policy}"\nblock-timeout = 0.05\n'),
    )
    plugins("acme.after", LISTENER, extra=listens(20))  # after the slow one, own queue
    inline = ["acme.producer", "acme.after"] + (["acme.slow"] if isolation == "inline" else [])
    host = make_host(plugins, tmp_path, inline=inline)
    await host.start()
    try:
        await host.call("acme.producer", "evict", key="e1")
        await until(lambda: _equals(host.call("acme.slow", "busy_with"), "e1"), "e1 being handled")
        for key in ("e2", "e3", "e4", "e5"):
            await host.call("acme.producer", "evict", key=key)
        stats = {r["plugin"]: r for r in host.manager.plugin_events.stats()}
        assert stats["acme.slow"]["dropped"] == 2
        assert stats["acme.slow"]["queued"] == 2
        await host.call("acme.slow", "let_go")
        got = await until(
            lambda: _len_at_least(host.call("acme.slow", "handled_keys"), 3), "all handled"
        )
        assert got == handled
        # a drop is this listener's only: the one after it sees every event once (a
        # dropped one moves on at once, ahead of those still waiting for the slow one)
        after = await until(lambda: _seen(host, "acme.after", 5), "the next listener had all")
        assert sorted(k for k, *_ in after) == ["e1", "e2", "e3", "e4", "e5"]
        # plugbay info says it too, per listener
        listen = host.info("acme.slow")["events"]["listens"][0]
        assert (listen["event"], listen["overflow"], listen["dropped"]) == (
            "cache.evicted",
            policy,
            2,
        )
        assert f"{policy}): 3 delivered, 0 failed, 2 dropped" in dict(
            event_rows(host.info("acme.slow"))
        ).get("listens", "")
        text = exposition(host.manager).decode()
        slow = {"plugin": "acme.slow", "event": "cache.evicted"}
        assert sample(text, "plugbay_plugin_events_dropped_total", **slow, overflow=policy) == 2
        assert sample(text, "plugbay_plugin_event_queue_limit", **slow) == 2
        assert sample(text, "plugbay_plugin_event_queue_length", **slow) == 0
        assert sample(text, "plugbay_plugin_event_deliveries_total", **slow) == 3
        sent = {"plugin": "acme.producer", "event": "cache.evicted"}
        assert sample(text, "plugbay_plugin_events_emitted_total", **sent) == 5
    finally:
        await host.stop()


def sample(text: str, name: str, **labels: str) -> float | None:
    """One sample of the Prometheus exposition ``text``, by name and labels."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return None


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def _len_at_least(value: Any, n: int) -> Any:
    got = await value
    return got if len(got) >= n else None


@pytest.mark.parametrize("isolation", ["process", "inline"])
async def test_an_undeclared_event_is_refused_and_the_neighbours_keep_answering(
    plugins: PluginFactory, tmp_path: Path, isolation: str
) -> None:
    plugins("acme.producer", PRODUCER, extra=PRODUCER_MANIFEST)
    plugins(
        "acme.listener",
        LISTENER,
        extra='[events.listens."cache.evicted"]\n',
    )
    inline = ["acme.listener"] + (["acme.producer"] if isolation == "inline" else [])
    host = make_host(plugins, tmp_path, inline=inline)
    await host.start()
    try:
        with pytest.raises(PermissionDenied) as refused:
            await host.call("acme.producer", "sneak")
        error = refused.value
        assert error.plugin == "acme.producer"
        assert "emitting the event 'cache.secret'" in error.message
        assert error.hint is not None and '[events] emits = ["cache.secret"]' in error.hint
        assert host.manager.broker.refused["acme.producer"] == 1
        # nothing was delivered, and everyone still answers, the refused plugin too
        assert await host.call("acme.listener", "seen") == []
        assert await host.call("acme.producer", "ping") == "pong"
        assert await host.call("acme.producer", "evict", key="ok") == 1
        await until(lambda: _seen(host, "acme.listener", 1), "the declared event delivered")
        history = host.state.history("acme.producer") if host.state else []
        assert any(e.action == "security.denied" for e in history)
    finally:
        await host.stop()


async def test_a_payload_that_does_not_fit_the_handler_is_refused_there(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.producer", PRODUCER, extra=PRODUCER_MANIFEST)
    strict = LISTENER.replace("size: int", "size: str")  # the producer sends an int
    plugins("acme.strict", strict, extra=listens(10))
    plugins("acme.fine", LISTENER, extra=listens(20))
    host = make_host(plugins, tmp_path, inline=["acme.producer"])
    await host.start()
    try:
        await host.call("acme.producer", "evict", key="k")
        await until(lambda: _seen(host, "acme.fine", 1), "the fitting listener had it")
        rows = {r["plugin"]: r for r in host.manager.plugin_events.stats()}
        assert rows["acme.strict"]["failed"] == 1 and rows["acme.strict"]["delivered"] == 0
        assert await host.call("acme.strict", "seen") == []
        lines = host.monitor.logs.recent("acme.strict") if host.monitor else []
        assert any("not handled" in str(line) and "size" in str(line) for line in lines)
    finally:
        await host.stop()


#: a listener whose handler is a plain ``def``: a worker answers it as its call is read,
#: the host runs an inline one at once (no timer: nothing could stop a def)
DEF_LISTENER = """
import msgspec
from plugbay import UtilityPlugin, command, on_event

class Evicted(msgspec.Struct):
    key: str
    size: int

class P(UtilityPlugin):
    @on_event("cache.evicted")
    def evicted(self, event: Evicted) -> None:
        if event.key == "boom":
            raise RuntimeError("the handler broke on boom")
        self.context.storage.set("seen", [*self.context.storage.get("seen", [], type=list), event.key])
        return len(event.key)  # a value nobody asked for: a handler's result is not used

    @command
    def seen(self) -> list[str]:
        return self.context.storage.get("seen", [], type=list)
"""


@pytest.mark.parametrize("isolation", ["process", "inline"])
async def test_a_def_handler_handles_fails_and_refuses_in_place(
    plugins: PluginFactory, tmp_path: Path, isolation: str
) -> None:
    """A def handler's events, in order: handled (what it returns is ignored, as it is for
    an async one), one it raises on counted as failed and said in its log, and the next
    handled; a payload that does not fit refused there."""
    plugins("acme.producer", PRODUCER, extra=PRODUCER_MANIFEST)
    plugins("acme.def", DEF_LISTENER, extra=listens(10))
    plugins("acme.strict", DEF_LISTENER.replace("size: int", "size: str"), extra=listens(20))
    inline = ["acme.producer"] + (["acme.def", "acme.strict"] if isolation == "inline" else [])
    host = make_host(plugins, tmp_path, inline=inline)
    await host.start()
    try:
        assert host.manager.record("acme.def").isolation == isolation
        for key in ("a", "boom", "b"):
            assert await host.call("acme.producer", "evict", key=key) == 2
        assert await until(lambda: _seen(host, "acme.def", 2), "a and b handled") == ["a", "b"]

        def stats() -> dict[str, dict[str, Any]]:
            return {r["plugin"]: r for r in host.manager.plugin_events.stats()}

        await until(lambda: stats()["acme.strict"]["failed"] == 3 or None, "all three refused")
        rows = stats()
        assert rows["acme.def"]["delivered"] == 2 and rows["acme.def"]["failed"] == 1
        lines = [str(x) for x in (host.monitor.logs.recent("acme.def") if host.monitor else [])]
        assert any("not handled" in x and "broke on boom" in x for x in lines)
        strict = [str(x) for x in (host.monitor.logs.recent("acme.strict") if host.monitor else [])]
        assert any("not handled" in x and "size" in x for x in strict)
        assert await host.call("acme.strict", "seen") == []
        assert await host.call("acme.producer", "ping") == "pong"
    finally:
        await host.stop()


async def test_who_hears_an_event_follows_each_change_of_the_plugins(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """An event's listeners are kept between publishes (``PluginEvents._chain``): each
    change of a plugin (disabled, enabled, unloaded, loaded, reloaded to listen to
    another event, installed) is heard at the next publish."""
    plugins("acme.producer", PRODUCER, extra=PRODUCER_MANIFEST)
    first = plugins("acme.a", LISTENER, extra=listens(10))
    plugins("acme.b", LISTENER, extra=listens(20))
    host = make_host(plugins, tmp_path, inline=["*"])
    await host.start()
    try:

        async def heard_by(key: str) -> int:
            n: int = await host.call("acme.producer", "evict", key=key)
            return n

        assert await heard_by("k1") == 2
        await host.disable("acme.b")
        assert await heard_by("k2") == 1
        await host.enable("acme.b")
        assert await heard_by("k3") == 2
        await host.unload("acme.a")
        assert await heard_by("k4") == 1
        await host.load("acme.a")
        assert await heard_by("k5") == 2
        manifest = first / "plugin.toml"  # its next version listens to another event only
        manifest.write_text(
            manifest.read_text()
            .replace('version = "1.0.0"', 'version = "1.1.0"')
            .replace('listens."cache.evicted"', 'listens."cache.other"')
        )
        code = first / "main.py"
        code.write_text(
            code.read_text().replace('on_event("cache.evicted")', 'on_event("cache.other")')
        )
        await host.reload("acme.a")
        assert host.plugin("acme.a").version == "1.1.0"
        assert await heard_by("k6") == 1
        newcomer = plugins("acme.c", LISTENER, extra=listens(30), dirname="newcomer-src")
        host.install(newcomer)
        await host.load("acme.c")
        assert await heard_by("k7") == 2
        keys = await until(lambda: _keys(host, "acme.b", 6), "acme.b had its six events")
        # not k2, sent while it was disabled (an event waiting on acme.a, ahead of it in
        # the chain, as acme.a changed may reach it after a later one)
        assert sorted(keys) == ["k1", "k3", "k4", "k5", "k6", "k7"]
        assert await until(lambda: _keys(host, "acme.c", 1), "the newcomer had its event") == ["k7"]
    finally:
        await host.stop()


async def test_events_queued_for_a_version_are_not_sent_to_one_that_no_longer_listens(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """Events wait for their listener while it is reloaded; the new version listens to
    another event only, so they are not sent to it (it has no handler for them): they
    are counted as unheard, said in its log, and go on to the next listener."""
    plugins("acme.producer", PRODUCER, extra=PRODUCER_MANIFEST)
    slow = plugins("acme.slow", SLOW, extra=listens(10, "queue = 10\n"))
    plugins("acme.after", LISTENER, extra=listens(20))
    host = make_host(plugins, tmp_path, inline=["*"])
    await host.start()
    try:
        await host.call("acme.producer", "evict", key="e1")
        await until(lambda: _equals(host.call("acme.slow", "busy_with"), "e1"), "e1 being handled")
        for key in ("e2", "e3"):
            await host.call("acme.producer", "evict", key=key)
        old = host.plugin("acme.slow").handle
        assert old is not None and old.instance is not None
        manifest, code = slow / "plugin.toml", slow / "main.py"
        manifest.write_text(
            manifest.read_text()
            .replace('version = "1.0.0"', 'version = "1.1.0"')
            .replace('listens."cache.evicted"', 'listens."cache.other"')
        )
        code.write_text(
            code.read_text().replace('on_event("cache.evicted")', 'on_event("cache.other")')
        )
        reload = asyncio.ensure_future(host.reload("acme.slow"))
        # calls (and events) are held at the router, and the swap drains e1's handler
        await until(lambda: host.manager.route_of("acme.slow") is None, "the swap's hold")
        old.instance.gate.set()  # type: ignore[attr-defined]  # e1 is done: the swap goes on
        await reload
        assert host.plugin("acme.slow").version == "1.1.0"
        after = await until(lambda: _keys(host, "acme.after", 3), "the next listener had all")
        assert sorted(after) == ["e1", "e2", "e3"]
        # what waited for it passed on, its queue for the event leaves stats and /metrics
        await until(
            lambda: not [
                r for r in host.manager.plugin_events.stats()
                if (r["plugin"], r["event"]) == ("acme.slow", "cache.evicted")
            ],
            "the old listener's queue gone",
        )  # fmt: skip
        assert await host.call("acme.slow", "handled_keys") == []  # the new version's
        unheard = "version 1.1.0 does not listen to cache.evicted (2)"  # one line, a swap's
        await until(lambda: [r for r in host.logs("acme.slow") if unheard in r["message"]], "it")
        messages = [r["message"] for r in host.logs("acme.slow")]
        assert not [m for m in messages if "was not handled" in m]
        text = exposition(host.manager).decode()
        slow_labels = {"plugin": "acme.slow", "event": "cache.evicted"}
        assert sample(text, "plugbay_plugin_events_unheard_total", **slow_labels) is None
        # plugbay info says it too, though the version it runs lists no such listen
        info = host.info("acme.slow")["events"]
        assert [r["event"] for r in info["listens"]] == ["cache.other"]
        assert info["unheard"] == [{"event": "cache.evicted", "unheard": 2}]
        assert dict(event_rows(host.info("acme.slow")))["no longer hears"].startswith(
            "cache.evicted: 2 queued for it were passed on unheard"
        )
    finally:
        await host.stop()


async def _keys(host: Host, plugin: str, n: int) -> list[str] | None:
    seen = await _seen(host, plugin, n)
    return None if seen is None else [str(k) for k, *_ in seen]


#: a producer whose payloads a user might get wrong: an object that is not data, a huge one
CARELESS = """
import threading
from dataclasses import dataclass
from plugbay import UtilityPlugin, command

@dataclass
class Evicted:
    key: str
    lock: object = None

class P(UtilityPlugin):
    @command
    async def evict_with_lock(self) -> int:
        return await self.context.events.emit("cache.evicted", Evicted("k", threading.Lock()))

    @command
    async def evict_huge(self) -> int:
        return await self.context.events.emit("cache.evicted", {"key": "x" * 20_000_000})

    @command
    async def evict_many(self, n: int) -> int:
        return sum([await self.context.events.emit("cache.evicted", {"key": str(i), "size": i}) for i in range(n)])

    @command
    def ping(self) -> str:
        return "pong"
"""


@pytest.mark.parametrize("isolation", ["process", "inline"])
async def test_a_payload_that_is_not_data_or_huge_is_refused_saying_what_to_send(
    plugins: PluginFactory, tmp_path: Path, isolation: str
) -> None:
    """A payload holding an object that is not plain data is refused naming the event and
    the field; one of 20 MB is refused by the payload bound (not the socket's frame limit,
    which said neither the event nor what to do), and the plugin keeps serving."""
    plugins("acme.producer", CARELESS, extra=PRODUCER_MANIFEST)
    plugins("acme.listener", LISTENER, extra='[events.listens."cache.evicted"]\n')
    inline = ["acme.listener"] + (["acme.producer"] if isolation == "inline" else [])
    host = make_host(plugins, tmp_path, inline=inline)
    await host.start()
    try:
        with pytest.raises(ParameterError) as refused:
            await host.call("acme.producer", "evict_with_lock")
        message = refused.value.message
        assert "event 'cache.evicted'" in message and "field 'lock'" in message
        assert refused.value.hint is not None and "plain data" in refused.value.hint
        with pytest.raises(PlugbayError) as huge:
            await host.call("acme.producer", "evict_huge")
        assert "payload of event 'cache.evicted'" in huge.value.message
        assert "65,536-byte bound" in huge.value.message
        assert await host.call("acme.producer", "ping") == "pong"
        assert await host.call("acme.listener", "seen") == []
    finally:
        await host.stop()


async def test_a_plugin_emitting_in_a_loop_lets_a_quick_listener_keep_up(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """An inline plugin emitting in a loop gives the host's loop a turn per event: a quick
    listener with a small queue hears every one (none dropped), instead of its queue
    filling while the loop was never let go."""
    plugins("acme.producer", CARELESS, extra=PRODUCER_MANIFEST)
    plugins(
        "acme.quick",
        LISTENER,
        extra='[events.listens."cache.evicted"]\nqueue = 5\noverflow = "drop-newest"\n',
    )
    host = make_host(plugins, tmp_path, inline=["acme.producer", "acme.quick"])
    await host.start()
    try:
        assert await host.call("acme.producer", "evict_many", n=200) == 200
        events = host.manager.plugin_events
        (row,) = await until(
            lambda: [r for r in events.stats() if r["delivered"] + r["dropped"] == 200],
            "each of the 200 events handled or dropped",
        )
        assert (row["delivered"], row["dropped"]) == (200, 0)
        assert len(await host.call("acme.quick", "seen")) == 200
    finally:
        await host.stop()
