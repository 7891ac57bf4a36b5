"""Commands that grant and take back what a plugin may do: grant, revoke."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from plugbay.api.errors import PlugbayError
from plugbay.cli._console import err, fail, out
from plugbay.cli._options import PluginIdArg, PluginsOpt, StateOpt, add_command, store_op

__all__ = ["PANEL", "register"]

PANEL = "permissions"


def _check_permission(permission: str) -> None:
    from plugbay.isolation.policy import is_permission, permission_forms

    if not is_permission(permission):
        fail(
            PlugbayError(
                f"'{permission}' is not a permission",
                hint="write one of: " + ", ".join(permission_forms()),
            ),
            code=2,
        )


def grant(
    plugin_id: PluginIdArg,
    permission: Annotated[
        str, typer.Argument(help="e.g. network:127.0.0.1:8080, env:HOME, subprocess")
    ],
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
) -> None:
    """Grant a plugin a permission its manifest asks for.

    Deny by default: only what is both asked for and granted is allowed.
    """
    _check_permission(permission)
    if _granted_live(state, plugin_id, permission, "grant"):
        return
    from plugbay.model.discover import discover

    found = discover(plugins or [Path("plugins")], entry_points=True)
    asked = {m.id: m.permissions.asked() for m in found.manifests}
    if plugin_id not in asked:
        fail(
            PlugbayError(
                f"no plugin '{plugin_id}' is found",
                plugin=plugin_id,
                hint="'plugbay list' shows the plugins found",
            )
        )
    store_op(state, lambda s: s.grant(plugin_id, permission))
    store_op(state, lambda s: s.add_event(plugin_id, "grant", reason=permission))
    out.print(f"{plugin_id}: granted {escape(permission)}")
    out.print("no host is running on this state directory: it applies when one starts")
    if permission not in asked[plugin_id]:
        err.print(
            f"[yellow]note:[/] {plugin_id}'s manifest does not ask for {escape(permission)}, so it "
            "has no effect until it does (asked: "
            + escape(", ".join(asked[plugin_id]) or "nothing")
            + ")"
        )


def revoke(
    plugin_id: PluginIdArg,
    permission: Annotated[str, typer.Argument(help="A permission granted before")],
    state: StateOpt = Path(".plugbay"),
) -> None:
    """Take back a permission."""
    _check_permission(permission)
    if _granted_live(state, plugin_id, permission, "revoke"):
        return
    if not store_op(state, lambda s: s.revoke(plugin_id, permission)):
        fail(PlugbayError(f"{permission} was not granted to '{plugin_id}'", plugin=plugin_id))
    store_op(state, lambda s: s.add_event(plugin_id, "revoke", reason=permission))
    out.print(f"{plugin_id}: revoked {escape(permission)}")
    out.print("no host is running on this state directory: it applies when one starts")


def _granted_live(state: Path, plugin_id: str, permission: str, what: str) -> bool:
    """Grant or revoke through a running host, which keeps it and applies it at once
    (the plugin's worker restarted under the new policy); False when none runs."""
    from plugbay.web.client import connect

    try:
        client = connect(state)
        if client is None:
            return False
        with client:
            act = client.grant if what == "grant" else client.revoke
            done = act(plugin_id, permission)
            pid = client.pid
    except PlugbayError as exc:
        fail(exc)
    verb = "granted" if what == "grant" else "revoked"
    out.print(f"{plugin_id}: {verb} {escape(permission)}")
    if done["restarted"]:
        out.print(
            f"applied now: {plugin_id}'s worker was restarted under the new policy (host pid {pid})"
        )
    elif what == "grant" and not done["asked"]:
        err.print(
            f"[yellow]note:[/] {plugin_id}'s manifest does not ask for "
            f"{escape(permission)}, so it has no effect until it does"
        )
    return True


def register(app: typer.Typer) -> None:
    """Attach the permission commands to ``app``."""
    for fn in (grant, revoke):
        add_command(app, fn, panel=PANEL)
