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

from plugbay.api.errors import PermissionDenied, PlugbayError, ServiceError
from plugbay.isolation.host_data import needed_to_require
from plugbay.model.versions import Range, Version

if TYPE_CHECKING:
    from plugbay.isolation.policy import Placement
    from plugbay.model.manifest import PluginManifest

__all__ = [
    "HOST_SERVICE",
    "AtLoad",
    "Offered",
    "Refused",
    "host_refused",
    "offered_by",
    "permission_refusal",
    "refused_at_load",
    "reported",
    "service_grant",
    "service_refusal",
    "told_the_host",
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


class AtLoad:
    """What :func:`offered_by` sent a worker, read once at load: by service name, its
    version and provider, and the range the plugin's manifest declares for it."""

    __slots__ = ("declared", "lacks", "offered")

    def __init__(self, sent: Mapping[str, list[str]]) -> None:
        self.offered: Final[dict[str, tuple[str, str]]] = {n: (v[0], v[1]) for n, v in sent.items()}
        #: (a service missing here: not told what it declares, its first call says)
        self.declared: Final[dict[str, str]] = {n: v[2] for n, v in sent.items() if len(v) > 2}
        #: the permission a service needs that the plugin lacks, and whether it asked for it
        self.lacks: Final[dict[str, tuple[str, bool]]] = {
            n: (v[3], v[4] == "asked") for n, v in sent.items() if len(v) > 4
        }


def refused_at_load(
    consumer: str, name: str, wanted: Range, at_load: AtLoad
) -> ServiceError | PermissionDenied | None:
    """Why a worker's plugin cannot have service ``name`` in ``wanted`` at load, as an
    inline plugin is told (None: it can): the broker's refusal is a
    :class:`PermissionDenied` with its words and details, as inline, which the worker
    reports to the host (:func:`reported`)."""
    refused = unavailable(consumer, name, wanted, at_load.offered)
    declared = at_load.declared.get(name)
    if refused is not None or declared is None:
        return refused
    needed: str | None = None
    grant = declared == _ANY_VERSION or (Range.parse(declared) if declared else False)
    said = service_refusal(name, str(wanted), Version.parse(at_load.offered[name][0]), grant)
    lacks = at_load.lacks.get(name)
    if said is None and lacks is not None:  # host data: had by permission (``host_data``)
        needed = lacks[0]
        said = permission_refusal(consumer, f"the service '{name}'", needed, lacks[1])
    if said is None:
        return None
    details: dict[str, object] = {"operation": said.what, "permission": needed, "layer": "broker"}
    if said.declare is not None:
        details["declare"] = said.declare
    return PermissionDenied(
        host_refused(said.what), plugin=consumer, hint=said.hint, details=details
    )


def told_the_host(refused: PlugbayError) -> ServiceError:
    """A worker's refusal at load (:func:`refused_at_load`'s), let propagate by its
    plugin, as its worker tells the host: the host did not make it (nothing was asked of
    it) and vouches only for refusals it made (``isolation.refusals``), so it is a
    :class:`ServiceError` in the same words, and the failed load reads as the inline
    one's, not as a denial the plugin forged."""
    return ServiceError(
        refused.message, plugin=refused.plugin, hint=refused.hint, details=refused.details
    )


def reported(refused: PlugbayError) -> dict[str, object] | None:
    """The security event a worker reports for its refusal at load (None: not one of the
    broker's): the broker's event for it, which the host records as the worker's report
    (``source = "worker"``) against the plugin that owns the channel, never another."""
    if not isinstance(refused, PermissionDenied) or refused.details.get("layer") != "broker":
        return None
    details = refused.details
    return {
        "kind": "denied",
        "operation": details["operation"],
        "permission": details.get("permission"),
        "layer": "broker",
    }


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


def permission_refusal(consumer: str, target: str, needed: str, asked: bool) -> Refused:
    """Why ``consumer`` may not have ``target``, which needs host permission ``needed``
    it lacks (``asked``: its manifest asks for it, not granted yet)."""
    if asked:
        hint = f"the operator can run 'plugbay grant {consumer} {needed}'"
    else:
        hint = (
            f'ask for it in the manifest ([permissions] host = ["{needed.partition(":")[2]}"]), '
            f"then the operator runs 'plugbay grant {consumer} {needed}'"
        )
    return Refused(f"{target}, which needs {needed}", hint)


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
    services: object, manifest: PluginManifest | None = None, placement: Placement | None = None
) -> dict[str, list[str]] | None:
    """What a plugin's ``context.services`` offers, to send to its worker: name →
    [version, provider, the range ``manifest`` declares for it], and for a service of
    host data that ``placement`` holds no permission to require (``isolation.host_data``),
    the permission to name and "asked" if the manifest asks for it (None: that registry
    cannot say, and the worker leaves the check to the first call)."""
    offered = getattr(services, "offered", None)
    if not callable(offered):
        return None
    sent = {
        name: [version, provider, _declared(manifest, name, provider)]
        for name, (version, provider) in offered().items()
    }
    if placement is not None:
        for row in sent.values():
            lacks = needed_to_require(row[1], placement.effective, placement.asked)
            if lacks is not None:
                row += [lacks[0], "asked" if lacks[1] else ""]
    return sent


def _declared(manifest: PluginManifest | None, name: str, provider: str) -> str:
    """The range ``manifest`` lets its plugin have service ``name`` in, as the broker reads
    it (:func:`service_grant`): :data:`_ANY_VERSION` for one a dependency of it or the
    host provides, "" none."""
    if manifest is None or provider == HOST_SERVICE:  # the host's: the first call says
        return _ANY_VERSION
    grant = service_grant(manifest, name, provider)
    return str(grant) if isinstance(grant, Range) else _ANY_VERSION if grant else ""
