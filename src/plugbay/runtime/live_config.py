"""A running plugin's config changed while it serves, and every change audited.

``Host.set_config`` validates the new values with every other config layer and
keeps them in the state; here they are applied. A plugin with an
``on_config_change(old, new)`` hook takes them in place (``isolation.config_change``):
no swap, its calls go on. Any other plugin is swapped with state handover (a
reload), its old version serving until the new one is ready. Either way the change
is in the plugin's history: the keys, how it was applied, and the values (a field
the schema marks ``secret`` is shown as ``***``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plugbay.model.manifest import PluginManifest
    from plugbay.runtime.host import Host
    from plugbay.runtime.records import PluginRecord

__all__ = ["apply_config", "audit_config"]


async def apply_config(
    host: Host, rec: PluginRecord, config: dict[str, Any], values: Mapping[str, Any]
) -> PluginRecord:
    """Give an active plugin ``config`` (the full validated config; ``values`` are the
    run-time layer the operator set): its hook when it has one, else a swap."""
    handle = rec.handle
    timeout = host.manager.settings.call_timeout
    if handle is not None and await handle.change_config(config, timeout):
        rec.config = config
        audit_config(host, rec.id, rec.manifest, values, "on_config_change")
        return rec
    swapped = await host.reload(rec.id)
    audit_config(host, rec.id, rec.manifest, values, "swap with state handover")
    return swapped


def audit_config(
    host: Host,
    plugin_id: str,
    manifest: PluginManifest | None,
    values: Mapping[str, Any],
    applied: str,
) -> None:
    """The change in the plugin's history (secret fields masked)."""
    if host.state is None:
        return
    secret = set()
    if manifest is not None and manifest.config is not None:
        secret = {name for name, f in manifest.config.fields.items() if f.secret}
    shown = {k: "***" if k in secret else v for k, v in values.items()}
    host.state.add_event(
        plugin_id,
        "config",
        version=str(manifest.version) if manifest is not None else None,
        reason=f"applied by {applied}",
        details={"keys": sorted(values), "values": shown, "applied": applied},
    )
