"""Uninstall: take installed versions of a plugin out of the host and its store.

Refused, naming them, while active plugins depend on a version being removed. The
active version is stopped first (its ``cleanup`` runs, as for an unload), then each
version's files leave the store and the state forgets it; the history keeps an
``uninstall`` event. The plugin's data (``<state>/data/<id>``), the state each
version handed over, its run-time config and its grants stay unless ``purge``: an
operator who installs it again finds it as it was. A Python environment only the
removed versions used goes, with its packages in uv's cache (``runtime.env_cleanup``).
"""

from __future__ import annotations

import contextlib
import shutil
from typing import TYPE_CHECKING, Any

from plugbay.api.errors import (
    DependentsError,
    PlugbayError,
    PluginNotFound,
    PluginStateError,
    did_you_mean,
)
from plugbay.model.versions import Version
from plugbay.runtime.env_cleanup import after_uninstall
from plugbay.runtime.store import KEPT

if TYPE_CHECKING:
    from plugbay.model.manifest import PluginManifest
    from plugbay.runtime.host import Host

__all__ = ["uninstall"]


async def uninstall(
    host: Host, plugin_id: str, version: str | None = None, *, purge: bool = False
) -> dict[str, Any]:
    """Remove ``version`` of ``plugin_id`` (default: every installed version)."""
    store, state = host.store, host.state
    if store is None or state is None:
        raise PluginStateError(
            "uninstalling needs a state directory, where the plugin store lives",
            plugin=plugin_id,
            hint="create the host with state_dir=..., or pass --state DIR",
        )
    await store.settled(plugin_id)  # a copy still being kept would come back after
    installed = [v for _, v, src in state.installed(plugin_id) if not src.startswith(KEPT)]
    targets = _targets(host, plugin_id, version, installed)
    rec = host.manager.records_by_id.get(plugin_id)
    serving = rec is not None and str(rec.state) == "active" and rec.version in targets
    if serving:
        dependents = host.manager.dependents(plugin_id, required_only=True)
        if dependents:
            raise DependentsError(
                f"cannot be uninstalled: {', '.join(dependents)} need it and are active",
                plugin=plugin_id,
                hint=f"uninstall or unload {', '.join(dependents)} first",
                details={"dependents": dependents},
            )
        await host.unload(plugin_id)
    leaving = _manifests(host, plugin_id, targets)
    for v in targets:
        _unregister(host, plugin_id, Version.parse(v))
        shutil.rmtree(store.path_for(plugin_id, v), ignore_errors=True)
        state.remove_installed(plugin_id, v)
        if purge:
            store.state_file(plugin_id, v).unlink(missing_ok=True)
    remaining = _versions(host, plugin_id)
    if state.active_versions().get(plugin_id) in targets:
        state.set_active_version(plugin_id, None)
    if not remaining:
        host.manager.forget(plugin_id)
    reclaimed = await after_uninstall(host, leaving)
    purged = _purge(host, plugin_id) if purge else []
    state.add_event(
        plugin_id,
        "uninstall",
        version=", ".join(targets),
        details={"versions": targets, "stopped": serving, "purged": purged, "remaining": remaining},
    )
    return {
        "plugin": plugin_id,
        "versions": targets,
        "stopped": serving,
        "purged": purged,
        "remaining": remaining,
        "data": None if purge else str(host.manager.settings.data_root / plugin_id),
        **reclaimed.answer(),
    }


def _manifests(host: Host, plugin_id: str, versions: list[str]) -> list[PluginManifest]:
    """The manifests of the versions being removed (for the environments they used)."""
    assert host.store is not None
    found = []
    for version in versions:
        with contextlib.suppress(PlugbayError):
            found.append(host.store.manifest(plugin_id, version))
    return found


def _versions(host: Host, plugin_id: str) -> list[str]:
    return [str(v) for v in host.registry.versions(plugin_id)] if plugin_id in host.registry else []


def _unregister(host: Host, plugin_id: str, version: Version) -> None:
    """The store's copy leaves the registry; the same version from a plugins directory stays."""
    assert host.store is not None
    if plugin_id not in host.registry or version not in host.registry.versions(plugin_id):
        return
    root = host.registry.get(plugin_id, version).root
    if root is not None and root.is_relative_to(host.store.root):
        host.registry.unregister(plugin_id, version)


def _targets(host: Host, plugin_id: str, version: str | None, installed: list[str]) -> list[str]:
    if not installed:
        rec = host.manager.records_by_id.get(plugin_id)
        where = rec.manifest.location if rec is not None and rec.manifest is not None else None
        raise (PluginStateError if rec is not None else PluginNotFound)(
            "is not installed in the plugin store",
            plugin=plugin_id,
            where=where,
            hint="a plugin loaded from a plugins directory is removed by removing its "
            "directory; 'plugbay history ID' shows what was installed"
            if where
            else did_you_mean(plugin_id, host.registry.ids())
            or "'plugbay list' shows the plugins there are",
        )
    if version is None:
        return installed
    try:
        wanted = str(Version.parse(version))
    except PlugbayError:
        wanted = version
    if wanted not in installed:
        raise PluginStateError(
            f"version {version} is not installed",
            plugin=plugin_id,
            hint=f"installed versions: {', '.join(installed)}",
        )
    return [wanted]


def _purge(host: Host, plugin_id: str) -> list[str]:
    """The plugin's data, handed-over state, run-time config and grants; what went."""
    assert host.store is not None and host.state is not None
    gone: list[str] = []
    data = host.manager.settings.data_root / plugin_id
    if data.exists():
        shutil.rmtree(data, ignore_errors=True)
        gone.append(str(data))
    handover = host.store.handover_file(plugin_id)
    if handover.exists():
        handover.unlink()
        gone.append(str(handover))
    for leftover in sorted(host.store.root.glob(f"{plugin_id}/*.state.json")):
        leftover.unlink(missing_ok=True)
        gone.append(str(leftover))
    if host.state.get_config(plugin_id):
        host.state.set_config(plugin_id, {})
        gone.append("run-time config")
    for permission in host.state.grants(plugin_id):
        host.state.revoke(plugin_id, permission)
        gone.append(f"grant {permission}")
    return gone
