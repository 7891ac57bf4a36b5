"""One Ray cluster for the whole test session (``ray.cluster_utils.Cluster``, this machine).

A head and two worker nodes of one CPU each, each with a custom resource and a label
(``plugbay-node``) naming it
(``node-head``, ``node-a``, ``node-b``), so a test can place a plugin on a chosen
node. Dashboard off, usage stats off, a short temp dir (Unix socket paths are limited
to 107 bytes), a small object store. Ray's processes are ended only by
``cluster.shutdown()`` (never ``ray stop``, which ends every Ray process on the machine).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plugbay.isolation.ray import RayHandle
    from plugbay.runtime.host import Host

OBJECT_STORE = 80 * 2**20


class RayCluster:
    """The session's cluster; ``add``/``remove`` nodes as a test needs (then restore)."""

    def __init__(self) -> None:
        from plugbay.isolation.ray import keep_fault_handlers

        with keep_fault_handlers():  # the Wasm backend's traps stay its own
            self._start()

    def _start(self) -> None:
        os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
        from ray.cluster_utils import Cluster

        self.temp_dir = tempfile.mkdtemp(prefix="pbt-", dir="/tmp")
        # Ray keeps "the current cluster" in a file under its temp root: ours, not /tmp/ray
        self._tmpdir_before = os.environ.get("RAY_TMPDIR")
        os.environ["RAY_TMPDIR"] = self.temp_dir
        os.makedirs(os.path.join(self.temp_dir, "ray"))
        self.cluster = Cluster(
            initialize_head=True,
            connect=False,
            head_node_args={
                "num_cpus": 1,
                "include_dashboard": False,
                "object_store_memory": OBJECT_STORE,
                "temp_dir": os.path.join(self.temp_dir, "ray"),
                "resources": {"node-head": 100},
            },
        )
        self.nodes: dict[str, Any] = {"node-head": self.cluster.head_node}
        for name in ("node-a", "node-b"):
            self.add(name)

    @property
    def address(self) -> str:
        return str(self.cluster.address)

    def add(self, name: str) -> Any:
        node = self.cluster.add_node(
            num_cpus=1,
            object_store_memory=OBJECT_STORE,
            resources={name: 100, "worker": 100},
            labels={"plugbay-node": name},
        )
        self.nodes[name] = node
        self.cluster.wait_for_nodes()
        return node

    def remove(self, name: str) -> None:
        self.cluster.remove_node(self.nodes.pop(name))

    def name_of(self, node_id: str) -> str:
        for name, node in self.nodes.items():
            if node.node_id == node_id:
                return name
        return "?"

    def connect(self) -> None:
        """Make this process the cluster's driver (a host here is Ray's client)."""
        import ray

        from plugbay.isolation.ray import keep_fault_handlers

        if not ray.is_initialized():
            with keep_fault_handlers():  # the Wasm backend's traps stay its own
                ray.init(address=self.address, configure_logging=False, log_to_driver=False)

    def disconnect(self) -> None:
        """Leave the cluster (its nodes keep running): Ray's threads end in this process,
        so the tests that fork sandboxed children from it run as without Ray."""
        import ray

        from plugbay.isolation.ray import keep_fault_handlers

        with keep_fault_handlers():  # leaving Ray resets them to the default (death)
            ray.shutdown()

    def shutdown(self) -> None:
        self.disconnect()
        self.cluster.shutdown()
        if self._tmpdir_before is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = self._tmpdir_before
        shutil.rmtree(self.temp_dir, ignore_errors=True)


# --------------------------------------------------------------------------- hosts on it


def on_node(name: str) -> str:
    """A manifest's ``[resources]`` table that places the plugin on the node ``name``."""
    return f'[resources]\ncustom = {{ "{name}" = 1 }}\n'


@contextlib.asynccontextmanager
async def ray_host(
    root: Path, state_dir: Path, *, init_timeout: float = 30.0, **options: Any
) -> AsyncIterator[Host]:
    """A host for the tests on the cluster: no entry points, the monitor's tick off,
    a plugin's start bounded by ``init_timeout`` (a node may be slow to take it)."""
    from plugbay.runtime.host import Host

    host = Host(
        root,
        state_dir=state_dir,
        entry_points=False,
        init_timeout=init_timeout,
        cleanup_timeout=2.0,
        monitor={"interval": 3600},
        **options,
    )
    async with host:
        yield host


def ray_handle(host: Host, plugin: str) -> RayHandle:
    """The Ray handle serving ``plugin`` (a test fails if it runs anywhere else)."""
    from plugbay.isolation.ray import RayHandle

    handle = host.plugin(plugin).handle
    assert isinstance(handle, RayHandle), f"{plugin} is not on Ray: {handle!r}"
    return handle
