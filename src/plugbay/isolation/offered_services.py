"""Whether a service a plugin requires is offered: one answer, in the host and in a worker.

``context.services.require(name, range)`` of an inline plugin asks the host's service
hub (``runtime.services``); a sandboxed worker cannot ask the host while its plugin's
``__init__`` or ``initialize`` runs, so the host sends it, with ``frames.Load``, what
is offered then (:func:`offered_by`), and the worker refuses a service not among it
at once, at load, in the inline plugin's words (:func:`unavailable`); with each, the range
its manifest declares for it, so one it did not declare under ``[services]`` is refused
then too, in the broker's words (:func:`refused_at_load`). Once the plugin is
initialized the worker stops checking (services come and go with their providers):
a later ``require`` is answered by its first call's host call, which the broker
checks (``runtime.broker``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from plugbay.api.errors import ServiceError
from plugbay.model.versions import Range, Version

if TYPE_CHECKING:
    from plugbay.model.manifest import PluginManifest

__all__ = ["Offered", "offered_by", "refused_at_load", "unavailable"]

#: ``runtime.broker.HOST_SERVICE``: the host's own view, granted by permission, not declared
_HOST_SERVICE = "plugbay.host"

#: service name → (its version, its provider's id)
Offered = Mapping[str, tuple[str, str]]


def unavailable(consumer: str, name: str, wanted: Range, offered: Offered) -> ServiceError | None:
    """Why ``consumer`` cannot have service ``name`` in ``wanted`` (None: it can)."""
    provided = offered.get(name)
    if provided is None:
        return ServiceError(
            f"service '{name}' {wanted} is not available",
            plugin=consumer,
            hint=f"declare it under [services] requires so the host loads a provider first; "
            f"available now: {', '.join(sorted(offered)) or 'none'}",
        )
    version, provider = provided
    if Version.parse(version) not in wanted:
        return ServiceError(
            f"service '{name}' is provided by '{provider}' at {version}, "
            f"which is not in the range {wanted}",
            plugin=consumer,
            hint=f"install a version of '{provider}' that provides '{name}' {wanted}, "
            "or relax the range",
        )
    return None


def refused_at_load(
    consumer: str, name: str, wanted: Range, offered: Mapping[str, list[str]]
) -> ServiceError | None:
    """Why a worker's plugin cannot have service ``name`` in ``wanted`` at load, as an
    inline plugin is told (None: it can); ``offered`` is what :func:`offered_by` sent."""
    refused = unavailable(consumer, name, wanted, {n: (v[0], v[1]) for n, v in offered.items()})
    if refused is not None or len(offered[name]) < 3:  # (not told what it declares)
        return refused
    version, _, declared = offered[name][:3]
    if not declared:  # the broker's words (``runtime.broker``)
        return _denied(
            consumer,
            f"the service '{name}'",
            f'declare it in the manifest: [services] requires = {{ {name} = "{wanted}" }}',
            declare=f'[services] requires = {{ {name} = "{wanted}" }}',
        )
    if Version.parse(version) not in Range.parse(declared):
        return _denied(
            consumer,
            f"the service '{name}' {version} (its manifest declares {declared})",
            f'declare the range it works with: [services] requires = {{ {name} = "..." }}',
        )
    return None


def _denied(consumer: str, what: str, hint: str, declare: str | None = None) -> ServiceError:
    """The broker's words for a service an inline plugin may not have. Raised in the worker
    it is a ServiceError, not the broker's PermissionDenied: nothing was asked of the host,
    which vouches only for refusals it made itself (``isolation.refusals``)."""
    return ServiceError(
        f"the host refused {what}: not declared or granted",
        plugin=consumer,
        hint=hint,
        details={"operation": what} if declare is None else {"operation": what, "declare": declare},
    )


def offered_by(
    services: object, manifest: PluginManifest | None = None
) -> dict[str, list[str]] | None:
    """What a plugin's ``context.services`` offers, to send to its worker: name →
    [version, provider, the range ``manifest`` declares for it] (None: that registry
    cannot say, and the worker leaves the check to the first call)."""
    offered = getattr(services, "offered", None)
    if not callable(offered):
        return None
    return {
        name: [version, provider, _declared(manifest, name, provider)]
        for name, (version, provider) in offered().items()
    }


def _declared(manifest: PluginManifest | None, name: str, provider: str) -> str:
    """The range ``manifest`` lets its plugin have service ``name`` in, as the broker reads
    it: ``*`` for one a dependency of it or the host provides, "" none."""
    if manifest is None or provider == _HOST_SERVICE:  # the host's: the first call says
        return "*"
    declared = manifest.requires.get(name) or manifest.optional_services.get(name)
    if declared is not None:
        return str(declared)
    if provider in manifest.dependencies or provider in manifest.optional_dependencies:
        return "*"
    return ""
