"""A Ray plugin's resources that no node of the cluster has, refused at once (``isolation.ray``).

Ray keeps a placement it cannot satisfy pending, so a manifest asking for
``num-cpus = 64`` on a cluster of 2-CPU nodes would only fail after ``[ray]
start-timeout``. The host reads the nodes' totals (the table ``plugbay nodes``
shows) and refuses a request above every node's total before placing anything,
naming the resource, the amount, the largest node's total and the manifest's line.
What is free now is not compared: a busy node's resources free up. A node the
host once saw counts even after it is gone (a lost node may come back: a plugin
pinned to it waits for it, ``docs/scale-out.md``). Only a start that asks for
resources reads the table (the host's cached answer, at most once a second).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from plugbay.api.errors import PluginLoadError
from plugbay.isolation.policy import Placement
from plugbay.isolation.ray_nodes import ClusterNodes, NodeRow
from plugbay.model._manifest_lines import key_at
from plugbay.model.manifest import PluginManifest
from plugbay.model.sizes import size_text

__all__ = ["NodeTotals"]

#: the placement's key → (Ray's resource, the manifest's key under [resources])
_NAMED: Final = {"num_cpus": ("CPU", "num-cpus"), "num_gpus": ("GPU", "num-gpus"),
                 "memory": ("memory", "memory")}  # fmt: skip


class NodeTotals:
    """The largest total of each resource over every node the host has seen."""

    __slots__ = ("_largest",)

    def __init__(self) -> None:
        self._largest: dict[str, float] = {}

    async def check(
        self, table: ClusterNodes, ray: Any, manifest: PluginManifest, placement: Placement
    ) -> None:
        """Raise the refusal of a plugin no node could ever take; the node table is read
        (``table``: the host's cached one) only when it asks for resources."""
        if not _asked(placement):
            return
        self.saw((await table.read(ray))[0])
        refused = self.refusal(manifest, placement)
        if refused is not None:
            raise refused

    def saw(self, rows: Iterable[NodeRow]) -> None:
        for row in rows:
            for name, total in row.resources.items():
                self._largest[name] = max(self._largest.get(name, 0.0), total)

    def refusal(self, manifest: PluginManifest, placement: Placement) -> PluginLoadError | None:
        """Why no node could ever take the plugin, or None (also when no node was seen)."""
        if not self._largest:
            return None
        for resource, key, amount in _asked(placement):
            largest = self._largest.get(resource, 0.0)
            if amount <= largest:
                continue
            said = size_text if resource == "memory" else _num
            name = f'custom "{resource}"' if key[-1] == "custom" else key[-1]
            has = f"the largest has {said(largest)}" if largest else "none has it"
            return PluginLoadError(
                f"it asks for [resources] {name} = {said(amount)}, more than any node of "
                f"the Ray cluster has ({has})",
                plugin=manifest.id,
                where=key_at(manifest, key),
                hint="ask for at most what one node has, or add a node that has it; "
                "'plugbay nodes' lists what each node has",
            )
        return None


def _asked(placement: Placement) -> list[tuple[str, tuple[str, ...], float]]:
    """(Ray's resource, the manifest's key, the amount) of each resource it asks for."""
    asked = placement.ray
    wants: list[tuple[str, tuple[str, ...], float]] = [
        (resource, ("resources", key), float(asked[field]))
        for field, (resource, key) in _NAMED.items()
        if asked.get(field)
    ]
    custom = asked.get("resources") or {}
    wants += [(str(n), ("resources", "custom"), float(v)) for n, v in custom.items() if v]
    return wants


def _num(value: float) -> str:
    return f"{value:g}"
