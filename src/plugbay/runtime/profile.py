"""``plugbay profile``: one call under cProfile, in the backend the plugin runs in; or the
serving process sampled in place for a bounded time (``--seconds``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from plugbay.api.errors import ParameterError, PluginStateError, PluginTimeout
from plugbay.isolation.base import CallTimeout
from plugbay.isolation.profiling import profiled
from plugbay.isolation.sampling import MAX_SECONDS, MIN_INTERVAL, Samples
from plugbay.runtime.calling import deadline_hint

if TYPE_CHECKING:
    from plugbay.runtime.manager import PluginManager

__all__ = ["profile_call", "sample_serving"]


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
    timeout = route_timeout = manager.timeout_of(plugin_id)
    if spec.timeout is not None and spec.timeout < timeout:
        timeout = spec.timeout
    kwargs = spec.validate_params(params, plugin=plugin_id, strict=strict)
    try:
        out = await handle.profile(spec, kwargs, timeout)
    except CallTimeout:
        raise PluginTimeout(
            f"command '{command}' did not finish within {timeout:g} s under the profiler",
            plugin=plugin_id,
            hint="profile a smaller input; or, "
            + deadline_hint(
                command, timeout, spec, route_timeout, handle.manifest, manager.settings
            ),
        ) from None
    return out["value"], str(out["report"])


async def sample_serving(
    manager: PluginManager, plugin_id: str, seconds: float, interval: float = 0.005
) -> Samples:
    """Profile the process that serves ``plugin_id`` now, as it serves, for ``seconds``:
    its worker samples its own stacks (an inline plugin: the host's process)."""
    if not 0 < seconds <= MAX_SECONDS:
        raise ParameterError(
            f"a profile runs for more than 0 and at most {MAX_SECONDS:g} seconds, not {seconds:g}",
            plugin=plugin_id,
            hint="pass --seconds between 1 and 300",
        )
    interval = max(interval, MIN_INTERVAL)
    from plugbay.runtime.manager import PluginState

    rec = manager.record(plugin_id)
    if rec.state is not PluginState.ACTIVE or rec.handle is None:
        raise PluginStateError(
            f"is {rec.state}: no process serves it, so there is nothing to profile",
            plugin=plugin_id,
            hint=f"start it first (plugbay load {plugin_id}, or call one of its commands)",
        )
    try:
        out = await rec.handle.sample(seconds, interval, seconds + 30.0)
    except CallTimeout:
        raise PluginTimeout(
            f"its worker did not send its profile within {seconds + 30.0:g} s",
            plugin=plugin_id,
            hint="its worker may be stuck; see plugbay info and its stacks in the host's log",
        ) from None
    return cast(Samples, out)
