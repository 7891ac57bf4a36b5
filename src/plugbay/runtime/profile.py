"""``plugbay profile``: one call under cProfile, in the backend the plugin runs in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from plugbay.api.errors import PluginTimeout
from plugbay.isolation.base import CallTimeout
from plugbay.isolation.profiling import profiled

if TYPE_CHECKING:
    from plugbay.runtime.manager import PluginManager

__all__ = ["profile_call"]


async def profile_call(
    manager: PluginManager,
    plugin_id: str,
    command: str,
    params: Mapping[str, Any],
    *,
    strict: bool = False,
) -> tuple[Any, str]:
    """One call to ``plugin_id.command`` under the profiler, where the plugin runs."""
    spec = manager.command_spec(plugin_id, command)
    handle = manager.record(plugin_id).handle
    assert handle is not None  # command_spec raised otherwise
    if handle.instance is not None:
        # the plugin runs here: profile the host's whole call path (checks, metrics, errors)
        out = await profiled(manager.call(plugin_id, command, params, strict=strict))
        return out["value"], str(out["report"])
    timeout = manager.timeout_of(plugin_id)
    if spec.timeout is not None and spec.timeout < timeout:
        timeout = spec.timeout
    kwargs = spec.validate_params(params, plugin=plugin_id, strict=strict)
    try:
        out = await handle.profile(spec, kwargs, timeout)
    except CallTimeout:
        raise PluginTimeout(
            f"command '{command}' did not finish within {timeout:g} s under the profiler",
            plugin=plugin_id,
            hint="profile a smaller input, or raise resources.timeout in the manifest",
        ) from None
    return out["value"], str(out["report"])
