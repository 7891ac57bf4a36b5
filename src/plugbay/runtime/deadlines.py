"""A plugin's per-call deadline: how long its calls may take, and where that is set.

The deadline is the plugin's ``timeout`` limit as the policy places it
(``isolation.limit_sources.limit_and_source``): the manifest's ``[resources] timeout``,
else the policy's ``[policy.defaults] timeout``, else the host's call timeout
(``Host(call_timeout=...)``), never above the policy's ``[policy.limits] timeout`` nor
the host's ``max_call_timeout``. A ``timeout = 0`` in ``[policy.defaults]`` or
``[policy.limits]`` sets none (a call with no time at all could never answer): the
next source applies. :func:`deadline` works out both the seconds and where they were
set, so the time-out's words (:func:`set_where`) cannot name another source than the
one that set the deadline. It is worked out when a version starts or is swapped in
(the route keeps it), never per call; a command's own shorter ``@command(timeout=...)``
is the route's business (``runtime.routing``).
"""

from __future__ import annotations

import dataclasses

from plugbay.isolation.limit_sources import DEFAULTS, RESOURCES, LimitSource, limit_and_source
from plugbay.model.manifest import PluginManifest
from plugbay.runtime.records import ManagerSettings, positive

__all__ = ["call_timeout", "deadline", "set_where"]


def deadline(manifest: PluginManifest, settings: ManagerSettings) -> tuple[float, LimitSource]:
    """The seconds each call of ``manifest``'s plugin may take, and where they were set:
    the policy's record of the limit, whose table is None when neither the manifest nor
    ``[policy.defaults]`` set one (the host's call timeout)."""
    policy = settings.policy
    default = positive(policy.defaults.get("timeout"))
    seconds, source = limit_and_source(
        "timeout",
        positive(manifest.resources.timeout),
        manifest.resources.timeout,
        {"timeout": default or settings.call_timeout},
        {"timeout": positive(policy.caps.get("timeout"))},
    )
    if source.table == DEFAULTS and default is None:
        source = dataclasses.replace(source, table=None)
    assert seconds is not None  # the host's call timeout is always set
    return min(seconds, settings.max_call_timeout), source


def call_timeout(manifest: PluginManifest, settings: ManagerSettings) -> float:
    """The seconds each call of ``manifest``'s plugin may take (a command may ask for less)."""
    return deadline(manifest, settings)[0]


def set_where(manifest: PluginManifest, route_timeout: float, settings: ManagerSettings) -> str:
    """Where the plugin's deadline of ``route_timeout`` s is set, and what lifts it, in the
    words of the file that sets it: the manifest's ``[resources] timeout``, the policy's
    ``[policy.defaults] timeout`` or its ``[policy.limits] timeout`` cap (in the host
    config file), the host's call timeout, or the host's cap on every call."""
    _, source = deadline(manifest, settings)
    base = source.asked
    assert base is not None  # the host's call timeout when nothing else asked
    config = str(settings.config_file) if settings.config_file else "the host's policy"
    if source.table == RESOURCES:
        wanted = f"resources.timeout = {base:g} in {manifest.location}"
    elif source.table == DEFAULTS:
        wanted = f"[policy.defaults] timeout = {base:g} in {config}"
    else:
        wanted = f"the host's call timeout of {base:g} s"
    cap = source.capped_by
    if cap is not None and cap <= settings.max_call_timeout:
        return (
            f"the limit is the host policy's cap, [policy.limits] timeout = {cap:g} in "
            f"{config}, under the {base:g} s of {wanted}: split the work into shorter "
            "calls, or have the operator raise [policy.limits] timeout there"
        )
    if base > route_timeout:  # the host's max_call_timeout
        return (
            f"{wanted} asks for more than the host allows a call, {route_timeout:g} s: "
            "split the work into shorter calls"
        )
    if source.table == RESOURCES:
        return f"raise timeout under [resources] in {manifest.location}"
    if source.table == DEFAULTS:
        return (
            f"the limit is the host policy's default, {wanted}, as {manifest.location} sets "
            "no [resources] timeout: set one there (timeout = SECONDS under [resources]), "
            f"or have the operator raise [policy.defaults] timeout in {config}"
        )
    return (
        f"the limit is the host's call timeout, {route_timeout:g} s, as "
        f"{manifest.location} sets no [resources] timeout: set one there (timeout = "
        "SECONDS under [resources]; for plugbay run, in the plugin's manifest), or, in "
        "an application that starts the host, pass a longer Host(call_timeout=...)"
    )
