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
checks (``runtime.broker``). Which services a plugin may have (:func:`service_grant`)
and the words for one it may not (:func:`service_refusal`, :func:`host_refused`) are
here once, for the broker and the worker alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final, NamedTuple

from plugbay.api.errors import ServiceError
from plugbay.model.versions import Range, Version

if TYPE_CHECKING:
    from plugbay.model.manifest import PluginManifest

__all__ = [
    "HOST_SERVICE",
    "Offered",
    "Refused",
    "host_refused",
    "offered_by",
    "refused_at_load",
    "service_grant",
    "service_refusal",
    "unavailable",
]

#: the service the host itself provides (``Host``'s read-only view): a plugin has it by
#: the permission its command needs (``runtime.broker``), not by declaring it
HOST_SERVICE: Final = "plugbay.host"
#: sent to a worker for a service its plugin may have at any version, a pre-release too
#: (``*`` holds none): what a dependency of it provides (:func:`service_grant`'s True)
_ANY_VERSION: Final = "any"

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
    grant = declared == _ANY_VERSION or (Range.parse(declared) if declared else False)
    said = service_refusal(name, str(wanted), Version.parse(version), grant)
    if said is None:
        return None
    # the broker's words; a ServiceError, not its PermissionDenied: nothing was asked of
    # the host, which vouches only for refusals it made itself (``isolation.refusals``)
    details = {"operation": said.what}
    if said.declare is not None:
        details["declare"] = said.declare
    return ServiceError(host_refused(said.what), plugin=consumer, hint=said.hint, details=details)


class Refused(NamedTuple):
    """Why a plugin may not have a service, in the broker's words."""

    #: what was refused (the error's ``operation``)
    what: str
    #: what to do
    hint: str
    #: the manifest line to add (None: it declares the service, in another range)
    declare: str | None = None


def host_refused(what: str) -> str:
    """The message of the host's refusal of ``what`` (the broker's, ``runtime.broker``)."""
    return f"the host refused {what}: not declared or granted"


def service_grant(manifest: PluginManifest, name: str, provider: str | None) -> Range | bool:
    """Which versions of service ``name``, provided by ``provider``, ``manifest``'s plugin
    may have: the range declared under ``[services] requires`` or ``optional``; True: any
    (a declared dependency provides it); False: none. (The host's own
    :data:`HOST_SERVICE` is had by permission instead: the broker checks that first.)"""
    declared = manifest.requires.get(name) or manifest.optional_services.get(name)
    if declared is not None:
        return declared
    return provider is not None and (
        provider in manifest.dependencies or provider in manifest.optional_dependencies
    )


def service_refusal(
    name: str, wanted: str, version: Version, grant: Range | bool
) -> Refused | None:
    """Why a plugin with ``grant`` (:func:`service_grant`) may not have service ``name`` at
    ``version``, asked for in range ``wanted`` (None: it may)."""
    if grant is False:
        line = f'[services] requires = {{ {name} = "{wanted}" }}'
        return Refused(f"the service '{name}'", f"declare it in the manifest: {line}", line)
    if grant is True or version in grant:
        return None
    return Refused(
        f"the service '{name}' {version} (its manifest declares {grant})",
        f'declare the range it works with: [services] requires = {{ {name} = "..." }}',
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
    it (:func:`service_grant`): :data:`_ANY_VERSION` for one a dependency of it or the
    host provides, "" none."""
    if manifest is None or provider == HOST_SERVICE:  # the host's: the first call says
        return _ANY_VERSION
    grant = service_grant(manifest, name, provider)
    return str(grant) if isinstance(grant, Range) else _ANY_VERSION if grant else ""
