"""Operating plugins on Ray: where each runs (the nodes view of the API and the
dashboard), what happens when the cluster's head goes, the sandbox's own attacks and
the storage quota from a Ray node, and plugin events to and from a Ray plugin.

On the session's 3-node cluster (``tests/ray_support.py``) except the head's loss,
which has a cluster of its own in a process of its own (Ray ends a driver it has
lost the head of unless told otherwise, and a killed head is not given back)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from plugbay.isolation.policy import IsolationPolicy
from plugbay.isolation.ray import RayHandle
from plugbay.runtime.host import Host
from plugbay.web import HttpServer, create_app
from plugbay.web.token import TokenFile
from tests.conftest import PluginFactory

PING = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"
"""


def on_node(name: str) -> str:
    return f'[resources]\ncustom = {{ "{name}" = 1 }}\n'


def ray_policy(cluster: Any, *, trusted: tuple[str, ...] = ()) -> IsolationPolicy:
    return IsolationPolicy.from_config(
        {
            "ray": {"address": cluster.address, "plugins": ["acme.on-*"]},
            "policy": {"inline": list(trusted)},
        }
    )


@pytest.fixture
def make(
    tmp_path: Path, plugins: PluginFactory
) -> Callable[..., contextlib.AbstractAsyncContextManager[Host]]:
    @contextlib.asynccontextmanager
    async def running(**options: Any) -> AsyncIterator[Host]:
        host = Host(
            plugins.root,
            state_dir=tmp_path / "state",
            entry_points=False,
            init_timeout=30.0,
            cleanup_timeout=2.0,
            monitor={"interval": 3600},
            **options,
        )
        async with host:
            yield host

    return running


@contextlib.asynccontextmanager
async def served(host: Host) -> AsyncIterator[httpx.AsyncClient]:
    tokens = TokenFile(host.state_dir)
    owner, _ = tokens.ensure()
    server = HttpServer(create_app(host, tokens=tokens), "127.0.0.1", 0)
    await server.start()
    try:
        async with httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {owner}"}, timeout=60
        ) as http:
            yield http
    finally:
        await server.stop()


# --------------------------------------------------------------------------- the nodes view


async def test_a_host_without_ray_has_an_empty_nodes_view(
    make: Any, plugins: PluginFactory
) -> None:
    plugins("acme.local", PING)
    async with make(inline=["*"]) as host, served(host) as http:
        answer = await http.get("/api/v1/nodes")
        assert answer.status_code == 200
        assert answer.json() == {"cluster": None, "nodes": [], "unplaced": []}
        page = (await http.get("/")).text
        assert '<section id="nodes-pane" hidden>' in page


@pytest.mark.slow
async def test_the_nodes_view_shows_every_node_and_how_each_plugin_runs_there(
    ray_cluster: Any, make: Any, plugins: PluginFactory
) -> None:
    plugins("acme.on-b", PING, extra=on_node("node-b"))
    plugins("acme.on-a", PING, extra=on_node("node-a"))
    plugins("acme.local", PING)
    policy = ray_policy(ray_cluster, trusted=("acme.on-a",))
    async with make(policy=policy) as host, served(host) as http:
        assert {r.id: str(r.state) for r in host.plugins()} == dict.fromkeys(
            ("acme.local", "acme.on-a", "acme.on-b"), "active"
        )
        view = (await http.get("/api/v1/nodes")).json()
        cluster = view["cluster"]
        assert cluster["address"] == ray_cluster.address
        assert (cluster["connected"], cluster["reachable"], cluster["error"]) == (True, True, None)
        by_name = {ray_cluster.name_of(n["node"]): n for n in view["nodes"]}
        assert set(by_name) == {"node-head", "node-a", "node-b"}
        assert all(n["alive"] for n in by_name.values())
        node_b = by_name["node-b"]
        assert node_b["resources"]["CPU"] == 1.0 and node_b["resources"]["node-b"] == 100.0
        assert node_b["labels"]["plugbay-node"] == "node-b"
        assert node_b["address"]
        placed_b = node_b["plugins"]
        assert [p["plugin"] for p in placed_b] == ["acme.on-b"]
        assert placed_b[0]["mode"] == "agent" and placed_b[0]["sandboxed"] is True
        assert placed_b[0]["how"] == "sandboxed worker of the node's agent"
        assert placed_b[0]["serving"] is True
        assert placed_b[0]["pid"] == host.plugin("acme.on-b").handle.pid  # type: ignore[union-attr]
        placed_a = by_name["node-a"]["plugins"]
        assert [(p["plugin"], p["mode"], p["sandboxed"]) for p in placed_a] == [
            ("acme.on-a", "actor", False)
        ]
        assert by_name["node-head"]["plugins"] == []  # the local plugin is on no Ray node
        assert view["unplaced"] == []
        # the dashboard's table says where each runs, before any script runs
        page = (await http.get("/")).text
        assert '<section id="nodes-pane" >' in page
        handle = host.plugin("acme.on-b").handle
        assert isinstance(handle, RayHandle)
        assert f'<td class="isolation">ray · agent · {handle.node[:8]}</td>' in page
        assert '<td class="isolation">process</td>' in page
        # a plugin that stops is on no node any more, and is listed apart with why
        await host.disable("acme.on-b", reason="maintenance")
        view = (await http.get("/api/v1/nodes")).json()
        assert all(p["plugin"] != "acme.on-b" for n in view["nodes"] for p in n["plugins"])
        assert [(u["plugin"], u["state"]) for u in view["unplaced"]] == [("acme.on-b", "disabled")]


# --------------------------------------------------------------------------- the head goes

#: runs in a process of its own: a cluster of its own (a head and one node), a host
#: joined to it with plugins on Ray, in a local worker and inline; the head is killed
HEAD_LOSS = r'''
import asyncio, json, os, shutil, sys, tempfile, time
from pathlib import Path

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ.pop("RAY_gcs_rpc_server_reconnect_timeout_s", None)  # the host sets its own
temp = tempfile.mkdtemp(prefix="pbhl-", dir="/tmp")
os.environ["RAY_TMPDIR"] = temp
os.makedirs(temp + "/ray")
print(json.dumps({"temp": temp}), flush=True)

from plugbay.api.errors import PlugbayError
from plugbay.isolation.policy import IsolationPolicy
from plugbay.isolation.ray import keep_fault_handlers
from plugbay.runtime.host import Host
from plugbay.runtime.nodes import cluster_nodes
from ray.cluster_utils import Cluster

with keep_fault_handlers():
    cluster = Cluster(initialize_head=True, connect=False, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "object_store_memory": 80 << 20,
        "temp_dir": temp + "/ray", "resources": {"node-head": 100}})
    cluster.add_node(num_cpus=1, object_store_memory=80 << 20, resources={"node-a": 100})
    cluster.wait_for_nodes()

CODE = """
import asyncio
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"

    @command
    async def wait(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "done"
"""
root = Path(temp) / "plugins"
for pid, extra in [("acme.on-head", 'custom = { "node-head" = 1 }'),
                   ("acme.on-a", 'custom = { "node-a" = 1 }'),
                   ("acme.bare", 'custom = { "node-a" = 1 }'),
                   ("acme.local", ""), ("acme.inline", "")]:
    d = root / pid
    d.mkdir(parents=True)
    (d / "main.py").write_text(CODE)
    (d / "plugin.toml").write_text(
        f'id = "{pid}"\nversion = "1.0.0"\ntype = "utility"\nentry = "main:P"\n'
        + (f"[resources]\n{extra}\n" if extra else ""))
RAY = ["acme.on-head", "acme.on-a", "acme.bare"]
LOCAL = ["acme.local", "acme.inline"]
policy = IsolationPolicy.from_config({
    "ray": {"address": cluster.address, "plugins": RAY},
    "policy": {"inline": ["acme.inline", "acme.bare"]}})

T0 = time.monotonic()

def stage(text):  # on stderr: what the test shows when this process fails
    print(f"{time.monotonic() - T0:6.2f} {text}", file=sys.stderr, flush=True)

async def outcome(coro, limit):
    started = time.monotonic()
    try:
        result = await asyncio.wait_for(coro, limit)
    except PlugbayError as exc:
        result = {"error": type(exc).__name__, "message": exc.message}
    except TimeoutError:
        result = {"error": "hang"}
    return result, round(time.monotonic() - started, 2)

async def main():
    out = {}
    host = Host(root, state_dir=Path(temp) / "state", entry_points=False, init_timeout=60,
                restart_backoff=0.1, cleanup_timeout=2.0, policy=policy)
    await host.start()
    try:
        out["before"] = {r.id: [str(r.state), r.isolation] for r in host.plugins()}
        out["driver_wait"] = os.environ.get("RAY_gcs_rpc_server_reconnect_timeout_s")
        in_flight = {p: asyncio.ensure_future(host.call(p, "wait", seconds=120)) for p in RAY}
        await asyncio.sleep(0.5)  # the calls are on their way (a long wait: nothing returns)
        killed = time.monotonic()
        stage("killing the head")
        with keep_fault_handlers():
            await asyncio.to_thread(cluster.head_node.kill_all_processes,
                                    check_alive=False, allow_graceful=False)
        out["in_flight"] = {}
        for p, task in in_flight.items():
            out["in_flight"][p] = await outcome(task, 60)
        out["failed_after"] = round(time.monotonic() - killed, 2)
        stage("the calls in flight ended")
        # the restart after the crash is refused at once: every Ray plugin ends up failed
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(
                host.plugin(p).state.value != "failed" or p in host.manager._restarts for p in RAY):
            await asyncio.sleep(0.05)
        out["calls_after"] = {p: await outcome(host.call(p, "ping"), 20) for p in RAY + LOCAL}
        stage("the Ray plugins are failed")
        out["local_answers"] = 0
        until = time.monotonic() + 3  # the host keeps serving its own plugins meanwhile
        while time.monotonic() < until:
            for p in LOCAL:
                assert await host.call(p, "ping") == "pong"
                out["local_answers"] += 1
            await asyncio.sleep(0.01)
        out["info"] = {p: {k: host.info(p)[k] for k in ("state", "reason", "location")}
                       for p in RAY + LOCAL}
        view, took = await outcome(cluster_nodes(host.manager), 20)
        out["nodes"], out["nodes_took"] = view, took
        out["history"] = {p: [e.action for e in host.state.history(p)] for p in RAY}
    finally:
        stage("stopping the host")
        stopping = time.monotonic()
        await asyncio.wait_for(host.stop(), 60)
        out["stop_took"] = round(time.monotonic() - stopping, 2)
        stage("the host stopped")
    return out

try:
    result = asyncio.run(main())
finally:
    stage("shutting the cluster down")
    with keep_fault_handlers():
        cluster.shutdown()
    stage("the cluster is down")
    shutil.rmtree(temp, ignore_errors=True)
print(json.dumps(result), flush=True)
'''


@pytest.mark.slow
def test_when_the_head_goes_ray_plugins_fail_at_once_and_the_host_serves_on(
    tmp_path: Path,
) -> None:
    import json
    import os
    import subprocess
    import sys

    import psutil

    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    done = subprocess.run(
        [sys.executable, "-c", HEAD_LOSS], capture_output=True, text=True, timeout=200,
        env=env, cwd=tmp_path,
    )  # fmt: skip
    lines = done.stdout.strip().splitlines()
    temp = json.loads(lines[0])["temp"] if lines else None
    try:
        assert done.returncode == 0, done.stderr[-4000:]
        out = json.loads(lines[-1])
    finally:
        if temp:  # nothing of that cluster is left running (its processes name its temp dir)
            left = []
            for proc in psutil.process_iter(["pid", "cmdline"]):
                with contextlib.suppress(psutil.Error):
                    if any(temp in part for part in proc.info["cmdline"] or []):
                        left.append(proc.info["pid"])
            assert left == []
    ray_ids = ["acme.on-head", "acme.on-a", "acme.bare"]
    assert out["before"]["acme.on-a"] == ["active", "ray"]
    assert out["before"]["acme.local"] == ["active", "process"]
    # Ray ends a driver 60 s after losing the head; the host is kept from that
    assert int(out["driver_wait"]) >= 86400
    # every call in flight on Ray failed with PluginCrashed naming the head, within seconds
    for plugin in ray_ids:
        result, _took = out["in_flight"][plugin]
        assert result["error"] == "PluginCrashed", (plugin, result)
        if plugin != "acme.on-head":  # that one's worker went with the head's node itself
            assert "the Ray cluster's head" in result["message"], result
    assert out["failed_after"] < 30  # bounded (the watch: 3 knocks 0.5 s apart), no hang
    # afterwards a call to a Ray plugin is refused at once, its own plugins answer
    for plugin in ray_ids:
        result, took = out["calls_after"][plugin]
        assert result["error"] == "PluginStateError", (plugin, result)
        assert took < 5
    assert out["calls_after"]["acme.local"][0] == "pong"
    assert out["calls_after"]["acme.inline"][0] == "pong"
    assert out["local_answers"] > 20
    # plugbay info and the API: the Ray plugins are not serving, and say why
    for plugin in ray_ids:
        info = out["info"][plugin]
        assert info["state"] == "failed" and info["location"] is None
        assert "head" in info["reason"], info
    assert out["info"]["acme.local"]["state"] == "active"
    cluster = out["nodes"]["cluster"]
    assert cluster["reachable"] is False and "head" in cluster["error"]
    assert cluster["head_lost_since"] is not None
    assert out["nodes_took"] < 10
    assert sorted(u["plugin"] for u in out["nodes"]["unplaced"]) == sorted(ray_ids)
    assert all(n["plugins"] == [] for n in out["nodes"]["nodes"])
    for plugin in ray_ids:  # on record: the crash, the restart tried (newest first)
        assert out["history"][plugin][:3] == ["load", "restart", "crash"], out["history"]
    # and the host stopped cleanly, in bounded time, with the head gone
    assert out["stop_took"] < 30
