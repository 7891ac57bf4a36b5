"""What ``plugbay info`` says of one plugin: its manifest, state, versions known and
kept, dependencies and dependents, commands, config, metrics, where the policy
places it (permissions, limits, sandbox), its Python environment and what it uses.
``Host.info`` answers with it; the CLI and the HTTP API render it.
"""

from __future__ import annotations

from typing import Any

from plugbay.api.errors import PlugbayError
from plugbay.isolation.policy import Placement
from plugbay.model.registry import PluginRegistry
from plugbay.runtime.deadlines import call_timeout
from plugbay.runtime.environments import python_info
from plugbay.runtime.live_config import masked
from plugbay.runtime.manager import PluginManager
from plugbay.runtime.permissions import permissions_of
from plugbay.runtime.records import PluginRecord
from plugbay.runtime.store import KEPT
from plugbay.state import StateStore

__all__ = ["plugin_info"]


def plugin_info(
    manager: PluginManager,
    registry: PluginRegistry,
    state: StateStore | None,
    plugin_id: str,
) -> dict[str, Any]:
    """Manifest, state, dependencies, dependents and commands of one plugin."""
    rec = manager.record(plugin_id)
    out = rec.to_dict()
    out["manifest"] = rec.manifest.to_dict() if rec.manifest else None
    out.update(_versions(registry, state, plugin_id))
    out.update(_relations(manager, registry, rec))
    out["commands"] = [spec.describe() for _, spec in sorted(rec.commands.items())]
    out["config"] = masked(rec.manifest, rec.config) if rec.config is not None else None
    out["metrics"] = rec.metrics.snapshot() if rec.metrics else None
    out["traceback"] = rec.traceback
    placement = _placement(manager, rec)
    if rec.placement is None and placement is not None:  # not started: where it would run
        out["isolation"] = placement.isolation
    out.update(_confinement(manager, rec, placement))
    out["permissions"] = permissions_of(manager, rec)  # read now: grants made since count
    inline = placement is not None and placement.isolation == "inline"
    out["location"] = rec.handle.location() if rec.handle is not None else None
    out["python"] = python_info(rec.manifest, manager.environments, inline=inline)
    out["usage"] = manager.monitor_usage(plugin_id) if rec.handle is not None else None
    out["transitions"] = [{"time": t, "state": s} for t, s in rec.transitions]
    out["events"] = manager.plugin_events.describe(plugin_id)
    return out


def _versions(registry: PluginRegistry, state: StateStore | None, plugin_id: str) -> dict[str, Any]:
    """The versions registered, and those in the store (installed, and kept for rollback)."""
    return {
        "versions_known": (
            [str(v) for v in registry.versions(plugin_id)] if plugin_id in registry else []
        ),
        "versions_stored": [
            {"version": version, "kept": source.startswith(KEPT), "source": source}
            for _, version, source in (state.installed(plugin_id) if state else [])
        ],
    }


def _relations(
    manager: PluginManager, registry: PluginRegistry, rec: PluginRecord
) -> dict[str, Any]:
    """What the plugin depends on, and what depends on it (running or registered)."""
    plugin_id = rec.id
    return {
        "dependencies": (
            {**{k: str(v) for k, v in rec.manifest.dependencies.items()}} if rec.manifest else {}
        ),
        "dependents": sorted(
            {r.id for r in manager.list_plugins() if plugin_id in r.needs}
            | set(registry.dependents_of(plugin_id) if plugin_id in registry else [])
        ),
    }


def _placement(manager: PluginManager, rec: PluginRecord) -> Placement | None:
    """Where it runs, or where the policy would run it now (``None``: cannot say)."""
    if rec.placement is not None or rec.manifest is None:
        return rec.placement
    try:
        return manager.place(rec.manifest)
    except PlugbayError:
        return None


def _confinement(
    manager: PluginManager, rec: PluginRecord, placement: Placement | None
) -> dict[str, Any]:
    """Its limits and sandbox as placed (empty when it cannot be placed); its ``timeout``:
    the deadline its calls get (``runtime.deadlines``), not only what a file asks."""
    if placement is None:
        return {"limits": {}, "sandbox": None}
    described = placement.describe()
    limits = dict(described["limits"])
    if rec.manifest is not None:
        limits["timeout"] = call_timeout(rec.manifest, manager.settings)
    return {
        "limits": limits,
        "sandbox": {
            "sandboxed": placement.sandboxed,
            "reason": placement.reason,
            "secrets": described["secrets"],
            "environment": described["environment"],
            "layers": [dict(layer) for layer in rec.handle.layers] if rec.handle else [],
        },
    }
