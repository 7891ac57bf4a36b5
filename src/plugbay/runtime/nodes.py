"""Where plugins run: the cluster's nodes and the plugins placed on each.

``Host.nodes`` answers with it; the API (``GET /api/v1/nodes``), the dashboard's
nodes pane and ``plugbay nodes`` render it. Only Ray places plugins on other
machines today: on a host without ``[ray]`` the view is empty; with ``[ray]`` but no
plugin placed yet the host has not joined the cluster, and says so (the view never
connects: ``address = "local"`` would start a cluster just to be looked at).

Each node is a row of the cluster's own table (alive or dead, as its head says),
with the plugins plugbay placed there: how each runs (``actor``: a bare Ray actor
the policy trusts; ``agent``: a sandboxed worker the node's plugbay agent forked)
and whether it serves now. A Ray plugin that is on no node (failed, waiting for
its restart) is listed apart, with why. While the cluster's head is unreachable
the last table known is shown with ``reachable: false`` and the reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plugbay.isolation.ray import RayBackend, RayHandle, _ray

if TYPE_CHECKING:
    from plugbay.runtime.manager import PluginManager
    from plugbay.runtime.records import PluginRecord

__all__ = ["cluster_nodes", "mode_text"]


def mode_text(mode: str, sandboxed: bool) -> str:
    """How a plugin runs on its node, in words (the dashboard's and the CLI's)."""
    if mode == "actor":
        return "bare actor (no sandbox)"
    return "sandboxed worker of the node's agent" if sandboxed else "worker of the node's agent"


async def cluster_nodes(manager: PluginManager) -> dict[str, Any]:
    """``{"cluster": …, "nodes": […], "unplaced": […]}`` (see the module docstring)."""
    settings = manager.settings.policy.ray
    backend = manager.backends.get("ray")
    if settings is None or not isinstance(backend, RayBackend):
        return {"cluster": None, "nodes": [], "unplaced": []}
    cluster, rows = await _table(backend, settings.address)
    by_node: dict[str, list[dict[str, Any]]] = {}
    unplaced = []
    for rec in manager.list_plugins():
        if rec.isolation != "ray":
            continue
        handle = rec.handle
        if isinstance(handle, RayHandle) and not handle.gone:
            by_node.setdefault(handle.node, []).append(_placed(rec, handle))
        else:
            unplaced.append(
                {"plugin": rec.id, "version": rec.version, "state": str(rec.state),
                 "reason": rec.reason}
            )  # fmt: skip
    known = {row["node"] for row in rows}
    for node in sorted(set(by_node) - known):  # on a node the table does not (yet) list
        rows.append({"node": node, "address": None, "alive": None, "resources": {}, "labels": {}})
    for row in rows:
        row["plugins"] = sorted(by_node.get(row["node"], []), key=lambda p: str(p["plugin"]))
    rows.sort(key=lambda r: (r["alive"] is not True, str(r["address"] or ""), r["node"]))
    return {"cluster": cluster, "nodes": rows, "unplaced": unplaced}


async def _table(backend: RayBackend, address: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The cluster's state and its node table (not asked before the host joined it, nor
    once the head is known to be gone)."""
    cluster: dict[str, Any] = {
        "backend": "ray",
        "address": address,
        "connected": backend.connected,
        "reachable": None,
        "error": None,
        "head_lost_since": None,
    }
    if not backend.connected:
        return cluster, []
    lost = backend.head_lost
    error: str | None
    if lost is not None:  # the host's own watch knows: the head is not asked
        found, error = backend.node_table.last(lost[0])
        cluster["head_lost_since"] = lost[1]
    else:
        found, error = await backend.node_table.read(_ray())
    cluster["reachable"] = error is None
    cluster["error"] = error
    rows = [row.to_dict() for row in found]
    if error is not None:
        for row in rows:
            row["alive"] = None  # as last known: nobody can say now
    return cluster, rows


def _placed(rec: PluginRecord, handle: RayHandle) -> dict[str, Any]:
    where = handle.location()
    serving = str(rec.state) == "active" and handle.alive() is None
    return {
        "plugin": rec.id,
        "version": rec.version,
        "state": str(rec.state),
        "mode": where["mode"],
        "sandboxed": bool(where["sandboxed"]),
        "how": mode_text(where["mode"], bool(where["sandboxed"])),
        "pid": where["pid"],
        "serving": serving,
        "since": rec.started_at,
    }
