"""Operating plugins on Ray: where each runs (the nodes view of the API and the
dashboard), what happens when the cluster's head goes, the sandbox's own attacks and
the storage quota from a Ray node, and plugin events to and from a Ray plugin.

On the session's 3-node cluster (``tests/ray_support.py``) except the head's loss,
which has a cluster of its own in a process of its own (Ray ends a driver it has
lost the head of unless told otherwise, and a killed head is not given back)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import pytest_asyncio

from plugbay import PermissionDenied, PluginCrashed, ResourceLimitExceeded
from plugbay.isolation.limits import ORDER
from plugbay.isolation.policy import IsolationPolicy
from plugbay.isolation.ray import RayHandle
from plugbay.runtime.host import Host
from tests import test_plugin_events as events
from tests import test_sandbox as sandbox
from tests._served import api_served
from tests.conftest import PluginFactory
from tests.ray_support import on_node, ray_host

PING = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"
"""


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
    def running(**options: Any) -> contextlib.AbstractAsyncContextManager[Host]:
        return ray_host(plugins.root, tmp_path / "state", **options)

    return running


@contextlib.asynccontextmanager
async def served(host: Host) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        api_served(host) as (url, owner),
        httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {owner}"}, timeout=60
        ) as http,
    ):
        yield http


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
        # (a node an earlier test removed is listed too, dead: the head remembers it)
        by_name = {ray_cluster.name_of(n["node"]): n for n in view["nodes"] if n["alive"]}
        assert set(by_name) == {"node-head", "node-a", "node-b"}
        dead = [n for n in view["nodes"] if not n["alive"]]
        assert all(n["alive"] is False and n["plugins"] == [] for n in dead)
        node_b = by_name["node-b"]
        assert node_b["resources"]["CPU"] == 1.0 and node_b["resources"]["node-b"] == 100.0
        assert node_b["labels"]["plugbay-node"] == "node-b"
        assert node_b["address"]
        placed_b = node_b["plugins"]
        assert [p["plugin"] for p in placed_b] == ["acme.on-b"]
        assert placed_b[0]["mode"] == "agent" and placed_b[0]["sandboxed"] is True
        assert placed_b[0]["how"] == "sandboxed worker of the node's agent"
        assert placed_b[0]["serving"] is True
        assert placed_b[0]["pid"] == getattr(host.plugin("acme.on-b").handle, "pid", None)
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
        until = time.monotonic() + 1  # the host keeps serving its own plugins meanwhile
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
        out["stopped"] = host.manager.backends["ray"].connected is False
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
    # (each wait in that process is bounded: a hang is an error there, "hang" here; the
    # times are in the output for a failure's message, and in docs/scale-out.md)
    # afterwards a call to a Ray plugin is refused at once, its own plugins answer
    for plugin in ray_ids:
        result, took = out["calls_after"][plugin]
        assert result["error"] == "PluginStateError", (plugin, result, took)
    assert out["calls_after"]["acme.local"][0] == "pong"
    assert out["calls_after"]["acme.inline"][0] == "pong"
    assert out["local_answers"] > 10
    # plugbay info and the API: the Ray plugins are not serving, and say why
    for plugin in ray_ids:
        info = out["info"][plugin]
        assert info["state"] == "failed" and info["location"] is None
        assert "head" in info["reason"], info
    assert out["info"]["acme.local"]["state"] == "active"
    cluster = out["nodes"]["cluster"]
    assert cluster["reachable"] is False and "head" in cluster["error"]
    assert cluster["head_lost_since"] is not None
    assert "error" not in out["nodes"], out["nodes"]  # it answered, without the head
    assert sorted(u["plugin"] for u in out["nodes"]["unplaced"]) == sorted(ray_ids)
    assert all(n["plugins"] == [] for n in out["nodes"]["nodes"])
    for plugin in ray_ids:  # on record: the crash, the restart tried (newest first)
        assert out["history"][plugin][:3] == ["load", "restart", "crash"], out["history"]
    # and the host stopped cleanly with the head gone (within its bound, else that
    # process failed above), its Ray connection left
    assert out["stopped"] is True


# --------------------------------------------------------------------------- the sandbox's attacks

#: a focused set of tests/test_sandbox.py's attackers, each placed on node-a in a sandboxed
#: worker of that node's agent; the neighbour on node-b, the victim data on the host
RAY_ATTACKERS = (
    "acme.snoop", "acme.vandal", "acme.dialer", "acme.shell", "acme.forker", "acme.glutton",
    "acme.assassin", "acme.forger",
)  # fmt: skip


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ray_arena(
    ray_cluster: Any, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[sandbox.Arena]:
    root = tmp_path_factory.mktemp("ray-sandbox")
    factory = PluginFactory(root / "plugins")
    factory("acme.neighbour", sandbox.NEIGHBOUR, extra=sandbox.LIMITS + on_node_key("node-b"))
    for plugin_id in RAY_ATTACKERS:
        code, extra = sandbox.ATTACKERS[plugin_id]
        factory(plugin_id, code, extra=extra + on_node_key("node-a"))
    policy = IsolationPolicy.from_config(
        {"ray": {"address": ray_cluster.address, "plugins": ["acme.*"]}}
    )
    host = Host(
        factory.root, state_dir=root / "state", entry_points=False, init_timeout=60,
        cleanup_timeout=1.0, restart_backoff=0.05, max_crashes=50, policy=policy,
    )  # fmt: skip
    async with host:
        not_started = {r.id: r.reason for r in host.plugins() if str(r.state) != "active"}
        assert not_started == {}
        for plugin_id in (*RAY_ATTACKERS, "acme.neighbour"):
            handle = host.plugin(plugin_id).handle
            assert isinstance(handle, RayHandle) and handle.mode == "agent"
            wanted = "node-b" if plugin_id == "acme.neighbour" else "node-a"
            assert ray_cluster.name_of(handle.node) == wanted
        yield sandbox.Arena(
            host, factory.root, root / "state", sandbox.worker_pid(host, "acme.neighbour")
        )


def node_dir(arena: sandbox.Arena, plugin_id: str) -> Path:
    """The plugin's data directory on its node (its scratch there; its store is the host's)."""
    handle = arena.host.plugin(plugin_id).handle
    assert isinstance(handle, RayHandle) and handle.node_data_dir is not None
    return Path(handle.node_data_dir)


def on_node_key(name: str) -> str:
    """A custom resource line for a manifest whose [resources] table is already open."""
    return f'custom = {{ "{name}" = 1 }}\n'


@pytest.fixture
def security_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="plugbay.security")
    return caplog


async def reported(
    host: Host, caplog: pytest.LogCaptureFixture, before: sandbox.Mark, plugin: str, text: str
) -> Any:
    """A denial the node's kernel layer answered: its agent reports it to the host a moment
    after the call returned (a long poll), then it is recorded as any other."""
    async with asyncio.timeout(30):  # a guard against a hang, not a timed assertion
        while True:
            recorded = sandbox.history_since(host, plugin, before)
            if any(e.action == "security.denied" and text in (e.reason or "") for e in recorded):
                break
            await asyncio.sleep(0.02)
    return sandbox.assert_reported(host, caplog, before, plugin, "denied", text)


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_every_layer_is_active_in_every_worker_on_the_node(
    ray_arena: sandbox.Arena,
) -> None:
    for plugin_id in (*RAY_ATTACKERS, "acme.neighbour"):
        info = ray_arena.host.info(plugin_id)
        assert info["location"]["mode"] == "agent" and info["sandbox"]["sandboxed"]
        applied = {layer["name"]: layer["active"] for layer in info["sandbox"]["layers"]}
        assert applied == dict.fromkeys(ORDER, True), (plugin_id, info["sandbox"]["layers"])


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_reading_the_hosts_files_from_a_node_is_denied(
    ray_arena: sandbox.Arena, security_log: pytest.LogCaptureFixture
) -> None:
    host = ray_arena.host
    assert await host.call("acme.neighbour", "keep", text="private") == "private"
    for path in (ray_arena.state_db, Path("/etc/shadow"),
                 node_dir(ray_arena, "acme.neighbour") / "note.txt"):  # fmt: skip
        before = sandbox.mark(host)
        with sandbox.denied(f"reading {path}", layer="landlock"):
            await host.call("acme.snoop", "read", path=str(path))
        sandbox.assert_reported(host, security_log, before, "acme.snoop", "denied", str(path))
    # the node's environment (Ray's own variables among them) never reaches the plugin
    env = await host.call("acme.snoop", "environment")
    assert set(env) <= {"PATH", "LANG", "TZ"}, env
    block = await host.call("acme.snoop", "read", path="/proc/self/environ")
    assert "RAY_" not in block and sandbox.CANARY_VAR not in block
    await sandbox.assert_unharmed(ray_arena)


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_writing_outside_its_data_directory_from_a_node_is_denied(
    ray_arena: sandbox.Arena, security_log: pytest.LogCaptureFixture
) -> None:
    host = ray_arena.host
    for target in (ray_arena.state_dir / "planted.txt",
                   node_dir(ray_arena, "acme.neighbour") / "planted.txt"):  # fmt: skip
        before = sandbox.mark(host)
        with sandbox.denied(f"writing {target}", layer="landlock"):
            await host.call("acme.vandal", "create", path=str(target))
        sandbox.assert_reported(host, security_log, before, "acme.vandal", "denied", str(target))
        assert not target.exists()
    assert await host.call("acme.vandal", "own", name="mine.txt") == "mine"
    await sandbox.assert_unharmed(ray_arena)


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_a_shell_a_fork_and_a_raw_socket_are_refused_by_the_nodes_kernel(
    ray_arena: sandbox.Arena, security_log: pytest.LogCaptureFixture
) -> None:
    host = ray_arena.host
    before = sandbox.mark(host)
    with sandbox.denied("running a program (os.system)", layer="seccomp"):
        await host.call("acme.shell", "system")
    # execv through libc: only the kernel sees it; the node's agent answers and reports it
    before = sandbox.mark(host)
    with sandbox.denied("system call", layer="seccomp"):
        await host.call("acme.shell", "raw_exec")
    event = await reported(host, security_log, before, "acme.shell", "system call execve")
    assert "the system call execve (running a program)" in (event.reason or "")
    assert not (node_dir(ray_arena, "acme.shell") / "a-shell-ran").exists()
    pid = await sandbox.active_worker(host, "acme.forker")
    before = sandbox.mark(host)
    with sandbox.denied("system call", layer="seccomp"):
        await host.call("acme.forker", "raw_bomb")
    await reported(host, security_log, before, "acme.forker", "system call")
    assert psutil.Process(pid).children(recursive=True) == []
    async with sandbox.listening() as server:
        with pytest.raises(PermissionDenied) as info:
            await host.call("acme.dialer", "raw_connect", port=server.port)
        assert info.value.details["layer"] in {"seccomp", "netns", "landlock"}
        assert server.connections == []
    await sandbox.assert_unharmed(ray_arena)


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_the_host_and_the_nodes_zygote_cannot_be_signalled(
    ray_arena: sandbox.Arena, security_log: pytest.LogCaptureFixture
) -> None:
    host = ray_arena.host
    worker = await sandbox.active_worker(host, "acme.assassin")
    zygote = psutil.Process(worker).ppid()  # the node agent's zygote forked it
    for target in (os.getpid(), zygote, ray_arena.neighbour_pid):
        before = sandbox.mark(host)
        with sandbox.denied(f"sending signal 9 to process {target}", layer="seccomp"):
            await host.call("acme.assassin", "kill", pid=target)
        sandbox.assert_reported(host, security_log, before, "acme.assassin", "denied", str(target))
        before = sandbox.mark(host)
        with sandbox.denied("a system call (Operation not permitted)"):
            await host.call("acme.assassin", "raw_kill", pid=target)
        assert sandbox.running(target)
    await sandbox.assert_unharmed(ray_arena)


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_unbounded_memory_on_a_node_is_named_and_the_worker_replaced(
    ray_arena: sandbox.Arena, security_log: pytest.LogCaptureFixture
) -> None:
    host = ray_arena.host
    pid = await sandbox.active_worker(host, "acme.glutton")
    before = sandbox.mark(host)
    with pytest.raises(ResourceLimitExceeded, match="memory limit") as info:
        await host.call("acme.glutton", "hog")
    assert info.value.details["limit"] == "memory"  # the node's agent read the OOM kill
    sandbox.assert_reported(host, security_log, before, "acme.glutton", "limit", "memory")
    await sandbox.active_worker(host, "acme.glutton", not_pid=pid)
    handle = host.plugin("acme.glutton").handle
    assert isinstance(handle, RayHandle) and handle.mode == "agent"
    await sandbox.assert_unharmed(ray_arena)


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_a_forged_frame_through_the_agents_relay_stops_the_worker_only(
    ray_arena: sandbox.Arena,
) -> None:
    host = ray_arena.host
    pid = await sandbox.active_worker(host, "acme.forger")
    with pytest.raises(PluginCrashed, match="its worker broke the protocol") as info:
        await host.call("acme.forger", "malformed")
    assert "malformed frame" in str(info.value)
    await sandbox.active_worker(host, "acme.forger", not_pid=pid)
    assert await sandbox.ended([pid])
    await sandbox.assert_unharmed(ray_arena)


# --------------------------------------------------------------------------- plugin events


@pytest.mark.slow
async def test_a_ray_plugin_emits_and_receives_plugin_events_in_priority_order(
    ray_cluster: Any, make: Any, plugins: PluginFactory
) -> None:
    # the producer and two listeners on Ray (a sandboxed worker of node-a's agent, one of
    # node-b's, and a bare actor on the head node), a third listener inline, here
    plugins("acme.on-producer", events.PRODUCER,
            extra=events.PRODUCER_MANIFEST + on_node("node-a"))  # fmt: skip
    plugins("acme.on-first", events.LISTENER, extra=events.listens(10) + on_node("node-b"))
    plugins("acme.on-bare", events.LISTENER, extra=events.listens(20) + on_node("node-head"))
    plugins("acme.local", events.LISTENER, extra=events.listens(30))
    plugins("acme.local-producer", events.PRODUCER, extra=events.PRODUCER_MANIFEST)
    policy = IsolationPolicy.from_config(
        {
            "ray": {"address": ray_cluster.address, "plugins": ["acme.on-*"]},
            "policy": {"inline": ["acme.on-bare", "acme.local", "acme.local-producer"]},
        }
    )
    async with make(policy=policy) as host:
        where = {}
        for plugin in ("acme.on-producer", "acme.on-first", "acme.on-bare"):
            handle = host.plugin(plugin).handle
            assert isinstance(handle, RayHandle), host.plugin(plugin).reason
            where[plugin] = (ray_cluster.name_of(handle.node), handle.mode)
        assert where == {
            "acme.on-producer": ("node-a", "agent"),
            "acme.on-first": ("node-b", "agent"),
            "acme.on-bare": ("node-head", "actor"),
        }
        assert host.plugin("acme.local").isolation == "inline"
        # emitted on node-a: every listener has it, the ones on Ray and the one here
        for key in ("alpha", "beta", "gamma"):
            assert await host.call("acme.on-producer", "evict", key=key) == 3
        # and one emitted here reaches the listeners on Ray
        assert await host.call("acme.local-producer", "evict", key="delta") == 3
        seen = {}
        for plugin in ("acme.on-first", "acme.on-bare", "acme.local"):
            seen[plugin] = await events.until(
                functools.partial(events._seen, host, plugin, 4), f"{plugin} had all four"
            )
            # typed on arrival (the size came through), in emit order
            assert [(k, s) for k, s, *_ in seen[plugin]] == [
                ("alpha", 5), ("beta", 4), ("gamma", 5), ("delta", 5)
            ]  # fmt: skip
        # priority across machines: each listener began an event only once the one
        # before it had finished it (the clocks are this machine's: the nodes are here)
        order = ("acme.on-first", "acme.on-bare", "acme.local")
        for before, after in itertools.pairwise(order):
            for earlier, later in zip(seen[before], seen[after], strict=True):
                assert earlier[3] <= later[2], (before, after)
        rows = {r["plugin"]: r for r in host.manager.plugin_events.stats()}
        assert all(rows[p]["delivered"] == 4 for p in order)
        # an event the Ray plugin did not declare is refused, as the sender it is
        with pytest.raises(PermissionDenied, match=r"cache\.secret"):
            await host.call("acme.on-producer", "sneak")
        assert host.state is not None
        refused = [
            e for e in host.state.history("acme.on-producer") if e.action == "security.denied"
        ]
        assert refused and "cache.secret" in (refused[0].reason or "")
        assert await host.call("acme.on-producer", "ping") == "pong"


# --------------------------------------------------------------------------- the parts, alone


async def test_the_head_watch_declares_the_head_lost_only_after_its_misses() -> None:
    from plugbay.isolation.ray_head import HeadWatch

    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    lost: list[str] = []
    said = asyncio.Event()

    def on_lost(reason: str) -> None:
        lost.append(reason)
        said.set()

    watch = HeadWatch(f"127.0.0.1:{port}", on_lost, interval=0.02, misses=3)
    watch.start()
    try:
        for _ in range(10):  # the head answers: nothing is said however long it is watched
            assert await watch.knock() is None
        assert lost == []
        server.close()
        await server.wait_closed()
        async with asyncio.timeout(30):  # a guard against a hang, not a timed assertion
            await said.wait()
        assert len(lost) == 1
        assert f"GCS at 127.0.0.1:{port}) is unreachable" in lost[0]
        assert "3 tries" in lost[0]
    finally:
        watch.stop()


async def test_the_node_table_answers_in_bounded_time_while_ray_does_not() -> None:
    import threading

    from plugbay.isolation.ray_nodes import ClusterNodes

    release = threading.Event()
    asked: list[int] = []

    class StuckRay:  # Ray's node listing while the head is gone: it waits
        @staticmethod
        def nodes() -> list[dict[str, Any]]:
            asked.append(1)
            release.wait(30)
            return [{"NodeID": "n1", "Alive": True, "NodeManagerAddress": "10.0.0.1",
                     "Resources": {"CPU": 2.0, "node:10.0.0.1": 1.0}, "Labels": {}}]  # fmt: skip

    table = ClusterNodes(timeout=0.2)
    rows, error = await table.read(StuckRay())
    assert rows == [] and error is not None and "did not answer within 0.2 s" in error
    rows, error = await table.read(StuckRay())  # still the one question in flight
    assert error is not None and len(asked) == 1
    release.set()
    async with asyncio.timeout(30):  # a guard against a hang, not a timed assertion
        while True:
            rows, error = await table.read(StuckRay())
            if error is None:
                break
    assert [r.to_dict() for r in rows] == [
        {"node": "n1", "address": "10.0.0.1", "alive": True, "resources": {"CPU": 2.0},
         "labels": {}}
    ]  # fmt: skip
