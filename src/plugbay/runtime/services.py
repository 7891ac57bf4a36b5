"""The typed service registry behind ``context.services``.

A service is a name and a SemVer version. A plugin that declares
``[services] provides`` in its manifest provides its own commands under that
name: consumers get a proxy that calls through the host, so the same code works
whatever the provider's isolation. ``provide()`` adds an in-process object at
run time instead.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from plugbay.api.errors import ServiceError
from plugbay.isolation.offered_services import unavailable
from plugbay.model.versions import Range, Version

__all__ = ["ServiceHub", "ServiceView"]


@dataclass(slots=True)
class _Provided:
    name: str
    version: Version
    provider: str
    service: object | None  # None: the provider's commands, through a proxy


class ServiceHub:
    """Every service in one host."""

    def __init__(self, proxy_for: Callable[[str], Any]) -> None:
        self._proxy_for = proxy_for
        self._services: dict[str, _Provided] = {}

    def provide(self, provider: str, name: str, version: Version, service: object | None) -> None:
        current = self._services.get(name)
        if current is not None and current.provider != provider:
            raise ServiceError(
                f"service '{name}' is already provided by '{current.provider}' {current.version}",
                plugin=provider,
                hint="two plugins cannot provide one service name; rename one of them",
            )
        self._services[name] = _Provided(name, version, provider, service)

    def withdraw(self, provider: str, *, names: Collection[str] | None = None) -> None:
        """Withdraw the provider's services (only ``names``, when given)."""
        for name in [
            n
            for n, p in self._services.items()
            if p.provider == provider and (names is None or n in names)
        ]:
            del self._services[name]

    def require(self, consumer: str, name: str, wanted: Range) -> Any:
        provided = self.lookup(consumer, name, wanted)
        if provided.service is not None:
            return provided.service
        return self._proxy_for(provided.provider)

    def lookup(self, consumer: str, name: str, wanted: Range) -> _Provided:
        """Who provides ``name`` in range ``wanted``, or :class:`ServiceError` saying why nobody."""
        provided = self._services.get(name)
        if provided is None or provided.version not in wanted:
            refused = unavailable(consumer, name, wanted, self.offered())
            assert refused is not None
            raise refused
        return provided

    def offered(self) -> dict[str, tuple[str, str]]:
        """Every service: its version and provider (``isolation.offered_services``)."""
        return {n: (str(p.version), p.provider) for n, p in self._services.items()}

    def available(self) -> dict[str, str]:
        return {n: str(p.version) for n, p in sorted(self._services.items())}

    def provider_of(self, name: str) -> str | None:
        p = self._services.get(name)
        return p.provider if p else None


class ServiceView:
    """One plugin's window on the hub: ``context.services``."""

    __slots__ = ("_check", "_hub", "_plugin")

    def __init__(
        self,
        hub: ServiceHub,
        plugin_id: str,
        check: Callable[[str, str, Range], Callable[[object], object] | None] | None = None,
    ) -> None:
        self._hub = hub
        self._plugin = plugin_id
        #: the broker's rule (``runtime.broker``): a service the manifest did not declare is
        #: refused; one of host data it holds only some permissions for comes wrapped
        self._check = check

    def provide(self, name: str, service: object, version: str = "1.0.0") -> None:
        self._hub.provide(self._plugin, name, Version.parse(version), service)

    def require(self, name: str, range: str = "*", kind: type[Any] | None = None) -> Any:
        wanted = Range.parse(range)
        checked = self._check(self._plugin, name, wanted) if self._check is not None else None
        service = self._hub.require(self._plugin, name, wanted)
        if checked is not None:  # each command checked (``runtime.checked_service``)
            service = checked(service)
        if kind is not None and isinstance(kind, type) and getattr(kind, "_is_protocol", False):
            return service  # a structural type: the proxy answers for it
        if (
            kind is not None
            and isinstance(kind, type)
            and not isinstance(service, kind)
            and not _is_proxy(service)
        ):
            raise ServiceError(
                f"service '{name}' is a {type(service).__name__}, not a {kind.__name__}",
                plugin=self._plugin,
                hint="ask for the type the provider documents, or a Protocol it satisfies",
            )
        return service

    def available(self) -> dict[str, str]:
        return self._hub.available()

    def offered(self) -> dict[str, tuple[str, str]]:
        """What a sandboxed worker is told at load (``isolation.offered_services``)."""
        return self._hub.offered()


def _is_proxy(obj: object) -> bool:
    return getattr(type(obj), "__plugbay_proxy__", False) is True
