"""Where a manifest asks to run (``[placement]``) and what a cluster node must have.

The host's policy decides (``isolation.ray_settings``); the manifest only asks.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = ["PlacementRequest", "negative_cluster_resource"]


class PlacementRequest(msgspec.Struct, forbid_unknown_fields=True, rename="kebab", frozen=True):
    """``[placement]``: where a plugin asks to run; the host's policy decides."""

    #: "auto": where the host's policy puts it; "local": this machine; "ray": a cluster node
    backend: Literal["auto", "local", "ray"] = "auto"
    #: on Ray: only a node with these labels takes it (Ray's label selector)
    node_labels: dict[str, str] = {}


def negative_cluster_resource(resources: Any) -> tuple[str, float] | None:
    """The first of ``num-cpus``, ``num-gpus`` and ``custom.*`` asked below 0 (0 is "none")."""
    asked = {"num-cpus": resources.num_cpus, "num-gpus": resources.num_gpus}
    asked |= {f"custom.{name}": amount for name, amount in resources.custom.items()}
    for key, amount in asked.items():
        if amount is not None and amount < 0:
            return key, amount
    return None
