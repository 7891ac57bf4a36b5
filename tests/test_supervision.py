"""Crash supervision as an operator sees it: a sandboxed plugin whose worker died reads
``restarting`` (which restart, and when) while the supervisor waits out its backoff, not
``failed``; ``active`` again once restarted; ``failed`` when the supervisor gives up.
Seen through the host's API, the HTTP API, /readyz, health, /metrics, system events and
``plugbay list``."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from plugbay import PluginCrashed, PluginStateError, SystemEvent
from plugbay.runtime.host import Host
from tests._cli import plugbay
from tests._running import plugbay_run
from tests._served import api_served
from tests._waiting import until, until_sync
from tests.conftest import PluginFactory

pytestmark = pytest.mark.slow

CRASHER = """
import os
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def pid(self) -> int:
        return os.getpid()

    @command
    def crash(self) -> None:
        os._exit(9)  # its worker dies under the call
"""

ID = "acme.crasher"


def crasher(plugins: PluginFactory) -> None:
    plugins(ID, CRASHER, extra='isolation = "process"\n')


def info_state(metrics: str) -> str:
    """The state label of the plugin's ``plugbay_plugin_info`` series."""
    found = re.search(rf'plugbay_plugin_info\{{[^}}]*plugin="{ID}"[^}}]*\}}', metrics)
    assert found, metrics
    state = re.search(r'state="([^"]+)"', found.group(0))
    assert state
    return state.group(1)


async def test_a_crashed_plugin_is_restarting_in_its_backoff_then_active_then_failed(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    crasher(plugins)
    heard: list[SystemEvent] = []

    async def hear(event: SystemEvent) -> None:
        if event.data.get("plugin") == ID:
            heard.append(event)

    host = Host(
        plugins.root, state_dir=tmp_path / "state", entry_points=False,
        restart_backoff=2.0, max_crashes=2,
    )  # fmt: skip
    async with host, api_served(host) as served:
        http = httpx.AsyncClient(
            base_url=served.url, headers={"Authorization": f"Bearer {served.token}"}
        )
        host.events.listen("test.hears", 0, ("plugin.*",), hear)
        first = await host.call(ID, "pid")
        crashed_at = time.time()
        with pytest.raises(PluginCrashed):
            await host.call(ID, "crash")

        # in its backoff: restarting, with which restart and when; not failed
        info = host.info(ID)
        assert info["state"] == "restarting"
        restart = info["restart"]
        assert (restart["attempt"], restart["max_attempts"], restart["backoff_seconds"]) == (
            1,
            1,
            2,
        )
        assert crashed_at + 2 <= restart["next_try"] <= time.time() + 2
        assert info["reason"].startswith("its worker process exited")
        assert "restart 1 of 1 at " in info["reason"]
        [row] = [r for r in (await http.get("/api/v1/plugins")).json() if r["id"] == ID]
        assert (row["state"], row["restart"]) == ("restarting", restart)
        detail = (await http.get(f"/api/v1/plugins/{ID}")).json()
        assert (detail["state"], detail["restart"]) == ("restarting", restart)
        ready = (await http.get("/readyz")).json()
        assert (ready["status"], ready["failed"]) == ("ready", [])  # a normal restart
        health = (await http.get("/api/v1/health")).json()
        assert (health["plugins"][ID], health["status"]) == ("restarting", "green")
        assert info_state((await http.get("/metrics")).text) == "restarting"
        assert host.plugin(ID).state == "restarting", "the checks outlasted the backoff"

        # restarted: active, a new worker, nothing left of the restart
        await until(lambda: host.plugin(ID).state == "active", "the restart")
        assert await host.call(ID, "pid") != first
        assert host.info(ID)["restart"] is None
        kinds = await until(lambda: [e.kind for e in heard] if len(heard) >= 2 else None, "events")
        assert kinds == ["plugin.crashed", "plugin.loaded"]  # no plugin.failed for a restart
        assert heard[0].data["attempt"] == 1 and heard[0].data["retry_in"] == 2

        # one crash too many within the window: the supervisor gives up, failed
        with pytest.raises(PluginCrashed):
            await host.call(ID, "crash")
        rec = host.plugin(ID)
        assert rec.state == "failed" and rec.restart is None
        assert (rec.reason or "").startswith(
            f"plugin '{ID}': gave up restarting it after 2 crashes within 60 s; the last: "
            "its worker process exited"
        )
        assert f"'plugbay enable {ID}'" in (rec.reason or "")
        with pytest.raises(PluginStateError, match="failed while it served: gave up restarting"):
            await host.call(ID, "pid")  # at once: there is no restart to wait for
        ready = (await http.get("/readyz")).json()
        assert (ready["status"], ready["failed"]) == ("degraded", [ID])
        assert (await http.get("/api/v1/health")).json()["status"] == "failing"
        assert info_state((await http.get("/metrics")).text) == "failed"
        await until(lambda: "plugin.failed" in [e.kind for e in heard], "plugin.failed")

        # not kept off: enable (or the host's next start) starts it again
        await host.enable(ID)
        assert await host.call(ID, "pid") != first
        await http.aclose()


def test_plugbay_list_shows_the_restart_of_a_running_host_and_when_it_gives_up(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """``plugbay run``'s own supervision (backoff 0.5 s doubling, 5 crashes in 60 s): the
    fourth crash waits 4 s, long enough for ``plugbay list`` to ask; the fifth is the last."""
    crasher(plugins)
    with plugbay_run(tmp_path, "--plugins", str(plugins.root)) as running:
        http = httpx.Client(base_url=running.url, headers=running.auth, timeout=30)

        def state() -> str:
            return str(http.get(f"/api/v1/plugins/{ID}").json()["state"])

        def listed() -> dict[str, Any]:
            done = plugbay("list", "--json", cwd=tmp_path)
            assert done.returncode == 0, done.stderr
            [row] = [r for r in json.loads(done.stdout) if r["id"] == ID]
            return dict(row)

        for _ in range(4):
            until_sync(lambda: state() == "active", "the plugin active")
            crash = http.post(f"/api/v1/plugins/{ID}/commands/crash")
            assert crash.status_code == 502 and crash.json()["error"]["code"] == "plugin_crashed"
        row = listed()
        assert row["state"] == "restarting", "the 4 s backoff was over before list answered"
        assert (row["restart"]["attempt"], row["restart"]["max_attempts"]) == (4, 4)
        assert row["restart"]["backoff_seconds"] == 4
        assert row["error"]["code"] == "plugin_crashed"
        assert "restart 4 of 4 at" in row["reason"]
        table = plugbay("list", cwd=tmp_path).stdout
        assert "restarting: its worker process exited" in " ".join(table.split())

        until_sync(lambda: state() == "active", "the fourth restart")
        assert listed()["restart"] is None
        http.post(f"/api/v1/plugins/{ID}/commands/crash")
        row = listed()
        assert row["state"] == "failed" and row["restart"] is None
        assert "gave up restarting it after 5 crashes within 60 s" in row["reason"]
        http.close()


LISTENER = """
import os
from plugbay import UtilityPlugin, command, on_event

class P(UtilityPlugin):
    async def initialize(self, context):
        self.heard = []

    @on_event("cache.evicted")
    async def evicted(self, event: dict[str, str]) -> None:
        self.heard.append(event["key"])

    @command
    def heard_keys(self) -> list[str]:
        return self.heard

    @command
    def crash(self) -> None:
        os._exit(9)
"""


async def test_an_event_sent_while_its_listener_restarts_reaches_the_restarted_worker(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """Events wait for a restart as calls do: not passed over as for a failed plugin."""
    plugins(
        "acme.listener", LISTENER,
        extra='isolation = "process"\n[events.listens."cache.evicted"]\npriority = 10\n',
    )  # fmt: skip
    host = Host(plugins.root, state_dir=tmp_path / "state", entry_points=False, restart_backoff=1.0)
    async with host:
        with pytest.raises(PluginCrashed):
            await host.call("acme.listener", "crash")
        assert host.plugin("acme.listener").state == "restarting"
        listeners = await host.manager.plugin_events.publish("cache.evicted", {"key": "k1"})
        assert listeners == 1  # queued for it
        await until(lambda: host.plugin("acme.listener").state == "active", "the restart")
        heard = await until(
            lambda: host.call("acme.listener", "heard_keys"), "the event, after the restart"
        )
        assert heard == ["k1"]


async def test_a_host_stopped_during_a_backoff_leaves_the_plugin_stopped_not_restarting(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    crasher(plugins)
    host = Host(plugins.root, state_dir=tmp_path / "state", entry_points=False, restart_backoff=60)
    async with host:
        with pytest.raises(PluginCrashed):
            await host.call(ID, "crash")
        assert host.plugin(ID).state == "restarting"
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 30  # the backoff is not waited out
    assert host.plugin(ID).state == "stopped" and host.info(ID)["restart"] is None


async def test_a_plugin_unloaded_during_its_backoff_stays_unloaded(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """The unload stopped nothing, and the pending restart brought the plugin back."""
    crasher(plugins)
    heard: list[str] = []

    async def hear(event: SystemEvent) -> None:
        if event.data.get("plugin") == ID:
            heard.append(event.kind)

    backoff = 0.3
    host = Host(
        plugins.root, state_dir=tmp_path / "state", entry_points=False, restart_backoff=backoff
    )
    async with host:
        host.events.listen("test.hears", 0, ("plugin.*",), hear)
        with pytest.raises(PluginCrashed):
            await host.call(ID, "crash")
        assert host.plugin(ID).state == "restarting"
        assert await host.unload(ID) == [ID]
        assert host.plugin(ID).state == "stopped" and host.info(ID)["restart"] is None
        await asyncio.sleep(backoff * 4)  # past the backoff: nothing may start it
        assert host.plugin(ID).state == "stopped"
        with pytest.raises(PluginStateError):
            await host.call(ID, "pid")
        await host.events.drain()
        assert heard == ["plugin.crashed", "plugin.unloaded"]
        history = [(e.action, e.result) for e in host.history(ID)][:2]
        assert history == [("unload", "ok"), ("crash", "failed")]
        await host.load(ID)  # and it can be loaded again
        assert isinstance(await host.call(ID, "pid"), int)
