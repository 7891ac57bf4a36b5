"""A running plugin's config, changed in place: its ``on_config_change(old, new)`` hook.

A plugin that defines ``on_config_change`` takes a new config without being
swapped: ``context.config`` becomes the new (already validated) values, then the
hook runs with the old and new values as plain dicts. When the hook raises, the
old config is put back and the change is refused with the plugin's error. A plugin
without the hook answers False, and the host swaps it with state handover instead.
The same helper runs in the host (inline) and in a worker (process backend).
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Mapping
from typing import Any

from plugbay.api._context import PluginConfig
from plugbay.api._plugin import Plugin
from plugbay.api.errors import PluginCallError

__all__ = ["change_config"]


async def change_config(plugin: Plugin, new: Mapping[str, Any]) -> bool:
    """Apply ``new`` through the plugin's hook; False when it has none."""
    hook = getattr(plugin, "on_config_change", None)
    context = getattr(plugin, "context", None)
    if hook is None or not callable(hook) or context is None:
        return False
    old = context.config
    object.__setattr__(context, "config", PluginConfig(new))
    try:
        done = hook(dict(old), dict(new))
        if inspect.isawaitable(done):
            await done
    except Exception as exc:
        object.__setattr__(context, "config", old)
        raise PluginCallError(
            f"on_config_change raised {type(exc).__name__}: {exc}; the old config stays",
            plugin=plugin.id if hasattr(plugin, "id") else None,
            hint="fix the hook, or refuse values it cannot take in the manifest's [config] schema",
            details={"traceback": "".join(traceback.format_exception(exc))},
        ) from None
    return True
