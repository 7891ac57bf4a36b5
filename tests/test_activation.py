"""Lazy activation: a plugin that starts on its first call or its first event.

Real host, real sandboxed workers: an on-demand plugin is validated but not
started when the host starts (no worker, no initialize), ``plugbay list`` says
"installed, starts on demand"; its first call starts it once however many
callers arrive together; its first ``on-event`` event starts it and is
delivered; a lazy plugin an eager one needs is started with it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from plugbay import PluginStateError
from plugbay.runtime.host import Host
from tests._cli import plugbay
from tests._running import plugbay_run
from tests.conftest import PluginFactory
from tests.test_plugin_events import PRODUCER, PRODUCER_MANIFEST, until

COUNTED = """
import asyncio
from plugbay import UtilityPlugin, command, PluginContext

class P(UtilityPlugin):
    async def initialize(self, context: PluginContext) -> None:
        starts = context.storage.get("starts", 0, type=int) + 1
        context.storage.set("starts", starts)
        await asyncio.sleep(0.2)  # a slow start, so first calls arrive while it starts

    @command
    def starts(self) -> int:
        return self.context.storage.get("starts", 0, type=int)
"""

ON_EVENT = """
from plugbay import UtilityPlugin, command, on_event

class P(UtilityPlugin):
    @on_event("cache.evicted")
    def evicted(self, event: dict[str, str | int]) -> None:
        keys = self.context.storage.get("keys", [], type=list)
        self.context.storage.set("keys", [*keys, event["key"]])

    @command
    def keys(self) -> list[str]:
        return self.context.storage.get("keys", [], type=list)
"""


def host_for(plugins: PluginFactory, tmp_path: Path, inline: list[str]) -> Host:
    return Host(
        plugins.root,
        state_dir=tmp_path / "state",
        entry_points=False,
        init_timeout=30,
        cleanup_timeout=2.0,
        inline=inline,
    )


@pytest.mark.parametrize("isolation", ["process", "inline"])
async def test_an_on_call_plugin_starts_once_on_its_first_calls(
    plugins: PluginFactory, tmp_path: Path, isolation: str
) -> None:
    plugins("acme.lazy", COUNTED, extra='activation = "on-call"\n')
    plugins("acme.eager")
    host = host_for(
        plugins, tmp_path, ["acme.eager"] + (["acme.lazy"] if isolation == "inline" else [])
    )
    await host.start()
    try:
        rec = host.manager.record("acme.lazy")
        assert str(rec.state) == "on-demand"
        assert rec.handle is None  # no worker, no instance: nothing of it runs
        assert rec.isolation == isolation  # placed by the policy already
        assert rec.reason is not None and "installed, starts on demand (on-call)" in rec.reason
        assert str(host.manager.record("acme.eager").state) == "active"
        health = host.health()
        assert health["status"] == "green", health
        # ten first calls at once: one start, every call answered by it
        answers = await asyncio.gather(*(host.call("acme.lazy", "starts") for _ in range(10)))
        assert answers == [1] * 10
        rec = host.manager.record("acme.lazy")
        assert str(rec.state) == "active"
        assert rec.isolation == isolation
        loads = (
            [e for e in host.state.history("acme.lazy") if e.action == "load"] if host.state else []
        )
        assert len(loads) == 1
        assert await host.call("acme.lazy", "starts") == 1
    finally:
        await host.stop()


async def test_an_on_event_plugin_starts_on_its_event_and_receives_it(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.producer", PRODUCER, extra=PRODUCER_MANIFEST)
    plugins(
        "acme.watcher",
        ON_EVENT,
        extra='activation = "on-event:cache.evicted"\n[events.listens."cache.evicted"]\n',
    )
    host = host_for(plugins, tmp_path, ["acme.producer"])  # the watcher is sandboxed
    await host.start()
    try:
        assert str(host.manager.record("acme.watcher").state) == "on-demand"
        assert await host.call("acme.producer", "evict", key="first") == 1
        await until(
            lambda: str(host.manager.record("acme.watcher").state) == "active", "it started"
        )
        assert host.manager.record("acme.watcher").isolation == "process"
        assert await until(lambda: host.call("acme.watcher", "keys"), "the event handled") == [
            "first"
        ]
    finally:
        await host.stop()


async def test_a_lazy_plugin_an_eager_one_needs_starts_with_it(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.lib", COUNTED, extra='activation = "on-call"\n')
    plugins("acme.app", extra='[dependencies]\n"acme.lib" = "^1"\n')
    plugins("acme.tool", extra='activation = "on-call"\n[dependencies]\n"acme.base" = "^1"\n')
    plugins("acme.base", COUNTED, extra='activation = "on-call"\n')
    plugins("acme.solo", COUNTED, extra='activation = "on-call"\n')
    host = host_for(plugins, tmp_path, [])
    await host.start()
    try:
        assert str(host.manager.record("acme.app").state) == "active"
        assert str(host.manager.record("acme.lib").state) == "active"  # needed by an eager one
        # a lazy plugin's lazy dependency waits with it, and starts first when it does
        assert str(host.manager.record("acme.tool").state) == "on-demand"
        assert str(host.manager.record("acme.base").state) == "on-demand"
        assert await host.call("acme.tool", "ping") == "pong from acme.tool 1.0.0"
        assert str(host.manager.record("acme.base").state) == "active"
        # a proxy (what services hand out) starts one on its first call too
        assert str(host.manager.record("acme.solo").state) == "on-demand"
        assert await host.proxy("acme.solo").starts() == 1
        assert str(host.manager.record("acme.solo").state) == "active"
    finally:
        await host.stop()


async def test_a_lazy_plugin_with_a_bad_config_fails_at_host_start(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins(
        "acme.lazy",
        COUNTED,
        extra='activation = "on-call"\n[config.level]\ntype = "integer"\nrequired = true\n',
    )
    host = host_for(plugins, tmp_path, [])
    await host.start()
    try:  # validated when the host starts, as an eager plugin is: not at its first call
        rec = host.manager.record("acme.lazy")
        assert str(rec.state) == "failed"
        assert rec.reason is not None and "level" in rec.reason
    finally:
        await host.stop()


async def test_a_disabled_on_demand_plugin_is_not_started_by_a_call(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.lazy", COUNTED, extra='activation = "on-call"\n')
    host = host_for(plugins, tmp_path, [])
    await host.start()
    try:
        await host.manager.disable("acme.lazy", "not today")
        with pytest.raises(PluginStateError, match="disabled"):
            await host.call("acme.lazy", "starts")
        await host.manager.enable("acme.lazy")
        assert await host.call("acme.lazy", "starts") == 1
    finally:
        await host.stop()


def test_plugbay_list_shows_installed_starts_on_demand(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.lazy", COUNTED, extra='activation = "on-call"\n')
    plugins("acme.eager")
    # no host running: the manifest says it
    offline = plugbay("list", cwd=tmp_path)
    assert offline.returncode == 0, offline.stderr
    assert "installed, starts on demand (on-call)" in offline.stdout
    with plugbay_run(tmp_path) as running:
        assert "1 active, 0 failed, 1 on demand, ready in" in running.output
        listed = plugbay("list", cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        line = next(row for row in listed.stdout.splitlines() if "acme.lazy" in row)
        assert "on-demand" in line
        assert "on-demand: installed, starts on demand (on-call)" in listed.stdout
        rows = {r["id"]: r for r in json.loads(plugbay("list", "--json", cwd=tmp_path).stdout)}
        assert rows["acme.lazy"]["state"] == "on-demand"
        assert rows["acme.lazy"]["reason"] == "installed, starts on demand (on-call)"
        assert rows["acme.eager"]["state"] == "active"
        api = httpx.get(f"{running.url}/api/v1/plugins", headers=running.auth, timeout=10)
        states = {p["id"]: p["state"] for p in api.json()}
        assert states == {"acme.lazy": "on-demand", "acme.eager": "active"}
        # a call through the API starts it; the list says so
        called = httpx.post(
            f"{running.url}/api/v1/plugins/acme.lazy/commands/starts",
            headers=running.auth, json={}, timeout=30,
        )  # fmt: skip
        assert called.status_code == 200, called.text
        rows = {r["id"]: r for r in json.loads(plugbay("list", "--json", cwd=tmp_path).stdout)}
        assert rows["acme.lazy"]["state"] == "active"


async def test_an_event_for_an_on_call_plugin_waits_until_a_call_starts_it(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.producer", PRODUCER, extra=PRODUCER_MANIFEST)
    plugins(
        "acme.watcher",
        ON_EVENT,
        extra='activation = "on-call"\n[events.listens."cache.evicted"]\n',
    )
    host = host_for(plugins, tmp_path, ["acme.producer", "acme.watcher"])
    await host.start()
    try:
        assert await host.call("acme.producer", "evict", key="early") == 1
        queued = host.info("acme.watcher")["events"]["listens"][0]
        assert queued["delivered"] == 0
        assert str(host.manager.record("acme.watcher").state) == "on-demand"  # not started by it
        # its first call starts it; the event that waited is delivered then
        keys = await until(lambda: host.call("acme.watcher", "keys"), "the waiting event")
        assert keys == ["early"]
    finally:
        await host.stop()
