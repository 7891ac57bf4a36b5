"""A plugin's per-call deadline: how long its calls may take, and where that is set.

The deadline is the plugin's ``timeout`` limit as the policy places it
(``IsolationPolicy.limits_for``): the manifest's ``[resources] timeout``, else the
policy's ``[policy.defaults] timeout``, else the host's call timeout
(``Host(call_timeout=...)``), never above the policy's ``[policy.limits] timeout`` nor
the host's ``max_call_timeout``. It is worked out when a version starts or is swapped
in (the route keeps it), never per call; a command's own shorter ``@command(timeout=...)``
is the route's business (``runtime.routing``).
"""

from __future__ import annotations

from plugbay.model.manifest import PluginManifest
from plugbay.runtime.records import ManagerSettings, positive

__all__ = ["call_timeout", "set_where"]


def call_timeout(manifest: PluginManifest, settings: ManagerSettings) -> float:
    """The seconds each call of ``manifest``'s plugin may take (a command may ask for less)."""
    policy = settings.policy
    asked = (
        positive(manifest.resources.timeout)
        or positive(policy.defaults.get("timeout"))
        or settings.call_timeout
    )
    cap = positive(policy.caps.get("timeout"))
    if cap is not None and cap < asked:
        asked = cap
    return min(asked, settings.max_call_timeout)


def set_where(manifest: PluginManifest, route_timeout: float, settings: ManagerSettings) -> str:
    """Where the plugin's deadline of ``route_timeout`` s is set, and what lifts it, in the
    words of the file that sets it: the manifest's ``[resources] timeout``, the policy's
    ``[policy.defaults] timeout`` or its ``[policy.limits] timeout`` cap (in the host
    config file), the host's call timeout, or the host's cap on every call."""
    policy = settings.policy
    asked = positive(manifest.resources.timeout)
    default = positive(policy.defaults.get("timeout"))
    cap = positive(policy.caps.get("timeout"))
    config = str(settings.config_file) if settings.config_file else "the host's policy"
    if asked is not None:
        wanted = f"resources.timeout = {asked:g} in {manifest.location}"
    elif default is not None:
        wanted = f"[policy.defaults] timeout = {default:g} in {config}"
    else:
        wanted = f"the host's call timeout of {settings.call_timeout:g} s"
    base = asked or default or settings.call_timeout
    if cap is not None and cap < base and cap <= settings.max_call_timeout:
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
    if asked is not None:
        return f"raise timeout under [resources] in {manifest.location}"
    if default is not None:
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
