"""Many calls of one command at once: ``await host.call_many(plugin, command, params)``.

For a caller with many calls to make (a queue drained, a fan-out), where one
``host.call`` each would cost a task, a future and a trip through the call path
per call. The calls are checked, bounded and counted exactly as
:meth:`PluginManager.call <plugbay.runtime.manager.PluginManager.call>` does one,
and go to the backend together (``PluginHandle.call_many``): a sandboxed worker
gets them in one write and answers them in one, and the caller wakes once per
read of answers, not once per call.

Each item of the result is that call's value or the :class:`PlugbayError` it
failed with, in the order of the parameter sets: one bad call never fails the
others. A plugin that is not callable, or a command it does not have, raises
for the whole batch, as ``host.call`` would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from plugbay.api import CommandSpec
from plugbay.api.errors import ParameterError, PlugbayError
from plugbay.isolation import CallTimeout
from plugbay.monitor import CommandStats
from plugbay.runtime import calling as calls
from plugbay.runtime.origin import mark_origin
from plugbay.runtime.records import ManagerSettings
from plugbay.runtime.routing import Route
from plugbay.runtime.tap import heard_many

if TYPE_CHECKING:
    from plugbay.runtime.manager import PluginManager

__all__ = ["call_many"]


async def call_many(
    manager: PluginManager,
    plugin_id: str,
    command: str,
    params: Iterable[Mapping[str, Any]],
    *,
    strict: bool = True,
) -> list[Any]:
    """Run ``command`` once per parameter set; each item its value or its PlugbayError."""
    manager.serving.check_loop(f"call {plugin_id} {command}")  # once a batch: off its loop?
    route, (spec, stats, timeout, _) = await manager.routed(plugin_id, command)
    handle = route.handle  # the timeout: the route's, or the command's if shorter
    out, checked, where, timed = _checked(
        spec, stats, params, plugin_id, strict, counted=manager.settings.monitoring
    )
    started = calls.clock() if timed >= 0 else 0.0
    manager.touch(plugin_id)
    inflight = route.inflight
    inflight[0] += len(checked)  # what a reload drains before it retires this version
    try:
        many = handle.call_many if route.heard is None else heard_many(route.heard, handle)
        results = await many(spec, checked, timeout) if checked else []
    except BaseException:  # cancelled: the timed item's period ends all the same
        if timed >= 0:
            stats.next_period()
        raise
    finally:
        inflight[0] -= len(checked)
    took = calls.clock() - started if timed >= 0 else None
    settings = manager.settings  # a timeout's hint names where it is set
    for i, result in zip(where, results, strict=True):
        seconds = took if i == timed else None
        out[i] = _judged(result, spec, plugin_id, command, route, timeout, stats, seconds, settings)
    if timed >= 0:
        stats.next_period()
    return out


def _checked(
    spec: CommandSpec,
    stats: CommandStats,
    params: Iterable[Mapping[str, Any]],
    plugin_id: str,
    strict: bool,
    *,
    counted: bool,
) -> tuple[list[Any], list[dict[str, Any]], list[int], int]:
    """Each call begun (counted) and its parameters checked: the answers so far (a
    caller's bad parameters fail their call in place), the checked sets, where they
    go, and which item is the sampling period's timed call (-1: none)."""
    out: list[Any] = []
    checked: list[dict[str, Any]] = []
    where: list[int] = []
    timed = -1
    for i, given in enumerate(params):
        if counted:
            stats.left -= 1
            if not stats.left:
                timed = i
        try:
            kwargs = spec.validate_params(given, plugin=plugin_id, strict=strict)
            checked.append(dict(kwargs) if kwargs is given else kwargs)  # the caller's own
        except PlugbayError as exc:  # a caller's bad parameters are not the plugin's error
            if not isinstance(exc, ParameterError):
                stats.error(None, exc)
            out.append(exc)
            continue
        where.append(i)
        out.append(None)
    return out, checked, where, timed


def _judged(
    result: Any,
    spec: CommandSpec,
    plugin_id: str,
    command: str,
    route: Route,
    timeout: float,
    stats: CommandStats,
    seconds: float | None,
    settings: ManagerSettings,
) -> Any:
    """One call's answer as ``host.call`` gives it: its checked value, or its error in
    the user's words, counted by its type (``seconds``: the sampled call's duration)."""
    if not isinstance(result, BaseException) and seconds is None:  # the common case
        try:
            return spec.validate_result(result, plugin=plugin_id)
        except PlugbayError as exc:
            stats.error(None, exc)
            return exc
    if isinstance(result, CallTimeout):
        stats.error(seconds, "PluginTimeout")
        return calls.timed_out(plugin_id, command, timeout, spec, route, settings)
    if isinstance(result, PlugbayError):  # bad parameters (a worker checks them) are the caller's
        if not isinstance(result, ParameterError):
            stats.error(seconds, result)
        mark_origin(result, plugin_id, route.handle.manifest)  # the plugin's own, or passed on?
        return result
    if isinstance(result, BaseException):
        stats.error(seconds, result)
        error = calls.plugin_raised(plugin_id, command, route.handle, result)
        error.__cause__ = result
        return error
    try:
        value = spec.validate_result(result, plugin=plugin_id)
    except PlugbayError as exc:
        stats.error(seconds, exc)
        return exc
    if seconds is not None:
        stats.pending.append(seconds)
        if len(stats.pending) >= stats.FOLD_AT:
            stats.fold()
    return value
