"""A package a Ray plugin's code imports and its node lacks, said as the node's (``isolation.ray``).

A worker on a node imports from the node's Python, not the host's: "install that package
in the host's environment" (what a local worker's loader says) sends the operator to the
wrong machine, where it may be installed already. The host says where it was missing and
the two ways to put it there. Only on a failure's path (``HostPaths._failed``).
"""

from __future__ import annotations

from typing import Any

from plugbay.isolation.loading import MISSING_PACKAGE_HINT

__all__ = ["missing_on_node"]


def missing_on_node(error: dict[str, Any], node: str | None) -> None:
    """The hint of an import that found no such package, in place, naming its Ray node."""
    if error.get("hint") != MISSING_PACKAGE_HINT:
        return
    where = f"Ray node {node[:12]}" if node else "its Ray node"
    error["hint"] = (
        f"the package is missing on {where}, where this plugin's code is imported (not on "
        "this host): install it in the Python of every Ray node that may run the plugin, or "
        "name it in the manifest's python-dependencies (the host builds that environment and "
        "ships it to the node); import your own modules relatively ('from . import x')"
    )
