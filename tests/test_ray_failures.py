"""The Ray backend's failure paths, on the session's cluster (``tests/ray_support.py``).

A plugin whose constructor, module or ``initialize`` raises is answered on Ray as on
this machine (``tests/test_init_failure_alike.py``): the same code, message, hint,
line and details, sandboxed in a node's agent and trusted as a bare actor, and the
host serves its other plugins. ``[ray] listen`` named: a call is served through it,
and an address this host cannot bind is refused in plugbay's words.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from plugbay.isolation.policy import IsolationPolicy
from tests.conftest import PluginFactory
from tests.ray_support import on_node, ray_handle, ray_host
from tests.test_init_failure_alike import CONSTRUCTOR_FAILS, FAILS, IMPORT_FAILS, PING


@pytest.mark.slow
@pytest.mark.parametrize("trusted", [False, True], ids=["agent", "actor"])
async def test_a_constructor_or_initialize_that_raises_on_ray_is_answered_as_on_this_machine(
    ray_cluster: Any, tmp_path: Path, trusted: bool
) -> None:
    plugins = PluginFactory(tmp_path / "plugins")
    plugins("acme.ok", PING, extra=on_node("node-a"))
    init = plugins("acme.init", FAILS, extra=on_node("node-a"))
    ctor = plugins("acme.ctor", CONSTRUCTOR_FAILS, extra=on_node("node-a"))
    module = plugins("acme.module", IMPORT_FAILS, extra=on_node("node-a"))
    policy = IsolationPolicy.from_config(
        {
            "ray": {"address": ray_cluster.address, "plugins": ["acme.*"]},
            "policy": {"inline": ["acme.*"] if trusted else []},
        }
    )
    async with ray_host(plugins.root, tmp_path / "state", policy=policy) as host:
        assert await host.call("acme.ok", "ping") == "pong"  # the neighbour on the same node
        assert ray_handle(host, "acme.ok").mode == ("actor" if trusted else "agent")
        # each names the host's file (the one to fix), not the node's copy under a digest
        for pid, path, code, message, line, function in [
            ("acme.init", init, "plugin_init_failed",
             "initialize raised RuntimeError: the wheel fell off", 6, "initialize"),
            ("acme.ctor", ctor, "plugin_init_failed",
             "constructing P raised RuntimeError: the wheel fell off", 7, "__init__"),
            ("acme.module", module, "plugin_load_failed",
             "importing 'main' raised RuntimeError: the wheel fell off", 3, "<module>"),
        ]:  # fmt: skip
            error = host.plugin(pid).error
            assert error is not None, pid
            assert (error.code, error.message) == (code, message)
            assert error.hint is not None
            assert error.hint.endswith(f"see the traceback with 'plugbay info {pid} --traceback'")
            assert error.where == f"{path / 'main.py'}:{line}"
            assert set(error.details) == {"exception", "raised_at", "traceback"}
            assert error.details["exception"] == "RuntimeError"
            assert error.details["raised_at"] == {
                "file": str(path / "main.py"),
                "line": line,
                "function": function,
                "code": 'raise RuntimeError("the wheel fell off")',
            }
            assert f'File "{path / "main.py"}", line {line}' in error.details["traceback"]
        assert await host.call("acme.ok", "ping") == "pong"  # and still answers


#: a command that raises (line 8), one that logs what it caught (raised at line 13), and
#: one that spins in a function of its own (defined at line 18) for a profile and samples
RAISES = """
import time
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def boom(self) -> str:
        raise KeyError("the wheel")

    @command
    def quietly(self) -> str:
        try:
            raise ValueError("the spoke")
        except ValueError:
            self.context.logger.exception("it went")
        return "logged"

    def spin(self, seconds: float) -> int:
        n, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            n += 1
        return n

    @command
    def busy(self, seconds: float) -> int:
        return self.spin(seconds)
"""


@pytest.mark.slow
@pytest.mark.parametrize("trusted", [False, True], ids=["agent", "actor"])
async def test_a_command_that_raises_on_ray_names_the_host_file_in_its_error_log_and_profile(
    ray_cluster: Any, tmp_path: Path, trusted: bool
) -> None:
    import asyncio

    from plugbay.api.errors import PlugbayError
    from tests._waiting import until

    plugins = PluginFactory(tmp_path / "plugins")
    plugins("acme.ok", PING, extra=on_node("node-a"))
    path = plugins("acme.raises", RAISES, extra=on_node("node-a"))
    main = str(path / "main.py")
    policy = IsolationPolicy.from_config(
        {
            "ray": {"address": ray_cluster.address, "plugins": ["acme.*"]},
            "policy": {"inline": ["acme.*"] if trusted else []},
        }
    )
    async with ray_host(plugins.root, tmp_path / "state", policy=policy) as host:
        handle = ray_handle(host, "acme.raises")
        assert handle.mode == ("actor" if trusted else "agent")
        assert handle.manifest.path is not None
        node_copy = str(handle.manifest.path.parent)  # …/code/<digest>: not on this machine
        assert node_copy != str(path)

        with pytest.raises(PlugbayError) as raised:
            await host.call("acme.raises", "boom")
        error = raised.value
        assert error.details["exception"] == "KeyError"
        assert error.where == f"{main}:8"
        assert error.details["raised_at"]["file"] == main
        assert error.details["raised_at"]["line"] == 8
        assert f'File "{main}", line 8, in boom' in error.details["traceback"]
        assert node_copy not in error.details["traceback"]
        assert await host.call("acme.ok", "ping") == "pong"  # the neighbour answers

        # a logged exception's traceback (``plugbay logs``' ``exception`` field)
        assert await host.call("acme.raises", "quietly") == "logged"

        def logged() -> list[dict[str, Any]]:
            return [r for r in host.logs("acme.raises") if r["message"] == "it went"]

        (record,) = await until(logged, "the logged exception")
        trace = record["fields"]["exception"]
        assert f'File "{main}", line 13, in quietly' in trace and node_copy not in trace

        # plugbay profile: one call's report; --seconds: the serving worker's samples
        value, report = await host.profile("acme.raises", "busy", {"seconds": 0.05})
        assert value > 0
        assert f"{main}:18(spin)" in report and node_copy not in report
        sampling = asyncio.ensure_future(host.sample("acme.raises", 1.0))
        while not sampling.done():  # busy in its own code for as long as it is sampled
            await host.call("acme.raises", "busy", seconds=0.1)
        samples = await sampling
        files = {frame[1] for frame in samples["frames"]}
        assert main in files and not any(node_copy in f for f in files), files
        assert await host.call("acme.ok", "ping") == "pong"


#: a def command (line 8) that holds its worker's loop past its 1 s time limit
HANGS = """
import time
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def hang(self) -> str:
        time.sleep(60)
        return "late"
"""


@pytest.mark.slow
@pytest.mark.parametrize("trusted", [False, True], ids=["agent", "actor"])
async def test_a_hung_worker_killed_on_ray_names_the_host_file_in_its_logged_stacks(
    ray_cluster: Any, tmp_path: Path, trusted: bool
) -> None:
    import re

    from plugbay.api.errors import PluginCrashed, PluginTimeout
    from tests._waiting import until

    plugins = PluginFactory(tmp_path / "plugins")
    plugins("acme.ok", PING, extra=on_node("node-a"))
    resources = '[resources]\ntimeout = 1\ncustom = { "node-a" = 1 }\n'
    path = plugins("acme.hangs", HANGS, extra=resources)
    main = str(path / "main.py")
    policy = IsolationPolicy.from_config(
        {
            "ray": {"address": ray_cluster.address, "plugins": ["acme.*"]},
            "policy": {"inline": ["acme.*"] if trusted else []},
        }
    )
    async with ray_host(plugins.root, tmp_path / "state", policy=policy) as host:
        handle = ray_handle(host, "acme.hangs")
        assert handle.manifest.path is not None
        node_copy = str(handle.manifest.path.parent)  # …/code/<digest>: not on this machine
        assert node_copy != str(path)
        with pytest.raises((PluginTimeout, PluginCrashed)):
            await host.call("acme.hangs", "hang")

        def stacks() -> list[dict[str, Any]]:
            return [r for r in host.logs("acme.hangs") if "its stacks:" in r["message"]]

        # plugbay logs: the worker killed past its time limit, what it was doing
        (record,) = await until(stacks, "the hung worker's stacks in its log", seconds=30)
        said = record["message"]
        assert "stopped answering its heartbeat" in said, said
        # a sandboxed worker's stacks in faulthandler's words, an actor's in traceback's
        assert re.search(rf'File "{re.escape(main)}", line 8,? in hang', said), said
        assert node_copy not in said, said
        assert await host.call("acme.ok", "ping") == "pong"  # the neighbour answers


@pytest.mark.slow
async def test_a_named_listen_address_serves_calls_and_one_this_host_cannot_bind_is_refused(
    ray_cluster: Any, tmp_path: Path
) -> None:
    plugins = PluginFactory(tmp_path / "plugins")
    plugins("acme.far", PING, extra=on_node("node-b"))
    plugins("local.near", PING)

    def policy(listen: str) -> IsolationPolicy:
        ray = {"address": ray_cluster.address, "plugins": ["acme.*"], "listen": listen}
        return IsolationPolicy.from_config({"ray": ray})

    async with ray_host(plugins.root, tmp_path / "a", policy=policy("127.0.0.1")) as host:
        assert await host.call("acme.far", "ping") == "pong"
        assert ray_handle(host, "acme.far").mode == "agent"
        channels: Any = host.manager.backends["ray"]._channels
        assert channels.address == "127.0.0.1"  # the node dialled back to it

    async with ray_host(plugins.root, tmp_path / "b", policy=policy("203.0.113.7")) as host:
        error = host.plugin("acme.far").error
        assert error is not None
        assert error.message.startswith(
            "cannot listen for Ray plugins' channels on [ray] listen = '203.0.113.7': "
            "this host cannot bind it"
        ), error.message
        assert error.where is not None and error.where.endswith("[ray] listen")
        assert error.hint is not None
        assert error.hint.startswith("set [ray] listen to an address of this machine")
        assert await host.call("local.near", "ping") == "pong"  # the host serves on


#: runs in a process of its own (Ray's driver state does not survive its head): a cluster
#: of its own (a head only), a host joined to it with a plugin there and one local; the
#: head's control store (GCS) is killed by its pid, then the host is stopped
HEAD_KILLED = r"""
import asyncio, json, logging, os, shutil, signal, sys, tempfile, time
from pathlib import Path

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
temp = tempfile.mkdtemp(prefix="pbhk-", dir="/tmp")
os.environ["RAY_TMPDIR"] = temp
os.makedirs(temp + "/ray")
print(json.dumps({"temp": temp}), flush=True)

from plugbay.isolation.policy import IsolationPolicy
from plugbay.isolation.ray import keep_fault_handlers
from plugbay.runtime.host import Host
from ray.cluster_utils import Cluster

with keep_fault_handlers():
    cluster = Cluster(initialize_head=True, connect=False, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "object_store_memory": 80 << 20,
        "temp_dir": temp + "/ray"})
root = Path(temp) / "plugins"
for pid in ("acme.far", "local.near"):
    (root / pid).mkdir(parents=True)
    (root / pid / "main.py").write_text(sys.argv[1])
    (root / pid / "plugin.toml").write_text(
        f'id = "{pid}"\nversion = "1.0.0"\ntype = "utility"\nentry = "main:P"\n')
policy = IsolationPolicy.from_config({"ray": {"address": cluster.address, "plugins": ["acme.*"]}})
said = []

class Said(logging.Handler):
    def emit(self, record):
        if record.levelno >= logging.WARNING:
            said.append(record.getMessage())

logging.getLogger("plugbay").addHandler(Said())

async def main():
    out = {}
    host = Host(root, state_dir=Path(temp) / "state", entry_points=False, init_timeout=60,
                cleanup_timeout=2.0, policy=policy, monitor={"interval": 3600})
    await host.start()
    try:
        out["before"] = await host.call("acme.far", "ping")
        gcs = cluster.head_node.all_processes["gcs_server"][0].process.pid
        os.kill(gcs, signal.SIGKILL)  # the head's control store, by its pid
        deadline = time.monotonic() + 60
        while host.plugin("acme.far").state.value != "failed" and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        out["far"] = host.plugin("acme.far").state.value
        out["near"] = await host.call("local.near", "ping")
    finally:
        stopping = time.monotonic()
        try:
            await asyncio.wait_for(host.stop(), 60)
            out["stopped"] = True
        except TimeoutError:
            out["stopped"] = False
        out["stop_took"] = round(time.monotonic() - stopping, 2)
    out["said"] = said
    return out

try:
    result = asyncio.run(main())
finally:
    with keep_fault_handlers():
        cluster.shutdown()
    shutil.rmtree(temp, ignore_errors=True)
print(json.dumps(result), flush=True)
"""


@pytest.mark.slow
def test_a_stop_after_the_head_is_killed_finishes_says_what_to_do_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    import contextlib
    import json
    import os
    import subprocess
    import sys

    import psutil

    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    done = subprocess.run(
        [sys.executable, "-c", HEAD_KILLED, PING], capture_output=True, text=True,
        timeout=240, env=env, cwd=tmp_path,
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
    assert out["before"] == "pong"
    assert out["far"] == "failed"
    assert out["near"] == "pong"  # the host served its own plugin without the head
    assert out["stopped"] is True, out  # within its bound, not a hang
    said = " ".join(out["said"])
    assert "the host stopped without the Ray cluster's head ([ray] address = " in said, said
    assert "Start the head again and let the nodes rejoin, then start the host" in said, said
