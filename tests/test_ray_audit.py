"""The scale-out guide (``docs/scale-out.md``) followed as an operator would, where it and
the Ray backend had parted: a ``[ray] address`` whose head does not answer, plugins
started side by side on a cluster, a restart waiting for a node that comes back, what a
``local`` cluster leaves on this machine, the node's cache of shipped code kept private,
and ``plugbay nodes`` naming sizes. Real clusters: the session's (``tests/ray_support.py``)
or a ``local`` one of a ``plugbay`` process's own; never ``ray stop``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from plugbay.isolation.policy import IsolationPolicy
from tests._cli import PLUGBAY, cli_env, run_cli
from tests._waiting import until
from tests.conftest import PluginFactory
from tests.ray_support import on_node, ray_handle, ray_host

CODE = """
import os
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def remember(self, key: str, text: str) -> None:
        self.context.storage.set(key, text)

    @command
    def recall(self, key: str) -> str | None:
        return self.context.storage.get(key)

    @command
    def scratch(self) -> str:
        path = os.path.join(str(self.context.environment.data_dir), "note.txt")
        with open(path, "w") as f:
            f.write("on the node")
        return path
"""


def write(plugins: PluginFactory, plugin_id: str, extra: str = "") -> None:
    plugins(plugin_id, CODE, extra=extra, dirname=plugin_id)


def policy(address: str, *, start_timeout: float = 60.0) -> IsolationPolicy:
    return IsolationPolicy.from_config(
        {"ray": {"address": address, "plugins": ["acme.*"], "start-timeout": start_timeout}}
    )


def closed_port() -> int:
    """A port of this machine nobody listens on (taken from the kernel, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- joining


@pytest.mark.slow
def test_an_address_whose_head_does_not_answer_is_refused_at_once_naming_it(
    tmp_path: Path, plugins: PluginFactory
) -> None:
    """``[ray] address`` with no head there: the host says so for each Ray plugin and
    serves its other plugins (Ray alone waited for the head a year, the host with it)."""
    write(plugins, "acme.notes")
    write(plugins, "other.local")
    port = closed_port()
    (tmp_path / "plugbay.toml").write_text(
        f'[ray]\naddress = "127.0.0.1:{port}"\nplugins = ["acme.*"]\n'
    )
    started = time.monotonic()
    done = run_cli(
        [*PLUGBAY, "run", "--once", "--no-http", "--no-metrics", "--plugins", str(plugins.root)],
        cwd=tmp_path,
        timeout=120,
    )
    took = time.monotonic() - started
    out = done.stdout + done.stderr
    assert done.returncode == 1, out  # --once: a plugin failed
    assert took < 60, f"{took:.1f} s: {out}"  # bounds a hang: the knock takes seconds
    lines = out.splitlines()
    assert any("other.local" in line and "active" in line for line in lines), out
    assert any("acme.notes" in line and "failed" in line for line in lines), out
    assert f"could not join the Ray cluster ([ray] address = '127.0.0.1:{port}')" in out, out
    assert "does not answer" in out and "start the cluster's head first" in out, out


# --------------------------------------------------------------------------- placing


@pytest.mark.slow
async def test_plugins_started_side_by_side_are_spread_over_the_nodes(
    ray_cluster: Any, tmp_path: Path, plugins: PluginFactory
) -> None:
    """The guide: "a plugin that asks for none is spread by plugbay over the alive nodes"
    — also at the host's start, where independent plugins start side by side."""
    alive = await asyncio.to_thread(lambda: [n for n in _ray_nodes() if n["Alive"]])
    assert len(alive) >= 3, alive
    names = ["acme.one", "acme.two", "acme.three"]
    for name in names:
        write(plugins, name)
    async with ray_host(
        plugins.root, tmp_path / "state", policy=policy(ray_cluster.address)
    ) as host:
        for name in names:
            assert host.plugin(name).state == "active", host.plugin(name).reason
        where = {name: ray_cluster.name_of(ray_handle(host, name).node) for name in names}
        assert len(set(where.values())) == 3, where  # one on each node, not three on one
        for name in names:
            await host.call(name, "remember", key="k", text=name)
            assert await host.call(name, "recall", key="k") == name


def _ray_nodes() -> list[dict[str, Any]]:
    import ray

    return list(ray.nodes())


@pytest.mark.slow
async def test_a_restart_waits_for_the_node_its_plugin_needs_and_serves_when_it_is_back(
    ray_cluster: Any, tmp_path: Path, plugins: PluginFactory
) -> None:
    """The guide: a plugin pinned by a custom resource only the lost node had "waits up
    to start-timeout, then counts as a crash and backs off" — it is not failed for good,
    and serves again, its data there, once a node with that resource is back."""
    write(plugins, "acme.pinned", extra=on_node("node-b"))
    async with ray_host(
        plugins.root,
        tmp_path / "state",
        policy=policy(ray_cluster.address, start_timeout=2),
        restart_backoff=0.1,
    ) as host:
        first = ray_handle(host, "acme.pinned")
        assert ray_cluster.name_of(first.node) == "node-b"
        await host.call("acme.pinned", "remember", key="k", text="kept")
        removed = False
        try:
            await asyncio.to_thread(ray_cluster.remove, "node-b")
            removed = True
            # its restart found no node with "node-b" within start-timeout (2 s)
            await until(
                lambda: (
                    "no node of the Ray cluster took it within 2 s"
                    in (host.plugin("acme.pinned").reason or "")
                ),
                "a restart that no node took",
                seconds=60,
            )
            rec = host.plugin("acme.pinned")
            assert rec.state == "restarting", rec.reason  # not failed: it is tried again
            assert rec.restart is not None
            # a call meanwhile waits for the restart (as for any crash), not refused
            call = asyncio.ensure_future(host.call("acme.pinned", "recall", key="k"))
            await asyncio.sleep(0)
            assert not call.done(), call.exception() if call.done() else None
            ray_cluster.add("node-b")  # the node is back (main thread only)
            removed = False
            await until(
                lambda: host.plugin("acme.pinned").state == "active",
                "the plugin serving again on the node that came back",
                seconds=90,
            )
            assert ray_cluster.name_of(ray_handle(host, "acme.pinned").node) == "node-b"
            assert await call == "kept"
        finally:
            if removed:
                ray_cluster.add("node-b")  # the session's cluster, restored


# --------------------------------------------------------------------------- the node's cache


@pytest.mark.slow
def test_a_local_cluster_leaves_no_node_cache_behind(
    tmp_path: Path, plugins: PluginFactory
) -> None:
    """``address = "local"``: a private cluster stopped with the host. Each start is a
    node of a new id, so its cache of shipped code and its plugins' scratch directories
    are read by no later host: they go with it (``plugbay call`` starts one per call)."""
    write(plugins, "acme.notes")
    (tmp_path / "plugbay.toml").write_text(
        '[ray]\naddress = "local"\nplugins = ["acme.*"]\nnum-cpus = 1\nobject-store = "80MiB"\n'
    )
    ray_tmp = tempfile.mkdtemp(prefix="pba-", dir="/tmp")  # short: Ray's socket paths
    try:
        env = cli_env({"RAY_TMPDIR": ray_tmp})
        done = run_cli(
            [*PLUGBAY, "call", "acme.notes", "scratch", "--plugins", str(plugins.root)],
            cwd=tmp_path,
            timeout=180,
            env=env,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        # the host joins from a thread so that SIGTERM stays its own: Ray's note of it
        # is not a warning for the user
        assert "SIGTERM handler is not set" not in done.stderr, done.stderr
        written = Path(done.stdout.strip().splitlines()[-1])
        cache = Path(ray_tmp) / f"plugbay-node-{os.getuid()}"
        assert written.is_relative_to(cache), written  # the node's scratch directory
        assert not written.exists()
        assert list(cache.iterdir()) == []  # no node's code, no scratch directory left
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.mark.slow
async def test_the_nodes_cache_of_code_is_private_to_its_user(
    ray_cluster: Any, tmp_path: Path, plugins: PluginFactory
) -> None:
    """The node's cache sits in a shared temp root: others may not write there (they
    could change the code its plugins import), nor read what its plugins wrote."""
    cache = Path(ray_cluster.temp_dir) / f"plugbay-node-{os.getuid()}"
    cache.mkdir(exist_ok=True)
    write(plugins, "acme.notes")
    try:
        os.chmod(cache, 0o777)  # anyone may write: nothing is unpacked there
        async with ray_host(
            plugins.root, tmp_path / "state", policy=policy(ray_cluster.address)
        ) as host:
            rec = host.plugin("acme.notes")
            assert rec.state == "failed"
            assert f"this node's cache of plugbay code, {cache}, is not private" in str(rec.reason)
            assert f"remove {cache} on that node" in str(rec.reason)
        os.chmod(cache, 0o755)  # an earlier plugbay's: made private, and used
        async with ray_host(
            plugins.root, tmp_path / "state2", policy=policy(ray_cluster.address)
        ) as host:
            assert host.plugin("acme.notes").state == "active", host.plugin("acme.notes").reason
            written = Path(await host.call("acme.notes", "scratch"))
            assert written.is_relative_to(cache)
            assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    finally:
        with contextlib.suppress(OSError):
            os.chmod(cache, 0o700)


# --------------------------------------------------------------------------- plugbay nodes


def test_plugbay_nodes_says_a_nodes_memory_in_binary_units() -> None:
    """``plugbay nodes``: a node's memory and object store as sizes, not 2.43781e+10."""
    from plugbay.cli.nodes import nodes_table

    view = {
        "cluster": {"backend": "ray", "address": "10.0.0.5:6379", "connected": True,
                    "reachable": True, "error": None, "head_lost_since": None},
        "nodes": [{"node": "0238ba65f6c0e5a4c1b7", "address": "10.0.0.7", "alive": True,
                   "resources": {"CPU": 1.0, "memory": 23378018304.0,
                                 "object_store_memory": 83886080.0, "node-b": 100.0},
                   "labels": {}, "plugins": []}],
        "unplaced": [],
    }  # fmt: skip
    console = Console(width=200, record=True, color_system=None)
    console.print(nodes_table(view))
    text = console.export_text()
    assert "memory 21.8 GiB" in text and "object_store_memory 80.0 MiB" in text, text
    assert "CPU 1" in text and "node-b 100" in text
    assert "e+" not in text, text
