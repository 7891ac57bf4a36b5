"""The Ray backend on a 3-node ``ray.cluster_utils.Cluster`` (``tests/ray_support.py``):
placement on a chosen node, a node that goes away (its plugin serves again from
another node, its data read back), a hot reload that moves a plugin across nodes
with no failed call, and ``plugbay info`` saying where and how each plugin runs.
The backend contract itself is checked on Ray by ``tests/backends`` (two cases)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from plugbay.api.errors import ConfigError, PluginCrashed
from plugbay.isolation.affinity import HOLD_AFTER
from plugbay.isolation.policy import IsolationPolicy
from plugbay.isolation.ray import RayHandle
from plugbay.runtime.host import Host
from plugbay.runtime.prometheus import exposition
from tests._waiting import until
from tests.conftest import PluginFactory
from tests.ray_support import on_node, ray_handle, ray_host

PLUGIN = "acme.notes"

CODE = """
import os
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    def __init__(self) -> None:
        self.count = 0

    def export_state(self) -> dict[str, int]:
        return {{"count": self.count}}

    def import_state(self, state: dict[str, int]) -> None:
        self.count = state["count"]

    @command
    def remember(self, key: str, text: str) -> None:
        self.context.storage.set(key, text)

    @command
    def recall(self, key: str) -> str | None:
        return self.context.storage.get(key)

    @command
    def bump(self) -> int:
        self.count += 1
        return self.count

    @command
    def label(self) -> str:
        return "{label}"

    @command
    async def wait(self, seconds: float) -> str:
        import asyncio
        await asyncio.sleep(seconds)
        return "done"

    @command
    async def stall(self, seconds: float) -> None:
        import time
        time.sleep(seconds)  # an async command that blocks its loop: a hang

    @command
    def crunch(self, seconds: float) -> str:
        import time
        time.sleep(seconds)  # a def command: its worker's loop answers nothing meanwhile
        return "crunched"
"""


def write(directory: Path, *, label: str, version: str, extra: str = "") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "main.py").write_text(CODE.format(label=label))
    (directory / "plugin.toml").write_text(
        f'id = "{PLUGIN}"\nversion = "{version}"\ntype = "utility"\nentry = "main:P"\n{extra}'
    )


def policy(cluster: Any, *, trusted: bool, plugins: tuple[str, ...] = ("*",)) -> IsolationPolicy:
    return IsolationPolicy.from_config(
        {
            "ray": {"address": cluster.address, "plugins": list(plugins)},
            "policy": {"inline": ["*"] if trusted else []},
        }
    )


@pytest.fixture
def make(
    ray_cluster: Any, tmp_path: Path, plugins: PluginFactory
) -> Callable[..., contextlib.AbstractAsyncContextManager[Host]]:
    def running(
        *, trusted: bool = False, **options: Any
    ) -> contextlib.AbstractAsyncContextManager[Host]:
        options.setdefault("policy", policy(ray_cluster, trusted=trusted))
        return ray_host(plugins.root, tmp_path / "state", **options)

    return running


def handle_of(host: Host) -> RayHandle:
    return ray_handle(host, PLUGIN)


@pytest.mark.slow
@pytest.mark.parametrize("trusted", [False, True], ids=["sandboxed", "bare-actor"])
async def test_a_plugin_runs_on_the_node_its_manifest_asks_for(
    ray_cluster: Any, make: Any, plugins: PluginFactory, trusted: bool
) -> None:
    write(plugins.root / "notes", label="v1", version="1.0.0", extra=on_node("node-b"))
    async with make(trusted=trusted) as host:
        assert host.plugin(PLUGIN).state == "active", host.plugin(PLUGIN).reason
        handle = handle_of(host)
        assert ray_cluster.name_of(handle.node) == "node-b"
        assert await host.call(PLUGIN, "bump") == 1
        # its pid is its node's (here the same machine's): calls in a row, which hold a
        # local worker to its caller's core, move no process by that number
        cores = os.sched_getaffinity(handle.pid)
        for n in range(2, HOLD_AFTER + 4):
            assert await host.call(PLUGIN, "bump") == n
        assert os.sched_getaffinity(handle.pid) == cores
        info = host.info(PLUGIN)
        assert info["isolation"] == "ray"
        assert info["location"]["node"] == handle.node
        if trusted:
            assert info["location"]["mode"] == "actor" and not info["sandbox"]["sandboxed"]
            assert "bare actor (no sandbox)" in info["sandbox"]["reason"]
        else:
            assert info["location"]["mode"] == "agent" and info["sandbox"]["sandboxed"]
            assert "sandboxed worker of its node's plugbay agent" in info["sandbox"]["reason"]
            assert any(layer.get("active") for layer in info["sandbox"]["layers"])
        usage = host.manager.monitor_usage(PLUGIN)
        assert usage["node"] == handle.node and usage["rss_bytes"] > 0  # read on its node
        mode = "actor" if trusted else "agent"
        metrics = exposition(host.manager).decode()
        assert (
            f'plugbay_plugin_node_info{{backend="ray",mode="{mode}",node="{handle.node}",'
            f'plugin="{PLUGIN}"}} 1' in metrics
        )


@pytest.mark.slow
@pytest.mark.parametrize("trusted", [False, True], ids=["sandboxed", "bare-actor"])
async def test_when_its_node_goes_the_plugin_serves_again_from_another_with_its_data(
    ray_cluster: Any, make: Any, plugins: PluginFactory, trusted: bool
) -> None:
    # "worker" is a resource of node-a and node-b (not the head): it lands on one of them
    write(plugins.root / "notes", label="v1", version="1.0.0", extra=on_node("worker"))
    async with make(trusted=trusted, restart_backoff=0.1) as host:
        first = handle_of(host)
        gone = ray_cluster.name_of(first.node)
        assert gone in ("node-a", "node-b")
        await host.call(PLUGIN, "remember", key="greeting", text="kept across nodes")
        in_flight = asyncio.create_task(host.call(PLUGIN, "wait", seconds=60.0))
        await until(lambda: first.running() != [], "the call to start")
        started = time.monotonic()
        try:
            await asyncio.to_thread(ray_cluster.remove, gone)
            with pytest.raises(PluginCrashed) as crashed:
                await in_flight
            assert crashed.value.plugin == PLUGIN
            # a node's loss fails the call at once (bench reports the figure), never a hang
            assert time.monotonic() - started < 20
            await until(
                lambda: host.plugin(PLUGIN).state == "active" and handle_of(host) is not first,
                "the restart on another node",
                seconds=60,
            )
            moved = handle_of(host)
            assert ray_cluster.name_of(moved.node) not in (gone, "?")
            # context.storage is the host's: the data written on the lost node is read back
            assert await host.call(PLUGIN, "recall", key="greeting") == "kept across nodes"
            assert host.state is not None
            actions = [e.action for e in host.state.history(PLUGIN)]
            assert "crash" in actions and "restart" in actions
        finally:
            ray_cluster.add(gone)  # the session's cluster, restored (main thread only)


def freeze(node: Any, sig: signal.Signals) -> list[psutil.Process]:
    """Stop (or continue) every process of a cluster node, as a machine that vanished
    without closing its sockets: its raylet and what it started (the plugin's actor or
    agent, the zygote and the workers), and Ray's other processes of that node."""
    procs: list[psutil.Process] = []
    for _kind, popen in node.live_processes():
        with contextlib.suppress(psutil.NoSuchProcess):
            top = psutil.Process(popen.pid)
            procs += [top, *top.children(recursive=True)]
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(sig)
    return procs


@pytest.mark.slow
@pytest.mark.parametrize("trusted", [False, True], ids=["sandboxed", "bare-actor"])
async def test_a_def_command_holds_the_heartbeat_while_its_node_answers_for_it(
    ray_cluster: Any, make: Any, plugins: PluginFactory, trusted: bool
) -> None:
    """A def command longer than the heartbeat's second finishes on a live node; on a
    node that freezes (a machine gone without closing its sockets) its call fails
    within seconds, not at its 30 s time limit."""
    write(plugins.root / "notes", label="v1", version="1.0.0", extra=on_node("worker"))
    async with make(trusted=trusted, restart_backoff=0.1) as host:
        first = handle_of(host)
        loop = asyncio.get_running_loop()

        def held() -> bool:
            return first.beat.silent(loop.time()) > first.beat.timeout + 0.5

        crunch = asyncio.ensure_future(host.call(PLUGIN, "crunch", seconds=4.0))
        await until(lambda: crunch.done() or held(), "the worker silent past the heartbeat")
        assert not crunch.done(), crunch.exception()
        assert await crunch == "crunched"
        assert handle_of(host) is first and first.alive() is None
        # the same, and its node freezes while the command runs
        crunch = asyncio.ensure_future(host.call(PLUGIN, "crunch", seconds=60.0))
        await until(lambda: crunch.done() or held(), "the worker silent past the heartbeat")
        assert not crunch.done(), crunch.exception()
        name = ray_cluster.name_of(first.node)
        node = ray_cluster.nodes[name]
        gaps: list[float] = []

        async def ticking() -> None:  # the host's loop, turning while the node is asked
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.05)
                gaps.append(time.monotonic() - last)
                last = time.monotonic()

        ticker = asyncio.ensure_future(ticking())
        frozen = time.monotonic()
        freeze(node, signal.SIGSTOP)
        try:
            with pytest.raises(PluginCrashed, match="stopped answering its heartbeat"):
                await crunch
            assert time.monotonic() - frozen < 20  # bounds a hang; its limit is 30 s
            ticks = len(gaps)
            await until(lambda: len(gaps) > ticks, "the ticker's next turn")
            # its stacks were not waited for on the loop (a Ray call of up to 5 s there)
            assert max(gaps) < 3.0, max(gaps)
        finally:
            ticker.cancel()
            freeze(node, signal.SIGCONT)
            await asyncio.to_thread(ray_cluster.remove, name)
            ray_cluster.add(name)  # the session's cluster, restored (main thread only)


@pytest.mark.slow
@pytest.mark.parametrize("trusted", [False, True], ids=["sandboxed", "bare-actor"])
async def test_a_remote_worker_that_blocks_its_loop_is_killed_with_its_stacks_from_its_node(
    ray_cluster: Any, make: Any, plugins: PluginFactory, trusted: bool
) -> None:
    """Its stacks are read on its node (a Ray call): asked in a thread while the host's
    loop runs on, and in the plugin's log before it is killed."""
    write(plugins.root / "notes", label="v1", version="1.0.0", extra=on_node("worker"))
    async with make(trusted=trusted, restart_backoff=0.1) as host:
        first = handle_of(host)
        stalled = asyncio.ensure_future(host.call(PLUGIN, "stall", seconds=60.0))
        ticks = 0
        while not stalled.done():  # the host's loop turns all along
            ticks += 1
            await asyncio.sleep(0.05)
        with pytest.raises(PluginCrashed, match="stopped answering its heartbeat"):
            await stalled
        assert ticks > 20  # a second of silence and more, the loop turning
        (record,) = await until(
            lambda: [r for r in host.logs(PLUGIN) if "its stacks:" in r["message"]],
            "the stacks in the plugin's log",
        )
        assert "in stall" in record["message"], record["message"]
        await until(
            lambda: host.plugin(PLUGIN).state == "active" and handle_of(host) is not first,
            "the restart",
            seconds=60,
        )
        assert await host.call(PLUGIN, "label") == "v1"


@pytest.mark.slow
async def test_a_hot_reload_moves_the_plugin_across_nodes_with_no_failed_call(
    ray_cluster: Any, make: Any, plugins: PluginFactory
) -> None:
    directory = plugins.root / "notes"
    write(directory, label="v1", version="1.0.0", extra=on_node("node-a"))
    async with make(probation=0.2) as host:
        first = handle_of(host)
        assert ray_cluster.name_of(first.node) == "node-a"
        stop = asyncio.Event()
        answers: list[int] = []
        failures: list[BaseException] = []

        async def caller() -> None:
            while not stop.is_set():
                try:
                    answers.append(await host.call(PLUGIN, "bump"))
                except Exception as exc:
                    failures.append(exc)
                await asyncio.sleep(0)

        callers = [asyncio.create_task(caller()) for _ in range(4)]
        await until(lambda: len(answers) > 20, "calls before the reload")
        write(directory, label="v2", version="1.1.0", extra=on_node("node-b"))
        await host.reload(PLUGIN)
        before = len(answers)
        await until(lambda: len(answers) > before + 20, "calls after the reload")
        stop.set()
        await asyncio.gather(*callers)
        assert failures == []
        assert await host.call(PLUGIN, "label") == "v2"
        assert ray_cluster.name_of(handle_of(host).node) == "node-b"
        # every acknowledged bump is counted: the state moved with the plugin
        assert await host.call(PLUGIN, "bump") == max(answers) + 1
        await until(lambda: first.gone, "the old version's worker to end")


@pytest.mark.slow
async def test_a_manifest_may_ask_for_ray_and_the_policy_still_decides_its_sandbox(
    ray_cluster: Any, make: Any, plugins: PluginFactory
) -> None:
    write(
        plugins.root / "notes",
        label="v1",
        version="1.0.0",
        extra='[placement]\nbackend = "ray"\n',
    )
    async with make(policy=policy(ray_cluster, trusted=False, plugins=())) as host:
        handle = handle_of(host)
        assert handle.mode == "agent" and handle.placement is not None
        assert handle.placement.sandboxed
        assert await host.call(PLUGIN, "bump") == 1
    # a host without [ray]: the same plugin runs on this machine, unchanged, and says why
    async with make(policy=IsolationPolicy.from_config({})) as host:
        rec = host.plugin(PLUGIN)
        assert rec.isolation == "process"
        assert await host.call(PLUGIN, "label") == "v1"
        assert "this host has no [ray]" in host.info(PLUGIN)["sandbox"]["reason"]


def test_a_mistake_in_the_ray_table_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="address"):
        IsolationPolicy.from_config({"ray": {"address": "nowhere"}})
    with pytest.raises(ConfigError, match="no key 'adress'"):
        IsolationPolicy.from_config({"ray": {"adress": "auto"}})
    with pytest.raises(ConfigError, match="temp-dir"):
        IsolationPolicy.from_config({"ray": {"temp-dir": "/tmp/" + "x" * 60}})


LOCAL = """
import asyncio, json, os, sys
from plugbay.runtime.host import Host
from plugbay.cli._plugin_views import _isolation_text

async def main() -> None:
    async with Host(sys.argv[1], state_dir=sys.argv[2], config_file=sys.argv[3],
                    entry_points=False, init_timeout=60) as host:
        backend = host.manager.backends["ray"]
        info = host.info("acme.notes")
        out = {
            "bump": await host.call("acme.notes", "bump"),
            "location": info["location"],
            "text": _isolation_text(info, info["manifest"]),
            "temp_dir": backend.temp_dir,
            "token_path": os.environ.get("RAY_AUTH_TOKEN_PATH"),
        }
    out["token_path_after"] = os.environ.get("RAY_AUTH_TOKEN_PATH")
    print(json.dumps(out))

asyncio.run(main())
"""


@pytest.mark.slow
def test_address_local_starts_a_private_cluster_and_stops_it_with_the_host(
    tmp_path: Path, plugins: PluginFactory
) -> None:
    import json
    import subprocess
    import sys

    import psutil

    write(plugins.root / "notes", label="v1", version="1.0.0")
    config = tmp_path / "plugbay.toml"
    config.write_text('[ray]\naddress = "local"\nplugins = ["acme.*"]\nnum-cpus = 1\n')
    # Ray writes the token of a cluster it starts to ~/.ray/auth_token unless told where
    # it is; found there, it turns token authentication on for every later "auto" host
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH_")}
    # its own process: this one is connected to the session's cluster
    done = subprocess.run(
        [sys.executable, "-c", LOCAL, str(plugins.root), str(tmp_path / "state"), str(config)],
        capture_output=True,
        text=True,
        timeout=180,
        env={**env, "HOME": str(home)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["bump"] == 1
    assert out["location"]["backend"] == "ray" and out["location"]["mode"] == "agent"
    assert out["text"].startswith(
        f"Ray sandboxed worker of the node's agent on node {out['location']['node'][:12]}"
    )
    temp_dir = out["temp_dir"]
    assert temp_dir and len(temp_dir) < 30  # a short one: Ray's socket paths fit
    assert not Path(temp_dir).exists()  # removed with the cluster
    # its token was kept in its temp dir, and nothing outside it changed
    assert not (home / ".ray").exists(), sorted(map(str, home.rglob("*")))
    assert out["token_path"] and Path(out["token_path"]).is_relative_to(temp_dir)
    assert out["token_path_after"] is None
    # nothing of that cluster is left running (its processes name its temp dir)
    left = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(temp_dir in part for part in proc.info["cmdline"] or []):
                left.append(proc.info["pid"])
    assert left == []


DOC_MANIFEST = """
id = "acme.heavy"
version = "1.0.0"
type = "utility"
entry = "main:P"

[placement]
backend = "ray"
node-labels = { zone = "b" }

[resources]
num-cpus = 1
memory = "512MiB"
custom = { "gpu-box" = 1 }
"""


def test_the_policy_puts_a_plugin_on_ray_with_the_resources_its_manifest_asks_for(
    tmp_path: Path,
) -> None:
    from plugbay.model.manifest import parse_manifest

    manifest = parse_manifest(DOC_MANIFEST)
    untrusted = IsolationPolicy.from_config({"ray": {"address": "auto"}})
    placed = untrusted.place(manifest, [tmp_path])
    assert (placed.isolation, placed.sandboxed, placed.ray["mode"]) == ("ray", True, "agent")
    assert placed.ray["num_cpus"] == 1.0 and placed.ray["memory"] == 512 * 2**20
    assert placed.ray["resources"] == {"gpu-box": 1} and placed.ray["labels"] == {"zone": "b"}
    assert placed.limits["memory"] == 512 * 2**20  # the sandbox's limit is the same
    assert placed.describe()["ray"]["mode"] == "agent"
    trusted = IsolationPolicy.from_config(
        {"ray": {"address": "auto"}, "policy": {"inline": ["acme.*"]}}
    )
    assert trusted.place(manifest, [tmp_path]).ray["mode"] == "actor"
    through_agent = IsolationPolicy.from_config(
        {"ray": {"address": "auto", "bare-actors": False}, "policy": {"inline": ["acme.*"]}}
    ).place(manifest, [tmp_path])
    assert (through_agent.ray["mode"], through_agent.sandboxed) == ("agent", False)
    # the operator keeps a plugin here by not configuring Ray at all
    assert IsolationPolicy.from_config({}).place(manifest, [tmp_path]).isolation == "process"


def test_a_negative_cluster_resource_is_a_manifest_error() -> None:
    from plugbay.api.errors import ManifestError
    from plugbay.model.manifest import parse_manifest

    with pytest.raises(
        ManifestError,
        match=r"resources.num-cpus' must be a number of at least 0, not the integer -1",
    ):
        parse_manifest(DOC_MANIFEST.replace("num-cpus = 1", "num-cpus = -1"))
    with pytest.raises(
        ManifestError,
        match=r"resources.custom.gpu-box' must be a number of at least 0, not the integer -2",
    ):
        parse_manifest(DOC_MANIFEST.replace('"gpu-box" = 1', '"gpu-box" = -2'))
    with pytest.raises(ManifestError, match="backend"):
        parse_manifest(DOC_MANIFEST.replace('backend = "ray"', 'backend = "mars"'))


@pytest.mark.slow
@pytest.mark.parametrize("trusted", [False, True], ids=["sandboxed", "bare-actor"])
async def test_node_labels_in_the_manifest_choose_the_node(
    ray_cluster: Any, make: Any, plugins: PluginFactory, trusted: bool
) -> None:
    labels = '[placement]\nnode-labels = { plugbay-node = "node-a" }\n'
    write(plugins.root / "notes", label="v1", version="1.0.0", extra=labels)
    async with make(trusted=trusted) as host:
        assert host.plugin(PLUGIN).state == "active", host.plugin(PLUGIN).reason
        assert ray_cluster.name_of(handle_of(host).node) == "node-a"
        assert await host.call(PLUGIN, "bump") == 1
