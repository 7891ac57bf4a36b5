"""Whether a service a plugin requires is offered: one answer, in the host and in a worker.

``context.services.require(name, range)`` of an inline plugin asks the host's service
hub (``runtime.services``); a sandboxed worker cannot ask the host while its plugin's
``__init__`` or ``initialize`` runs, so the host sends it, with ``frames.Load``, what
is offered then (:func:`offered_by`), and the worker refuses a service not among it
at once, at load, in the inline plugin's words (:func:`unavailable`). Once the plugin is
initialized the worker stops checking (services come and go with their providers):
a later ``require`` is answered by its first call's host call, which the broker
checks (``runtime.broker``).
"""

from __future__ import annotations

from collections.abc import Mapping

from plugbay.api.errors import ServiceError
from plugbay.model.versions import Range, Version

__all__ = ["Offered", "offered_by", "unavailable"]

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


def offered_by(services: object) -> dict[str, list[str]] | None:
    """What a plugin's ``context.services`` offers, to send to its worker (None: that
    registry cannot say, and the worker leaves the check to the first call)."""
    offered = getattr(services, "offered", None)
    if not callable(offered):
        return None
    return {name: [version, provider] for name, (version, provider) in offered().items()}
