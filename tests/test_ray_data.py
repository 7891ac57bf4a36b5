"""Ray without a shared file system: a plugin's code (and environment) is shipped to its
node by digest, and its ``context.storage`` is kept by the host
(``isolation/shipping.py``, ``isolation/remote_storage.py``).

On the session's 3-node cluster (``tests/ray_support.py``): the remote worker imports
its code from its node's copy, and neither the host's plugin directory nor its state
directory is in a sandboxed worker's view; storage written on one node is read back
after that node is gone and the plugin serves from another; an archive that does not
match its digest is refused; a plugin's own environment is shipped and imported there.
Without Ray: the archive is deterministic, the node's checks, and the broker's refusal of
a store through the host to a plugin that is not on Ray.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import io
import socket
import struct
import tarfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from plugbay.api import Storage
from plugbay.api.errors import PermissionDenied
from plugbay.isolation import frames
from plugbay.isolation.policy import IsolationPolicy
from plugbay.isolation.ray import RayHandle
from plugbay.isolation.shipping import NodeCache, Packer, ShipmentRefused, pack_directory
from plugbay.runtime.environments import IndexSettings
from plugbay.runtime.host import Host
from tests._waiting import until
from tests._wheels import libdemo
from tests.conftest import PluginFactory
from tests.ray_support import on_node, ray_handle, ray_host

PLUGIN = "acme.shipped"

CODE = """
import os
from pathlib import Path

from plugbay import StorageFull, UtilityPlugin, command

MARK = "{mark}"

class P(UtilityPlugin):
    @command
    def where(self) -> dict[str, str]:
        here = Path(__file__).parent
        return {{
            "code": str(here),
            "shipped_file": (here / "data" / "words.txt").read_text(),
            "data_dir": str(self.context.environment.data_dir),
        }}

    @command
    def look(self, path: str) -> str:
        try:
            return "listed " + ",".join(sorted(os.listdir(path)))
        except OSError as exc:
            return type(exc).__name__

    @command
    def remember(self, key: str, text: str) -> None:
        self.context.storage.set(key, {{"text": text}})

    @command
    async def recall(self, key: str) -> str | None:
        value = self.context.storage.get(key)
        return None if value is None else value["text"]

    @command(blocking=True)
    def keys(self) -> list[str]:
        return self.context.storage.keys()

    @command
    def put(self, name: str, size: int) -> str:
        try:
            self.context.storage.put_blob(name, b"x" * size)
        except StorageFull as exc:
            return "full: " + exc.code
        return "stored"

    @command
    def blob_size(self, name: str) -> int:
        data = self.context.storage.get_blob(name)
        return -1 if data is None else len(data)
"""


def write(plugins: PluginFactory, *, extra: str = "", mark: str = "") -> Path:
    directory = plugins.root / "shipped"
    (directory / "data").mkdir(parents=True, exist_ok=True)
    (directory / "main.py").write_text(CODE.format(mark=mark or uuid.uuid4().hex))
    (directory / "data" / "words.txt").write_text("shipped with the code")
    (directory / "plugin.toml").write_text(
        f'id = "{PLUGIN}"\nversion = "1.0.0"\ntype = "utility"\nentry = "main:P"\n{extra}'
    )
    return directory


@pytest.fixture
def make(
    ray_cluster: Any, tmp_path: Path, plugins: PluginFactory
) -> Callable[..., contextlib.AbstractAsyncContextManager[Host]]:
    def running(
        *, trusted: bool = False, **options: Any
    ) -> contextlib.AbstractAsyncContextManager[Host]:
        config = {
            "ray": {"address": ray_cluster.address, "plugins": ["*"]},
            "policy": {"inline": ["*"] if trusted else []},
        }
        options.setdefault("policy", IsolationPolicy.from_config(config))
        return ray_host(plugins.root, tmp_path / "state", init_timeout=60.0, **options)

    return running


def handle_of(host: Host) -> RayHandle:
    return ray_handle(host, PLUGIN)


# --------------------------------------------------------------------------- on the cluster


@pytest.mark.slow
async def test_a_remote_worker_runs_shipped_code_and_sees_none_of_the_hosts_directories(
    ray_cluster: Any, make: Any, plugins: PluginFactory, tmp_path: Path
) -> None:
    directory = write(plugins, extra=on_node("node-a") + 'storage = "1MiB"\n')
    async with make() as host:
        assert host.plugin(PLUGIN).state == "active", host.plugin(PLUGIN).reason
        handle = handle_of(host)
        assert ray_cluster.name_of(handle.node) == "node-a" and handle.mode == "agent"
        seen = await host.call(PLUGIN, "where")
        # its code is the node's copy (by digest), files beside it included
        assert seen["shipped_file"] == "shipped with the code"
        assert not seen["code"].startswith(str(plugins.root))
        assert seen["code"].startswith(ray_cluster.temp_dir)  # the node's, gone with it
        digest = host.manager.backends["ray"].data.packer.directory(directory).digest
        assert seen["code"].endswith(f"/code/{digest}")
        # the host's plugin and state directories are not in its view: only its node's
        for hosts_own in (plugins.root, directory, tmp_path / "state"):
            assert await host.call(PLUGIN, "look", path=str(hosts_own)) == "PermissionError"
        assert not seen["data_dir"].startswith(str(tmp_path))
        assert (await host.call(PLUGIN, "look", path=seen["code"])).startswith("listed ")
        # its store is the host's, on the host's disk, whatever node runs it
        await host.call(PLUGIN, "remember", key="k", text="at the host")
        assert await host.call(PLUGIN, "recall", key="k") == "at the host"
        assert await host.call(PLUGIN, "keys") == ["k"]  # from a thread of the worker
        assert handle.data_dir is not None
        assert Storage(handle.data_dir).get("k") == {"text": "at the host"}
        assert not (Path(seen["data_dir"]) / "storage.sqlite3").exists()
        # its storage quota holds at the host: a blob past it is refused, the store intact
        assert await host.call(PLUGIN, "put", name="big", size=2 << 20) == "full: storage_full"
        assert await host.call(PLUGIN, "put", name="small", size=1000) == "stored"
        assert await host.call(PLUGIN, "blob_size", name="small") == 1000
        assert await host.call(PLUGIN, "blob_size", name="big") == -1
        info = host.info(PLUGIN)
        assert info["location"]["storage"] == "host"
        # the host mounts the image a local worker would have: its quota is the kernel's
        assert info["usage"]["storage_quota"] == "enforced by the kernel (loop-mounted ext4 image)"


@pytest.mark.slow
async def test_a_plugin_moved_between_this_machine_and_ray_keeps_one_store(
    ray_cluster: Any, make: Any, plugins: PluginFactory, tmp_path: Path
) -> None:
    write(plugins, extra=on_node("node-b") + 'storage = "1MiB"\n')
    local = IsolationPolicy.from_config({})  # sandboxed in a worker here, its quota an image
    async with make(policy=local) as host:
        assert host.plugin(PLUGIN).isolation == "process"
        await host.call(PLUGIN, "remember", key="from", text="this machine")
    async with make() as host:
        assert host.plugin(PLUGIN).isolation == "ray"
        assert await host.call(PLUGIN, "recall", key="from") == "this machine"
        await host.call(PLUGIN, "remember", key="back", text="from node-b")
    async with make(policy=local) as host:
        assert await host.call(PLUGIN, "recall", key="back") == "from node-b"
        assert await host.call(PLUGIN, "keys") == ["back", "from"]


@pytest.mark.slow
async def test_storage_written_on_one_node_is_read_back_after_it_moves_to_another(
    ray_cluster: Any, make: Any, plugins: PluginFactory
) -> None:
    write(plugins, extra=on_node("worker"))  # node-a or node-b
    async with make(trusted=True, restart_backoff=0.1) as host:  # a bare actor
        first = handle_of(host)
        gone = ray_cluster.name_of(first.node)
        assert gone in ("node-a", "node-b") and first.mode == "actor"
        first_seen = await host.call(PLUGIN, "where")
        assert not first_seen["code"].startswith(str(plugins.root))
        await host.call(PLUGIN, "remember", key="greeting", text=f"written on {gone}")
        try:
            await asyncio.to_thread(ray_cluster.remove, gone)
            await until(
                lambda: host.plugin(PLUGIN).state == "active" and handle_of(host) is not first,
                "the restart on another node",
            )
            moved = handle_of(host)
            assert ray_cluster.name_of(moved.node) not in (gone, "?")
            assert await host.call(PLUGIN, "recall", key="greeting") == f"written on {gone}"
            seen = await host.call(PLUGIN, "where")
            # the new node took its own copy of the code, and has its own scratch directory
            assert seen["data_dir"] != first_seen["data_dir"]
            assert seen["code"] != first_seen["code"]
            assert seen["code"].rsplit("/", 1)[1] == first_seen["code"].rsplit("/", 1)[1]
        finally:
            ray_cluster.add(gone)  # the session's cluster, restored (main thread only)


@pytest.mark.slow
async def test_an_archive_that_does_not_match_its_digest_is_refused_on_the_node(
    ray_cluster: Any, make: Any, plugins: PluginFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = write(plugins, extra=on_node("node-b"))  # new code: no node has its digest yet
    honest = Packer.directory

    def tampered(self: Packer, root: Path, kind: str = "code") -> Any:
        shipment = honest(self, root, kind)
        if Path(root) == directory:  # changed on the way, after the host named its digest
            return dataclasses.replace(shipment, data=shipment.data.replace(b"words", b"wordz"))
        return shipment

    monkeypatch.setattr(Packer, "directory", tampered)
    async with make() as host:
        record = host.plugin(PLUGIN)
        assert record.state == "failed"
        assert "does not match its digest" in (record.reason or "")
        assert "was not unpacked" in (record.reason or "")
        # the host ships it anew (the refused archive is dropped): it starts
        monkeypatch.setattr(Packer, "directory", honest)
        await host.load(PLUGIN)
        assert host.plugin(PLUGIN).state == "active"
        assert (await host.call(PLUGIN, "where"))["shipped_file"] == "shipped with the code"


ENV_CODE = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def where(self) -> dict[str, str]:
        import libdemo

        return {"version": libdemo.VERSION, "file": libdemo.where(), "code": __file__}
"""


@pytest.mark.slow
async def test_a_plugins_own_environment_is_shipped_to_its_node(
    ray_cluster: Any, make: Any, plugins: PluginFactory, tmp_path: Path
) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    libdemo(wheels, "2.0")
    directory = plugins.root / "env"
    directory.mkdir(parents=True)
    (directory / "main.py").write_text(ENV_CODE)
    (directory / "plugin.toml").write_text(
        f'id = "{PLUGIN}"\nversion = "1.0.0"\ntype = "utility"\nentry = "main:P"\n'
        f'python-dependencies = ["libdemo==2.*"]\n{on_node("node-a")}'
    )
    index = IndexSettings(find_links=(str(wheels),), offline=True)
    async with make(python_index=index) as host:
        assert host.plugin(PLUGIN).state == "active", host.plugin(PLUGIN).reason
        seen = await host.call(PLUGIN, "where")
        assert seen["version"] == "2.0"
        # imported from the node's copy of the environment, not the host's envs/
        assert "/env/" in seen["file"] and not seen["file"].startswith(str(tmp_path))
        assert not seen["code"].startswith(str(plugins.root))


@pytest.mark.slow
async def test_uninstall_stops_the_zygote_of_the_removed_environment_on_its_node(
    ray_cluster: Any, make: Any, tmp_path: Path
) -> None:
    """A node's agent forks a plugin with its own environment from that environment's
    zygote on the node: once ``uninstall`` removed the environment, that process ran on
    until the host stopped. Now it ends with its environment; the neighbour's stays and
    serves."""
    import psutil

    def running(pid: int) -> bool:
        with contextlib.suppress(psutil.Error):
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        return False

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    libdemo(wheels, "1.0")
    libdemo(wheels, "2.0")
    sources = PluginFactory(tmp_path / "sources")  # installed: the store's versions only
    for plugin, wants in (("acme.gone", "1.*"), ("acme.stays", "2.*")):
        sources(plugin, ENV_CODE, extra=f'python-dependencies = ["libdemo=={wants}"]\n'
                f"{on_node('node-a')}")  # fmt: skip
    index = IndexSettings(find_links=(str(wheels),), offline=True)
    async with make(python_index=index) as host:
        host.install(sources.root / "acme.gone-1.0.0")
        host.install(sources.root / "acme.stays-1.0.0")
    async with make(python_index=index) as host:
        assert (await host.call("acme.gone", "where"))["version"] == "1.0"
        assert (await host.call("acme.stays", "where"))["version"] == "2.0"
        agent = ray_handle(host, "acme.stays")._agent
        assert ray_handle(host, "acme.gone")._agent is agent  # one node, one agent
        zygotes = {Path(k).relative_to(tmp_path / "state" / "envs").parts[0]: pid
                   for k, pid in (await agent.environments.remote()).items()}  # fmt: skip
        assert len(zygotes) == 2 and all(pid and running(pid) for pid in zygotes.values())
        done = await host.uninstall("acme.gone")
        [removed] = [Path(p).name for p in done["environments"]]
        gone, kept = zygotes.pop(removed), zygotes.popitem()[1]
        assert gone is not None and kept is not None
        await until(lambda: not running(gone), "the removed environment's zygote to end", 20)
        assert running(kept)
        assert (await host.call("acme.stays", "where"))["version"] == "2.0"


# --------------------------------------------------------------------------- without Ray


def test_the_archive_is_the_same_for_the_same_tree_and_leaves_caches_out(tmp_path: Path) -> None:
    root = tmp_path / "p"
    (root / "pkg" / "__pycache__").mkdir(parents=True)
    (root / "pkg" / "mod.py").write_text("X = 1\n")
    (root / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0" * 10)
    (root / "plugin.toml").write_text("id = 'x'\n")
    first = pack_directory(root)
    (root / "pkg" / "mod.py").touch()  # a new time, the same content
    assert pack_directory(root) == first
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        assert sorted(tar.getnames()) == ["pkg", "pkg/mod.py", "plugin.toml"]
    (root / "pkg" / "mod.py").write_text("X = 2\n")
    packer = Packer()
    changed = packer.directory(root)
    assert changed.digest != hashlib.sha256(first).hexdigest()
    assert packer.directory(root) is changed  # packed once while the tree is the same


def test_a_node_unpacks_only_what_matches_its_digest_and_stays_inside(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "main.py").write_text("X = 1\n")
    data = pack_directory(root)
    digest = hashlib.sha256(data).hexdigest()
    cache = NodeCache(tmp_path / "node")
    with pytest.raises(ShipmentRefused, match="does not match its digest"):
        cache.unpack("code", digest, data + b"\0", plugin="acme.x")
    assert not cache.has("code", digest) and not (tmp_path / "node").exists()
    landed = cache.unpack("code", digest, data)
    assert (landed / "main.py").read_text() == "X = 1\n"
    with pytest.raises(ShipmentRefused, match="not a shipment"):
        cache.path("code", "../../etc")
    # an archive that matches its digest but reaches out of its directory is refused too
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("../escaped.py")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    evil = out.getvalue()
    with pytest.raises(ShipmentRefused, match="could not be unpacked"):
        cache.unpack("code", hashlib.sha256(evil).hexdigest(), evil)
    assert not (tmp_path / "node" / "escaped.py").exists()


async def test_a_plugin_not_on_ray_cannot_reach_a_store_through_the_host(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.local")
    async with Host(plugins.root, state_dir=tmp_path / "state", entry_points=False) as host:
        with pytest.raises(PermissionDenied, match=r"context\.storage through the host"):
            await host.manager.broker.host_call(
                "acme.local", "plugbay.storage", "get", {"key": "k"}
            )
        assert host.manager.broker.refused["acme.local"] == 1


async def test_a_blocking_round_trip_hands_on_every_other_frame_in_order() -> None:
    """What a store kept by the host rests on (``frames.Channel.round_trip``): the loop's
    own thread sends a request and blocks for its answer, nested in the handling of a
    call as a ``def`` command is, or from a coroutine; the frames that arrive before the
    answer reach the worker afterwards, in the order they came, none lost or doubled."""
    ours, peer = socket.socketpair()
    got: list[Any] = []
    answers: list[Any] = []

    def ask(request: int) -> Any:
        call = frames.HostCall(request, "plugbay.storage", "get", {"key": "k"})
        return channel.round_trip(
            ours.fileno(),
            call,
            frames.HostReply,
            lambda m: isinstance(m, frames.HostReply) and m.id == request,
            10.0,
        )

    def on_message(message: Any) -> None:
        got.append(message)
        if isinstance(message, frames.Call) and message.command == "store":
            answers.append(ask(7))  # nested in data_received, as a def command's call

    channel = frames.Channel(on_message, lambda reason, error: None)
    await asyncio.get_running_loop().create_connection(lambda: channel, sock=ours)

    def read_frame() -> Any:
        (size,) = struct.unpack(">I", peer.recv(4, socket.MSG_WAITALL))
        return frames.decode(peer.recv(size, socket.MSG_WAITALL))

    def answer(request: int, before: list[Any], after: list[Any]) -> None:
        asked = read_frame()
        assert isinstance(asked, frames.HostCall) and asked.id == request
        reply = frames.encode(frames.HostReply(request, value=b"v%d" % request))
        peer.sendall(b"".join(frames.encode(m) for m in before) + reply[:3])
        peer.sendall(reply[3:] + b"".join(frames.encode(m) for m in after))

    early = [frames.Call(2, "early", {}), frames.HostReply(6, value="not ours")]
    late = [frames.Call(3, "late", {})]
    peer.sendall(frames.encode(frames.Call(1, "store", {})))
    thread = threading.Thread(target=answer, args=(7, early, late))
    thread.start()
    await until(lambda: len(got) == 4, "the frames around the first answer", 10)
    thread.join()
    assert answers[0].value == b"v7"
    assert [(type(m).__name__, m.id) for m in got] == [
        ("Call", 1), ("Call", 2), ("HostReply", 6), ("Call", 3),
    ]  # fmt: skip
    # from a coroutine on the loop (an async command's call): the same
    thread = threading.Thread(target=answer, args=(8, [frames.Call(4, "early", {})], []))
    thread.start()
    reply = ask(8)
    thread.join()
    assert reply.value == b"v8"
    await until(lambda: len(got) == 5, "the frame that came before the second answer", 10)
    assert (type(got[4]).__name__, got[4].id) == ("Call", 4)
    peer.close()
    channel.close()
