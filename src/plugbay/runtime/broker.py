"""The broker: every request a plugin makes of the host, checked against who sent it.

The sender is the plugin that owns the channel the request came on (a worker's
socket, an inline plugin's ``context.services``), never a name in the request.
A plugin reaches

* **another plugin's commands** only when its manifest declares that plugin under
  ``[dependencies]`` or ``[optional-dependencies]`` and the loaded version is in
  the declared range (what the resolver bound);
* **a service** only when its manifest declares it under ``[services] requires``
  (the provider's version in the declared range), or its provider is a declared
  dependency;
* **host-internal data** only through a named permission the operator granted
  (:data:`HOST_PERMISSIONS`), asked for in the manifest (``[permissions] host``).

A refusal is a :class:`PermissionDenied` naming the manifest line to add or the
``plugbay grant`` command to run, and a security event (``layer = "broker"``).
Any error a host call ends in (a refusal, a bound, a callee not running or out of
time, a service not provided, a callee's own failure) goes back stamped
(``isolation.refusals``), so that when the plugin lets it propagate, its caller is
told it is the host's (or the callee's), not the plugin's own (``web._errors``).
Every backend's host calls pass :meth:`Broker.host_call`; inline plugins meet the
same rules at ``context.services.require`` (:meth:`Broker.check_service`) — inline
code runs in the host's process and can bypass anything, so for them the check
catches honest mistakes, not attacks.
"""

from __future__ import annotations

import collections
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol

import msgspec

from plugbay.api.errors import PermissionDenied, PlugbayError, ResourceLimitExceeded
from plugbay.isolation.host_data import HOST_DATA, needed_to_require, permissions_of
from plugbay.isolation.offered_services import (
    HOST_SERVICE,
    host_refused,
    permission_refusal,
    service_grant,
    service_refusal,
)
from plugbay.isolation.policy import HOST_PERMISSIONS
from plugbay.isolation.ray import RayBackend
from plugbay.isolation.refusals import Refusals
from plugbay.isolation.remote_storage import STORAGE_TARGET
from plugbay.model.versions import Range
from plugbay.runtime.checked_service import CheckedService

if TYPE_CHECKING:
    from plugbay.isolation.base import Backend
    from plugbay.model.manifest import PluginManifest
    from plugbay.monitor.bounds import Budget
    from plugbay.runtime.plugin_events import PluginEvents
    from plugbay.runtime.records import PluginRecord
    from plugbay.runtime.services import ServiceHub

__all__ = ["HOST_DATA", "HOST_PERMISSIONS", "Broker", "BrokerHost"]


class BrokerHost(Protocol):
    """What the broker needs of the host's plugin manager (``runtime.manager``, which
    makes the broker: the broker does not import it)."""

    @property
    def backends(self) -> Mapping[str, Backend]: ...

    @property
    def services(self) -> ServiceHub: ...

    @property
    def plugin_events(self) -> PluginEvents: ...

    @property
    def records_by_id(self) -> Mapping[str, PluginRecord]: ...

    async def call(self, plugin_id: str, command: str, params: Mapping[str, Any]) -> Any: ...

    def budget_for(self, plugin_id: str) -> Budget | None: ...

    def security_event(self, plugin_id: str, event: dict[str, Any]) -> None: ...


#: parameters the broker sets to the sender's id, whatever the sender wrote
_STAMPED: Final[Mapping[tuple[str, str], str]] = {
    ("core.security", "record"): "plugin",
    ("system.logging", "log"): "source",
}
_NO_GRANT = object()


def host_data_permission(provider: str, command: str) -> str | object | None:
    """The permission ``provider.command`` needs, None when none, ``_NO_GRANT`` if not host data."""
    if (provider, command) in HOST_DATA:
        return HOST_DATA[(provider, command)]
    if (provider, "*") in HOST_DATA:
        return HOST_DATA[(provider, "*")]
    return _NO_GRANT


class Broker:
    """One per host; see the module docstring."""

    def __init__(self, manager: BrokerHost) -> None:
        self._manager = manager
        #: False only to measure what the checks cost (``bench``): every request is routed
        self.enabled = True
        #: what a host call refused each plugin, a denial of the broker's among them
        #: (``isolation.refusals``)
        self.refusals = Refusals()
        #: (sender, target, command) → what the last check saw allowed (``_check_plugin``)
        self._allowed: dict[tuple[str, str, str], tuple[object, object, object]] = {}
        #: requests refused, by plugin (for tests and ``plugbay info``)
        self.refused: collections.Counter[str] = collections.Counter()

    # -- the worker path ------------------------------------------------------------------

    async def host_call(
        self, consumer: str, target: str, command: str, params: dict[str, Any]
    ) -> Any:
        """A plugin's call out, from the channel of ``consumer``: ``service:NAME@RANGE``
        or a plugin id. Checked, bounded, then routed like any call; its error goes back
        stamped as the host's (``isolation.refusals``): passed on by the plugin, it is
        told as the host's refusal (or the callee's failure), not the plugin's own."""
        try:
            return await self._routed(consumer, target, command, params)
        except PlugbayError as exc:
            raise self.refusals.issue(consumer, exc) from exc

    async def _routed(
        self, consumer: str, target: str, command: str, params: dict[str, Any]
    ) -> Any:
        manager = self._manager
        budget = self._admit(consumer)
        try:
            if not isinstance(params, dict) or not isinstance(command, str):
                raise self.deny(
                    consumer, "a malformed host call", None, "send a command name and a mapping"
                )
            if target == "plugbay.events":  # context.events.emit (runtime.plugin_events)
                return await manager.plugin_events.emit_from(
                    consumer, command, params.get("payload"), params.get("oversized")
                )
            if target == STORAGE_TARGET:  # context.storage of a plugin on a Ray node
                return await self._kept_storage(consumer, command, params)
            if target.startswith("service:"):
                name, _, wanted = target[len("service:") :].partition("@")
                provided = self._service(consumer, name, wanted or "*", command)
                if provided.service is not None:
                    return await self._call_service(
                        consumer, name, provided.service, command, params
                    )
                target = provided.provider
            elif self.enabled:
                self._check_plugin(consumer, target, command)
            stamp = _STAMPED.get((target, command))
            if stamp is not None and self.enabled:
                params = {**params, stamp: consumer}
            result = await manager.call(target, command, params)
            return msgspec.to_builtins(result, str_keys=True)
        finally:
            if budget is not None:
                budget.in_flight -= 1

    async def _kept_storage(self, consumer: str, op: str, params: dict[str, Any]) -> Any:
        """One operation on the sender's own store, which the host keeps for a plugin on
        Ray (``isolation.remote_storage``): only its own, and only when it is kept here."""
        ray = self._manager.backends.get("ray")
        if not isinstance(ray, RayBackend) or not ray.data.kept_stores.keeps(consumer):
            raise self.deny(
                consumer,
                "context.storage through the host",
                None,
                "only a plugin placed on Ray keeps its store at the host; any other "
                "opens its own in its data directory",
            )
        return await ray.data.kept_stores.serve(consumer, op, params)

    def _admit(self, consumer: str) -> Budget | None:
        """The sender's budget with this call counted in flight, or a refusal when it
        calls too often or has too many calls open (None: the sender has no bounds)."""
        budget = self._manager.budget_for(consumer)
        if budget is None:
            return None
        if not budget.host_calls.allow():
            budget.drop("host_call_rate")
            raise self._limit(consumer, "host calls a second", budget.bounds.host_calls_per_second)
        if budget.in_flight >= budget.bounds.host_calls_in_flight:
            budget.drop("host_calls_in_flight")
            raise self._limit(consumer, "host calls at once", budget.bounds.host_calls_in_flight)
        budget.in_flight += 1
        return budget

    async def _call_service(
        self, consumer: str, name: str, service: Any, command: str, params: dict[str, Any]
    ) -> Any:
        """``command`` of the object that provides service ``name``, awaited if it must be."""
        method = getattr(service, command, None)
        if command.startswith("_") or not callable(method):
            raise self.deny(consumer, f"'{command}' of service '{name}'", None,
                            f"service '{name}' has no command '{command}'")  # fmt: skip
        result = method(**params)
        if inspect.isawaitable(result):
            result = await result
        return msgspec.to_builtins(result, str_keys=True)

    def _check_plugin(self, consumer: str, target: str, command: str) -> None:
        """:meth:`_plugin`, remembered while neither plugin's manifest nor the sender's
        placement (its grants) changes: the hot path of a host call is three lookups."""
        records = self._manager.records_by_id
        sender, callee = records.get(consumer), records.get(target)
        key = (consumer, target, command)
        seen = self._allowed.get(key)
        if (
            seen is not None
            and sender is not None
            and callee is not None
            and seen[0] is sender.placement
            and seen[1] is sender.manifest
            and seen[2] is callee.manifest
        ):
            return
        self._plugin(consumer, target, command)
        if sender is not None and callee is not None:
            if len(self._allowed) >= 4096:  # bounded: commands are the sender's strings
                self._allowed.clear()
            self._allowed[key] = (sender.placement, sender.manifest, callee.manifest)

    def issued(self, consumer: str, token: str) -> bool:
        """Whether the host issued this refusal token to ``consumer`` and it is not spent
        (it is now: a token is good once, ``isolation.refusals``)."""
        return self.refusals.redeem(consumer, token)

    # -- the inline path ------------------------------------------------------------------

    def check_service(
        self, consumer: str, name: str, wanted: Range
    ) -> Callable[[object], object] | None:
        """``context.services.require(name, range)`` of an inline plugin; what to wrap the
        service in when the plugin holds only some of the permissions its commands need
        (each is checked then: ``runtime.checked_service``), else None."""
        if not self.enabled:
            return None
        provider = self._service(consumer, name, str(wanted), None).provider
        rec = self._manager.records_by_id.get(consumer)
        effective = rec.placement.effective if rec is not None and rec.placement else ()
        if all(p is None or p in effective for p in permissions_of(provider)):
            return None
        return lambda service: CheckedService(
            service, lambda command: self._host_data(consumer, provider, command)
        )

    # -- the rules ------------------------------------------------------------------------

    def _manifest(self, consumer: str) -> PluginManifest | None:
        rec = self._manager.records_by_id.get(consumer)
        return rec.manifest if rec is not None else None

    def _service(self, consumer: str, name: str, wanted: str, command: str | None) -> Any:
        hub = self._manager.services
        try:
            wanted_range = Range.parse(wanted)
        except Exception:
            raise self.deny(consumer, f"service '{name}' at {wanted!r}", None,
                            "ask for a valid version range") from None  # fmt: skip
        if not self.enabled:
            return hub.lookup(consumer, name, wanted_range)
        provider = hub.provider_of(name)
        if provider == HOST_SERVICE:  # the host's own view: the permission is what counts
            provided = hub.lookup(consumer, name, wanted_range)
            self._host_data(consumer, provider, command)
            return provided
        rec = self._manager.records_by_id.get(consumer)  # (not _manifest: one call fewer)
        manifest = rec.manifest if rec is not None else None
        grant = service_grant(manifest, name, provider) if manifest is not None else False
        provided = hub.lookup(consumer, name, wanted_range)  # not there at all: say so first
        # one rule and one set of words with a worker's refusal at load
        refused = service_refusal(name, wanted, provided.version, grant)
        if refused is not None:
            raise self.deny(consumer, refused.what, None, refused.hint, declare=refused.declare)
        self._host_data(consumer, provided.provider, command)
        return provided

    def _plugin(self, consumer: str, target: str, command: str) -> None:
        if not self.enabled or target == consumer:
            return
        manifest = self._manifest(consumer)
        declared = None
        if manifest is not None:
            declared = manifest.dependencies.get(target) or manifest.optional_dependencies.get(
                target
            )
        if declared is None:
            raise self.deny(
                consumer,
                f"calling '{target}.{command}'",
                None,
                f'declare the dependency in the manifest: [dependencies] "{target}" = "RANGE"',
                declare=f'[dependencies] "{target}" = "RANGE"',
            )
        rec = self._manager.records_by_id.get(target)
        if rec is None or rec.manifest is None or rec.manifest.version not in declared:
            loaded = rec.version if rec is not None else "not loaded"
            raise self.deny(
                consumer,
                f"calling '{target}.{command}' ({loaded}, outside the declared range {declared})",
                None,
                f"install a version of '{target}' in {declared}, or widen the declared range",
            )
        self._host_data(consumer, target, command)

    def _host_data(self, consumer: str, provider: str, command: str | None) -> None:
        if command is None:  # at require: some command of it must be open to the plugin
            self._requirable(consumer, provider)
            return
        needed = host_data_permission(provider, command)
        if needed is _NO_GRANT or needed is None:
            return
        assert isinstance(needed, str)
        rec = self._manager.records_by_id.get(consumer)
        effective = rec.placement.effective if rec is not None and rec.placement else ()
        if needed in effective:
            return
        asked = rec.placement.asked if rec is not None and rec.placement else ()
        said = permission_refusal(consumer, f"'{provider}.{command}'", needed, needed in asked)
        raise self.deny(consumer, said.what, needed, said.hint)

    def _requirable(self, consumer: str, provider: str) -> None:
        """Refused unless some command of ``provider`` needs no permission or one the
        plugin holds (``isolation.host_data``); each call is still checked for its own."""
        rec = self._manager.records_by_id.get(consumer)
        placement = rec.placement if rec is not None else None
        lacks = needed_to_require(
            provider,
            placement.effective if placement is not None else (),
            placement.asked if placement is not None else (),
        )
        if lacks is None:
            return
        # one set of words with a worker's refusal at load (``isolation.offered_services``)
        said = permission_refusal(consumer, f"the service '{provider}'", *lacks)
        raise self.deny(consumer, said.what, lacks[0], said.hint)

    # -- refusals -------------------------------------------------------------------------

    def deny(
        self,
        consumer: str,
        what: str,
        permission: str | None,
        hint: str,
        *,
        declare: str | None = None,
    ) -> PermissionDenied:
        """The refusal (raise it) and its security event. A worker's host call that ends
        in it gets it stamped (:meth:`host_call`), so that, passed on unchanged, it is
        known again as the host's, and only then."""
        self.refused[consumer] += 1
        self._manager.security_event(
            consumer,
            {
                "kind": "denied",
                "operation": what,
                "permission": permission,
                "layer": "broker",
                "source": "host",
            },
        )
        details: dict[str, Any] = {
            "operation": what,
            "permission": permission,
            "layer": "broker",
        }
        if declare is not None:
            details["declare"] = declare
        return PermissionDenied(
            host_refused(what),
            plugin=consumer,
            hint=hint,
            details=details,
        )

    def _limit(self, consumer: str, what: str, bound: float) -> ResourceLimitExceeded:
        return ResourceLimitExceeded(
            f"over its bound of {bound:g} {what}; the call was refused",
            plugin=consumer,
            hint="raise it in the host config: [policy.bounds.plugins."
            f'"{consumer}"] (see docs/security.md)',
            details={"limit": "host_calls"},
        )


#: :meth:`Broker.check_service`: (consumer, service name, range wanted) → what to wrap
#: the service in (its commands checked one by one: ``runtime.checked_service``) when the
#: consumer holds only some of the permissions they need, else None; raises
#: :class:`PermissionDenied` when it may not have the service at all
ServiceCheck = Callable[[str, str, Range], Callable[[object], object] | None]
