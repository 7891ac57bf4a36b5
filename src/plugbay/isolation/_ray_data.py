"""What a plugin on Ray takes to its node, and what the host keeps for it.

The Ray backend's data side (``isolation.ray`` places and runs the plugin):

* **its code and environment, shipped** — packed by content (``isolation.shipping``),
  put in Ray's object store once per digest (the newest archives are kept there for
  a node that has not taken them yet), handed to the node with the host paths a
  sandboxed worker's view names, which the node replaces with its own;
* **its store, kept by the host** — ``context.storage`` of a plugin on Ray is the
  host's file in its data directory (``isolation.remote_storage``); a sandboxed
  plugin with a storage quota has it in the same kernel-enforced image a local
  worker mounts, shared with the process backend, so the plugin has one store
  wherever it runs.
"""

from __future__ import annotations

import asyncio
import collections
import importlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from plugbay.api.errors import PluginLoadError
from plugbay.isolation._process_parts import size_text
from plugbay.isolation.base import EnvironmentPaths
from plugbay.isolation.quota import QuotaMounts, QuotaStatus, QuotaUnavailable
from plugbay.isolation.remote_storage import KeptStores
from plugbay.isolation.shipping import Packer, Shipment, ShipmentRefused

if TYPE_CHECKING:
    from plugbay.isolation.policy import Placement
    from plugbay.isolation.ray import RayHandle
    from plugbay.model.manifest import PluginManifest

__all__ = ["RayData"]

log = logging.getLogger("plugbay.isolation.ray")

#: shipped archives the host keeps in Ray's object store (a new node may still ask)
KEEP_SHIPPED: Final = 64


class RayData:
    """One per Ray backend: shipments out, stores kept here (see the module docstring)."""

    def __init__(self, quotas: QuotaMounts | None) -> None:
        #: plugins' code and environments, packed by content
        self.packer = Packer()
        #: the stores of plugins on Ray, kept here
        self.kept_stores = KeptStores()
        #: the host's storage images (the process backend's: one mount per data directory)
        self._quotas = quotas
        #: digest → its archive in Ray's object store, the newest last
        self._shipped: collections.OrderedDict[str, Any] = collections.OrderedDict()
        self._unmounts: set[asyncio.Task[None]] = set()

    # -- shipping ---------------------------------------------------------------------

    async def ship(
        self, manifest: PluginManifest, data_dir: Path | None, environment: EnvironmentPaths | None
    ) -> dict[str, Any]:
        """What the node needs to land the plugin without the host's disks: its code (and
        environment) as archives in Ray's object store, by digest, and the host paths a
        sandboxed worker's view names, which the node replaces with its own."""
        root = manifest.root or (manifest.path.parent if manifest.path else None)
        if root is None or manifest.path is None:
            raise PluginLoadError(
                "a plugin without files on disk cannot be shipped to a Ray node",
                plugin=manifest.id,
                hint="install it as a directory or a package",
            )
        shipped, archives = await asyncio.to_thread(
            self._pack, manifest.id, manifest.path, root, data_dir, environment
        )
        for kind, archive in archives.items():
            shipped[kind]["ref"] = [await self._put(archive.digest, archive.data)]
        return shipped

    def _pack(
        self,
        plugin: str,
        manifest_path: Path,
        root: Path,
        data_dir: Path | None,
        environment: EnvironmentPaths | None,
    ) -> tuple[dict[str, Any], dict[str, Shipment]]:
        code = self.packer.directory(root)
        archives = {"code": code}
        shipped: dict[str, Any] = {
            "plugin": plugin,
            "code": {"digest": code.digest, "manifest": manifest_path.relative_to(root).as_posix()},
            "host_code": os.path.realpath(root),
            "host_data": os.path.realpath(data_dir) if data_dir is not None else "",
        }
        if environment is not None:
            env = archives["env"] = self.packer.directory(Path(environment.site_packages), "env")
            runtime = sorted(
                name.removesuffix(".py")
                for name in os.listdir(environment.runtime)
                if not name.endswith((".dist-info", ".egg-info"))
            )
            shipped["env"] = {"digest": env.digest, "runtime": runtime}
        return shipped, archives

    async def _put(self, digest: str, data: bytes) -> Any:
        """The archive's reference in Ray's object store (put once per digest)."""
        ref = self._shipped.get(digest)
        if ref is None:
            ray = importlib.import_module("ray")
            ref = await asyncio.to_thread(ray.put, data)
            self._shipped[digest] = ref
            while len(self._shipped) > KEEP_SHIPPED:
                self._shipped.popitem(last=False)
        self._shipped.move_to_end(digest)
        return ref

    def refused(self, refusal: ShipmentRefused) -> None:
        """A node refused an archive: the next start puts it in the object store anew."""
        for key in ("expected", "digest"):
            self._shipped.pop(str(refusal.details.get(key)), None)

    # -- stores kept here -------------------------------------------------------------

    async def keep_store(self, handle: RayHandle, placement: Placement, data_dir: Path) -> None:
        """The plugin's store, kept by the host in its data directory: for a sandboxed
        plugin with a storage quota, the kernel-enforced image a local worker would have
        (the same mount, so its data is the same here and there), else bounded by the
        store itself."""
        plugin = handle.manifest.id
        quota = placement.limits.get("storage")
        if placement.sandboxed and quota is not None and self._quotas is not None:
            try:
                await asyncio.to_thread(self._quotas.attach, data_dir, int(quota), plugin)
            except (QuotaUnavailable, OSError) as exc:
                why = exc.message if isinstance(exc, QuotaUnavailable) else f"{exc}"
                log.warning("plugin '%s': storage quota not enforced by the kernel: %s",
                            plugin, why)  # fmt: skip
            else:
                handle.storage = QuotaStatus(
                    True, f"{size_text(quota)} image mounted at {data_dir} (kept by the host)"
                )
        self.kept_stores.attach(plugin, data_dir, None if quota is None else int(quota))
        handle.storage_at = "host"
        handle.kept_store = True

    def release_store(self, handle: RayHandle) -> None:
        """One instance less holds the store (the last closes it, then its image goes)."""
        if not handle.kept_store:
            return
        handle.kept_store = False
        self.kept_stores.detach(handle.manifest.id)  # closed before its unmount
        if handle.storage.enforced and handle.data_dir is not None and self._quotas is not None:
            handle.storage = QuotaStatus(False, "released")
            quotas, data_dir = self._quotas, handle.data_dir
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                quotas.detach(data_dir)
                return
            task = loop.create_task(asyncio.to_thread(quotas.detach, data_dir))
            self._unmounts.add(task)
            task.add_done_callback(self._unmounts.discard)

    async def released(self) -> None:
        """The images of stores kept here, released (bounded) before the host goes."""
        if self._unmounts:
            await asyncio.wait(list(self._unmounts), timeout=10)

    def close(self) -> None:
        self.kept_stores.close()
        self._shipped.clear()
