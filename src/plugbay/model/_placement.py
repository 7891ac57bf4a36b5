"""Where a manifest asks to run (``[placement]``) and what a cluster node must have.

The host's policy decides (``isolation.ray_settings``); the manifest only asks.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

__all__ = ["NonNegative", "PlacementRequest"]

#: a cluster resource a manifest asks for (``num-cpus``, ``custom.NAME``): 0 is "none"
NonNegative = Annotated[float, msgspec.Meta(ge=0)]


class PlacementRequest(msgspec.Struct, forbid_unknown_fields=True, rename="kebab", frozen=True):
    """``[placement]``: where a plugin asks to run; the host's policy decides."""

    #: "auto": where the host's policy puts it; "local": this machine; "ray": a cluster node
    backend: Literal["auto", "local", "ray"] = "auto"
    #: on Ray: only a node with these labels takes it (Ray's label selector)
    node_labels: dict[str, str] = {}
