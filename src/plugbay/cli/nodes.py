"""``plugbay nodes``: where plugins run, the Ray cluster's nodes and the plugins on each
(``runtime.nodes``; the API's ``GET /api/v1/nodes`` and the dashboard's nodes pane)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from plugbay.api.errors import PlugbayError
from plugbay.cli._console import JsonOpt, fail, out
from plugbay.cli._counted import counted
from plugbay.cli._host import in_process
from plugbay.cli._options import (
    ConfigOpt,
    PluginsOpt,
    StateOpt,
    add_command,
    host_kwargs,
    print_json,
)

if TYPE_CHECKING:
    import typer

    from plugbay.runtime.host import Host

__all__ = ["nodes_table", "register"]

PANEL = "monitoring"


def nodes(
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Where plugins run: each node of the Ray cluster, alive or dead, and the plugins on it.

    For each plugin placed on a node: how it runs (a bare actor, or a sandboxed worker of
    the node's agent) and whether it serves; the Ray plugins on no node, with why. Beside
    a running host (`plugbay run` on the same --state), that host's view; otherwise a host
    is started here, which joins the cluster to place its plugins.
    """
    from plugbay.web.client import connect

    try:
        client = connect(state)
        if client is not None:
            with client:
                view = client.nodes()
        else:
            view = in_process(host_kwargs(plugins, state, config), _view, as_json=as_json)
    except PlugbayError as exc:
        fail(exc, as_json=as_json)
    if as_json:
        print_json(view)
        return
    out.print(nodes_table(view))


async def _view(host: Host) -> dict[str, Any]:
    from plugbay.runtime.nodes import cluster_nodes

    return await cluster_nodes(host.manager)


def nodes_table(view: dict[str, Any]) -> Table | str:
    """One row per node: its state, address, resources and the plugins placed there."""
    cluster = view.get("cluster")
    if cluster is None:
        return "this host places no plugin on a cluster (no \\[ray] in its config)"
    table = Table(title=_title(cluster, view["nodes"]), title_justify="left")
    for column in ("node", "address", "state", "resources", "plugins"):
        table.add_column(column)
    for node in view["nodes"]:
        state = {True: "[green]alive[/]", False: "[red]dead[/]"}.get(node["alive"], "unknown")
        resources = ", ".join(_resource(k, v) for k, v in sorted(node["resources"].items()))
        placed = "\n".join(_placed_text(p) for p in node["plugins"])
        table.add_row(node["node"][:12], node["address"] or "–", state, resources, placed or "–")
    for plugin in view["unplaced"]:
        table.add_row("–", "–", "–", "", f"{escape(plugin['plugin'])}: on no node "
                      f"({escape(plugin['state'])}) {escape(plugin['reason'] or '')}")  # fmt: skip
    return table


def _resource(name: str, value: float) -> str:
    """One of a node's resources as Ray counts it; its memory and object store in bytes."""
    if name not in ("memory", "object_store_memory"):
        return f"{escape(name)} {value:g}"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= scale:
            return f"{name} {value / scale:.1f} {unit}"
    return f"{name} {value:g} B"


def _title(cluster: dict[str, Any], nodes: list[dict[str, Any]]) -> str:
    where = f"Ray at {cluster['address']}"
    if not cluster["connected"]:
        return f"{where}: not joined (no plugin placed there yet)"
    if cluster["reachable"] is False:
        return f"[red]{where}: {escape(str(cluster['error']))}[/]"
    return f"{where}: {sum(1 for n in nodes if n['alive'])} of {counted(len(nodes), 'node')} alive"


def _placed_text(plugin: dict[str, Any]) -> str:
    text = f"{escape(plugin['plugin'])} {escape(plugin['version'] or '')} ({escape(plugin['how'])})"
    return text + ("" if plugin["serving"] else " [red]not serving[/]")


def register(app: typer.Typer) -> None:
    """Attach ``plugbay nodes`` to ``app``."""
    add_command(app, nodes, panel=PANEL)
