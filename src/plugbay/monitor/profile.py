"""``plugbay profile``: run one call under cProfile inside the plugin's own backend.

Inline, the profiler wraps the call in the host's process; in a worker, the host
sends a ``Profile`` frame and the worker wraps the call there, so the figures are
those of the process the plugin really runs in. cProfile is deterministic (it
sees every function call), which is what one call needs; the report is the
functions by cumulative time, as ``pstats`` prints them.
"""

from __future__ import annotations

import cProfile
import io
import pstats
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any

from plugbay.errors import PluginTimeout
from plugbay.isolation.base import CallTimeout

if TYPE_CHECKING:
    from plugbay.manager import PluginManager

__all__ = ["profile_call", "profiled", "report"]

#: functions shown in a report
TOP = 30


def report(profiler: cProfile.Profile, *, top: int = TOP) -> str:
    buffer = io.StringIO()
    stats = pstats.Stats(profiler, stream=buffer)
    stats.sort_stats(pstats.SortKey.CUMULATIVE).print_stats(top)
    return buffer.getvalue().strip()


async def profiled(work: Awaitable[Any]) -> dict[str, Any]:
    """Await ``work`` under the profiler: ``{"value": result, "report": text}``."""
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        value = await work
    finally:
        profiler.disable()
    return {"value": value, "report": report(profiler)}


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
    remote = getattr(handle, "profile", None)
    if remote is None:
        out = await profiled(manager.call(plugin_id, command, params, strict=strict))
        return out["value"], str(out["report"])
    timeout = manager.timeout_of(plugin_id)
    kwargs = spec.validate_params(params, plugin=plugin_id, strict=strict)
    try:
        out = await remote(spec, kwargs, timeout)
    except CallTimeout:
        raise PluginTimeout(
            f"command '{command}' did not finish within {timeout:g} s under the profiler",
            plugin=plugin_id,
            hint="profile a smaller input, or raise resources.timeout in the manifest",
        ) from None
    return out["value"], str(out["report"])
