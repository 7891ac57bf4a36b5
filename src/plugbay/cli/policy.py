"""Commands that grant and take back what a plugin may do: grant, revoke (and grants,
which lists them all: ``cli.grants``).

With a host serving the state directory's API, both go through it (kept, and applied at
once); else they change the state, and apply when a host starts. Either way a grant of
the host config file's ``[policy.grants]`` is not revoked here: the file is named, for the
operator to edit (``runtime.permissions``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Final

import typer
from rich.markup import escape

from plugbay.api.errors import PlugbayError
from plugbay.cli._console import err, fail, out
from plugbay.cli._defaults import config_file
from plugbay.cli._options import (
    ConfigOpt,
    PluginIdArg,
    PluginsOpt,
    StateOpt,
    add_command,
    store_op,
)
from plugbay.cli.grants import grants

__all__ = ["PANEL", "register"]

PANEL = "permissions"

#: who made a change with no host serving the state's API, as the history keeps it
_BY_HAND: Final = "plugbay {} (no host serving its API)"


def _check_permission(permission: str, *, granting: bool = False) -> None:
    from plugbay.isolation.policy import grant_refusal

    # a revoke of a grant without a port (kept from before) is still taken
    refusal = grant_refusal(permission, granting=granting)
    if refusal is not None:
        fail(PlugbayError(refusal[0], hint=refusal[1]), code=2)


def grant(
    plugin_id: PluginIdArg,
    permission: Annotated[
        str, typer.Argument(help="e.g. network:127.0.0.1:8080, env:HOME, subprocess")
    ],
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
) -> None:
    """Grant a plugin a permission its manifest asks for.

    Deny by default: only what is both asked for and granted is allowed.
    """
    _check_permission(permission, granting=True)
    if _changed_live(state, plugin_id, permission, "grant"):
        return
    manifest = _manifest(plugin_id, plugins, state)
    if manifest is None:
        fail(
            PlugbayError(
                f"no plugin '{plugin_id}' is found",
                plugin=plugin_id,
                hint="'plugbay list' shows the plugins found",
            )
        )
    view = _view_on_disk(plugin_id, manifest, plugins, state, config)
    store_op(state, lambda s: s.grant(plugin_id, permission))
    store_op(
        state,
        lambda s: s.add_event(
            plugin_id, "grant", reason=permission, details={"by": _BY_HAND.format("grant")}
        ),
    )
    out.print(f"{plugin_id}: granted {escape(permission)}")
    out.print(_applies_when(state, plugin_id))
    asked = view["asked"]
    if not _covers_asked(permission, asked):
        err.print(
            f"[yellow]note:[/] {plugin_id}'s manifest does not ask for {escape(permission)}, so it "
            "has no effect until it does (asked: " + escape(", ".join(asked) or "nothing") + ")"
        )
    for source in view["grants"]:
        if source["permission"] == permission and source["source"] == "config":
            err.print(f"[yellow]note:[/] it is granted by {escape(source['where'])} as well")


def revoke(
    plugin_id: PluginIdArg,
    permission: Annotated[str, typer.Argument(help="A permission granted before")],
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
) -> None:
    """Take back a permission granted with 'plugbay grant'.

    A grant of the host config file's \\[policy.grants] is taken back by removing it
    there: revoke says so, names the file and changes nothing.
    """
    from plugbay.runtime.permissions import refusal_to_revoke

    _check_permission(permission)
    if _changed_live(state, plugin_id, permission, "revoke"):
        return
    manifest = _manifest(plugin_id, plugins, state)
    view = _view_on_disk(plugin_id, manifest, plugins, state, config)
    refusal = refusal_to_revoke(view, plugin_id, permission)
    if refusal is not None:
        fail(refusal)
    if not store_op(state, lambda s: s.revoke(plugin_id, permission)):
        fail(
            PlugbayError(
                f"{permission} was not granted to '{plugin_id}'",
                plugin=plugin_id,
                hint=f"'plugbay info {plugin_id}' lists what is granted, and where from",
            )
        )
    store_op(
        state,
        lambda s: s.add_event(
            plugin_id, "revoke", reason=permission, details={"by": _BY_HAND.format("revoke")}
        ),
    )
    out.print(f"{plugin_id}: revoked {escape(permission)}")
    out.print(_applies_when(state, plugin_id))


def _covers_asked(permission: str, asked: list[str]) -> bool:
    from plugbay.isolation.policy import covers

    return any(covers(permission, p) for p in asked)


def _manifest(plugin_id: str, plugins: list[Path] | None, state: Path) -> Any:
    """The newest manifest of ``plugin_id`` in the plugins directories and the store."""
    from plugbay.model.discover import discover

    dirs = [*(plugins or [Path("plugins")]), state / "store"]
    found = discover([d for d in dirs if d.is_dir()], entry_points=True)
    mine = [m for m in found.manifests if m.id == plugin_id]
    return max(mine, key=lambda m: m.version) if mine else None


def _view_on_disk(
    plugin_id: str, manifest: Any, plugins: list[Path] | None, state: Path, config: Path | None
) -> dict[str, Any]:
    """The plugin's permissions as a host started now would see them (no host runs)."""
    from plugbay.isolation.policy import IsolationPolicy
    from plugbay.runtime.permissions import Kept, kept_decisions, layered, unconfined_of

    try:
        policy = IsolationPolicy.from_file(config_file(config))
    except PlugbayError as exc:
        fail(exc)
    kept = store_op(state, lambda s: kept_decisions(s, plugin_id)) if _has_state(state) else Kept()
    dirs = [d.resolve() for d in plugins or [Path("plugins")]]
    return layered(
        plugin_id,
        manifest.permissions.asked() if manifest is not None else (),
        policy,
        kept,
        trust=policy.trusted(manifest, dirs) if manifest is not None else None,
        in_force=None,
        unconfined=unconfined_of(None, policy, manifest, dirs) if manifest is not None else None,
    )


def _has_state(state: Path) -> bool:
    return (state / "state.db").exists()


def _applies_when(state: Path, plugin_id: str) -> str:
    """When a change made in the state, not through a host, takes effect."""
    from plugbay.web.client import running_host

    running = running_host(state)
    if running is None:
        return "no host is running on this state directory: it applies when one starts"
    return (
        f"the host running on this state directory (pid {running['pid']}) serves no API, so "
        f"it applies when that host starts {plugin_id} again (its next start)"
    )


def _changed_live(state: Path, plugin_id: str, permission: str, what: str) -> bool:
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
    elif done["state"] != "active":
        out.print(f"{plugin_id} is {done['state']}: it applies when it starts (host pid {pid})")
    if what == "grant" and not done["asked"]:
        err.print(
            f"[yellow]note:[/] {plugin_id}'s manifest does not ask for "
            f"{escape(permission)}, so it has no effect until it does"
        )
    return True


def register(app: typer.Typer) -> None:
    """Attach the permission commands to ``app``."""
    for fn in (grant, revoke, grants):
        add_command(app, fn, panel=PANEL)
