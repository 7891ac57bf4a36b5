"""Starting a plugin that is not running (``plugbay load``), with what it needs.

A plugin that failed because a dependency was not there starts once the dependency is
added, without ``--watch``: the plugin directories and the plugin store are read again
first, so a plugin added beside a running host is found, and each required dependency
that is not running (not loaded, failed, unloaded) starts before it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from plugbay.api.errors import PlugbayError, PluginStateError
from plugbay.runtime.records import PluginState

if TYPE_CHECKING:
    from plugbay.runtime.host import Host
    from plugbay.runtime.records import PluginRecord

__all__ = ["load_with_needs"]

#: a plugin in one of these states is running, or on its way: a load leaves it alone
RUNNING = frozenset({PluginState.ACTIVE, PluginState.INITIALIZING, PluginState.RESTARTING})

log = logging.getLogger("plugbay.host")


async def load_with_needs(host: Host, plugin_id: str) -> PluginRecord:
    """Start ``plugin_id`` (refused when it runs, or is disabled), its required
    dependencies that are not running first; a failure is in the record it returns."""
    find_added(host)
    manager = host.manager
    rec = manager.records_by_id.get(plugin_id)
    if rec is not None and rec.state is PluginState.DISABLED:
        raise PluginStateError(
            "is disabled, and stays off until enabled (kept across restarts)",
            plugin=plugin_id,
            hint=f"'plugbay enable {plugin_id}' starts it",
        )
    for dep in _needs_not_running(host, plugin_id):
        await manager.load_plugin(dep)  # a failure shows in the plugin's own reason
    return await manager.load_plugin(plugin_id)


def find_added(host: Host) -> None:
    """What was added to the plugin directories or the store since the start joins the
    registry; a plugin that is not running is read again (its files may be fixed)."""
    states = {r.id: r.state for r in host.manager.list_plugins()}
    registry = host.registry
    for manifest in host.discover(entry_points=False).manifests:
        try:
            if states.get(manifest.id) not in RUNNING:
                registry.replace(manifest)
            elif manifest.version not in registry.versions(manifest.id):
                registry.register(manifest)
        except PlugbayError as exc:
            log.warning("load: %s", exc)
    host.refresh_installed()


def _needs_not_running(host: Host, plugin_id: str) -> list[str]:
    """The required dependencies of ``plugin_id``, all the way down, that are known and
    neither running nor disabled: each after what it needs."""
    records = host.manager.records_by_id
    order: list[str] = []
    seen = {plugin_id}

    def visit(pid: str) -> None:
        if pid not in host.registry:
            return  # its own load says what is missing
        for dep in host.registry.get(pid).dependencies:
            if dep in seen:
                continue
            seen.add(dep)
            visit(dep)
            rec = records.get(dep)
            state = rec.state if rec is not None else None
            if dep in host.registry and state not in RUNNING and state is not PluginState.DISABLED:
                order.append(dep)

    visit(plugin_id)
    return order
