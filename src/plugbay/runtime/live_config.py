"""A running plugin's config changed while it serves, and every change audited.

``Host.set_config`` validates the new values with every other config layer and
keeps them in the state; here they are applied. A plugin with an
``on_config_change(old, new)`` hook takes them in place (``isolation.config_change``):
no swap, its calls go on. Any other plugin is swapped with state handover (a
reload), its old version serving until the new one is ready. Either way the change
is in the plugin's history: the keys, how it was applied, and the values (a field
the schema marks ``secret`` is shown as ``***``).

A plugin that is not active keeps the values for its next start; :func:`pending` says
so, and what starts it (the API's and ``plugbay config``'s answer carry it).
Run-time values replace those set before: a key left out goes back to the host
config's value, else the manifest's default (``plugbay config ID --unset KEY``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plugbay.model.manifest import PluginManifest
    from plugbay.runtime.host import Host
    from plugbay.runtime.records import PluginRecord

__all__ = ["UNCHANGED", "apply_config", "audit_config", "pending"]

#: how a change the serving version does not see is applied: not at all (no hook, no swap)
UNCHANGED = "nothing: the config the serving version runs with is unchanged"


async def apply_config(
    host: Host, rec: PluginRecord, config: dict[str, Any], values: Mapping[str, Any]
) -> PluginRecord:
    """Give an active plugin ``config`` (the full validated config; ``values`` are the
    run-time layer the operator set): its hook when it has one, else a swap. Neither when
    ``config`` is what it runs with already (a key kept aside for another version)."""
    if config == rec.config:
        audit_config(host, rec.id, rec.manifest, values, UNCHANGED)
        return rec
    handle = rec.handle
    timeout = host.manager.settings.call_timeout
    if handle is not None and await handle.change_config(config, timeout):
        rec.config = config
        audit_config(host, rec.id, rec.manifest, values, "on_config_change")
        return rec
    swapped = await host.reload(rec.id)
    audit_config(host, rec.id, rec.manifest, values, "swap with state handover")
    return swapped


def pending(rec: PluginRecord) -> str | None:
    """Why the plugin does not run with its config as set now, and what starts it so;
    ``None`` for an active plugin (it does: the change was applied)."""
    state, pid = str(rec.state), rec.id
    enable = f"'plugbay enable {pid}' (POST /api/v1/plugins/{pid}/enable)"
    if state == "active":
        return None
    if state == "restarting" and not (rec.restart is not None and rec.restart.under_way):
        return f"{pid} is restarting after a crash: its restart starts it with this config"
    if state == "on-demand":
        return f"{pid} starts on demand: its first call or event starts it with this config"
    if state == "failed":
        return (
            f"{pid} is failed: it runs with this config once started again: {enable} "
            "starts it now, or the host's next start"
        )
    if state in ("disabled", "stopped", "stopping"):
        return f"{pid} is {state}: it runs with this config once started again: {enable}"
    return (  # starting with the config it had when its start began
        f"{pid} is {state}: once it is active, 'plugbay reload {pid}' "
        f"(POST /api/v1/plugins/{pid}/reload) gives it this config"
    )


#: what a secret config value is shown as (and, sent back, means "keep the value")
SECRET_SHOWN = "***"


def _secret(manifest: PluginManifest | None) -> set[str]:
    if manifest is None or manifest.config is None:
        return set()
    return {name for name, f in manifest.config.fields.items() if f.secret}


def masked(manifest: PluginManifest | None, values: Mapping[str, Any] | None) -> dict[str, Any]:
    """``values`` as shown to anyone (the API, the CLI, the history): each field the
    schema marks ``secret`` as ``***``."""
    secret = _secret(manifest)
    return {k: SECRET_SHOWN if k in secret else v for k, v in (values or {}).items()}


def unmasked(
    manifest: PluginManifest | None, values: Mapping[str, Any], current: Mapping[str, Any]
) -> dict[str, Any]:
    """New run-time values as sent back after :func:`masked`: a secret field still ``***``
    keeps its current run-time value (or none, when it has none)."""
    secret = _secret(manifest)
    kept = {k: v for k, v in values.items() if not (k in secret and v == SECRET_SHOWN)}
    return {**kept, **{k: current[k] for k in values if k not in kept and k in current}}


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
    shown = masked(manifest, values)
    host.state.add_event(
        plugin_id,
        "config",
        version=str(manifest.version) if manifest is not None else None,
        reason=f"applied by {applied}",
        details={"keys": sorted(values), "values": shown, "applied": applied},
    )
