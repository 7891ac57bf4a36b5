"""Every failure plugbay reports is a :class:`PlugbayError`.

Each error carries a stable ``code`` (for scripts and the HTTP API), the plugin
it concerns, *what* happened, *where* (a file, a field, a parameter) and a
``hint`` saying what to do next. ``str(error)`` renders all of that as one
paragraph, so a user never needs a traceback to act on bad input.

This module imports nothing from plugbay: every layer, including a sandboxed
worker, can raise and re-create these errors.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, ClassVar

__all__ = [
    "CommandNotFound",
    "ConfigError",
    "DependencyCycleError",
    "DependentsError",
    "DuplicatePluginError",
    "HostStateError",
    "ManifestError",
    "MetricError",
    "MissingDependencyError",
    "ParameterError",
    "PermissionDenied",
    "PlugbayError",
    "PluginCallError",
    "PluginCrashed",
    "PluginInitError",
    "PluginLoadError",
    "PluginNotFound",
    "PluginReloadError",
    "PluginStateError",
    "PluginTimeout",
    "RangeError",
    "ResolutionError",
    "ResourceLimitExceeded",
    "ResultTypeError",
    "ServiceError",
    "StateError",
    "StorageFull",
    "VersionError",
    "error_from_dict",
]


class PlugbayError(Exception):
    """Base class of every error plugbay raises on purpose."""

    code: ClassVar[str] = "plugbay_error"

    def __init__(
        self,
        message: str,
        *,
        plugin: str | None = None,
        where: str | None = None,
        hint: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.plugin = plugin
        self.where = where
        self.hint = hint
        self.details: dict[str, Any] = details or {}

    def __str__(self) -> str:
        parts: list[str] = []
        if self.plugin:
            parts.append(f"plugin '{self.plugin}': ")
        parts.append(self.message)
        if self.where:
            parts.append(f" (at {self.where})")
        if self.hint:
            parts.append(f". {self.hint}" if not self.message.endswith(".") else f" {self.hint}")
        return "".join(parts)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments do not survive the default pickling of exceptions.
        return (_rebuild, (type(self), self.to_dict()))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form: what the CLI's ``--json`` and the HTTP API return."""
        return {
            "code": self.code,
            "type": type(self).__name__,
            "plugin": self.plugin,
            "message": self.message,
            "where": self.where,
            "hint": self.hint,
            "details": self.details,
            "text": str(self),
        }


def _rebuild(cls: type[PlugbayError], data: dict[str, Any]) -> PlugbayError:
    err = cls.__new__(cls)
    PlugbayError.__init__(
        err,
        data["message"],
        plugin=data.get("plugin"),
        where=data.get("where"),
        hint=data.get("hint"),
        details=data.get("details"),
    )
    return err


def error_from_dict(data: dict[str, Any]) -> PlugbayError:
    """Re-create an error from :meth:`PlugbayError.to_dict` (e.g. one sent by a worker)."""
    name = str(data.get("type"))
    cls = _BY_NAME.get(name)
    if cls is None:  # a subclass defined outside this module (e.g. isolation's SandboxError)
        _BY_NAME.update((c.__name__, c) for c in _all_subclasses(PlugbayError))
        cls = _BY_NAME.get(name, PlugbayError)
    return _rebuild(cls, data)


def did_you_mean(word: str, choices: Iterable[str], *, n: int = 3) -> str | None:
    """``"did you mean 'x'?"`` for the closest choices, or None when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=n)
    return f"did you mean {', '.join(repr(c) for c in close)}?" if close else None


#: what to do when no plugin id is near the one asked for
LIST_THE_PLUGINS = (
    "'plugbay list' shows the plugins this host knows (host.plugins() in an application)"
)


def plugin_not_known(
    plugin_id: str,
    known: Iterable[str],
    *,
    looked: str = "",
    where: str | None = None,
    otherwise: str = LIST_THE_PLUGINS,
) -> PluginNotFound:
    """The one wording of an id no plugin has (``plugbay call``, ``load``, ``info``,
    ``logs``, ``alerts``, ``history``): the closest ``known`` ids, else ``otherwise``;
    ``looked`` says where a command looked beyond the host (``": none is on disk"``)."""
    return PluginNotFound(
        f"no plugin '{plugin_id}' is known to this host{looked}",
        plugin=plugin_id,
        where=where,
        hint=did_you_mean(plugin_id, known) or otherwise,
    )


class ManifestError(PlugbayError):
    """A manifest cannot be read or does not describe a valid plugin."""

    code = "manifest_invalid"


class VersionError(PlugbayError):
    """A version string is not SemVer 2.0.0."""

    code = "version_invalid"


class RangeError(PlugbayError):
    """A version range is neither npm-style nor a PEP 440 specifier set."""

    code = "range_invalid"


class DuplicatePluginError(PlugbayError):
    """Two sources provide the same plugin id at the same version."""

    code = "plugin_duplicate"


class ResolutionError(PlugbayError):
    """No choice of versions satisfies every range; ``details`` names the culprits."""

    code = "dependency_conflict"


class MissingDependencyError(ResolutionError):
    """A required plugin (or service) is not known to the host at all."""

    code = "dependency_missing"


class DependencyCycleError(ResolutionError):
    """Plugins depend on each other in a cycle; ``details['cycle']`` is the path."""

    code = "dependency_cycle"


class PluginLoadError(PlugbayError):
    """A plugin's entry cannot be found or imported, or is not a plugin class."""

    code = "plugin_load_failed"


class PluginInitError(PlugbayError):
    """``initialize`` raised; the plugin is failed and its dependents are not started."""

    code = "plugin_init_failed"


class PluginTimeout(PlugbayError):
    """A lifecycle step or a command call ran past its time limit."""

    code = "plugin_timeout"


class PluginReloadError(PlugbayError):
    """A reload failed; the version that was serving keeps serving."""

    code = "reload_failed"


class PluginCrashed(PlugbayError):
    """A plugin's worker process died, or broke the wire protocol, while serving."""

    code = "plugin_crashed"


class ResourceLimitExceeded(PluginCrashed):
    """A sandboxed plugin hit one of its limits; ``details['limit']`` names it.

    The call in flight fails with this error and the worker is replaced.
    """

    code = "resource_limit"


class StorageFull(PlugbayError):
    """A write to ``context.storage`` does not fit in the plugin's storage quota (or the
    disk is full). The write left nothing behind; what was stored before is intact."""

    code = "storage_full"


class PermissionDenied(PlugbayError):
    """The sandbox refused an operation the plugin was not granted.

    ``details['operation']`` says what was tried, ``details['permission']`` what
    would allow it (``plugbay grant ID PERMISSION``), when anything can.
    """

    code = "permission_denied"


class ConfigError(PlugbayError):
    """A plugin's config does not satisfy the schema in its manifest, or the host's
    config (``plugbay.toml``) is wrong or lacks a value the host needs, such as that of
    a secret it granted (``context.secrets.get``)."""

    code = "config_invalid"


class PluginNotFound(PlugbayError):
    """No plugin with this id is known to the host."""

    code = "plugin_not_found"


class PluginStateError(PlugbayError):
    """The plugin exists but is not in a state that allows the request."""

    code = "plugin_state"


class HostStateError(PlugbayError):
    """The host cannot take the request where it was made: it is not started, it was
    stopped, or it was called on another event loop than the one it started on (another
    thread's, or a second ``asyncio.run``'s, the first having closed the host's). The
    message says which; the hint says how to reach the host from there."""

    code = "host_state"


class DependentsError(PluginStateError):
    """Unloading was refused because active plugins depend on this one."""

    code = "plugin_has_dependents"

    #: how each surface asks to stop the dependents too: the one place for these words
    CASCADE: ClassVar[dict[str, str]] = {
        "python": "cascade=True",
        "cli": "--cascade",
        "http": '"cascade": true in the request body',
    }

    @classmethod
    def refusing(cls, plugin_id: str, verb: str, dependents: list[str]) -> DependentsError:
        """``verb`` (unload, disable) of ``plugin_id`` refused for ``dependents``; its hint
        names the cascade as Python spells it (:meth:`asked_through` respells it)."""
        return cls(
            f"cannot be {verb.rstrip('e')}ed: {', '.join(dependents)} "
            f"{'depends' if len(dependents) == 1 else 'depend'} on it",
            plugin=plugin_id,
            hint=_cascade_hint(verb, "python"),
            details={"dependents": dependents, "cascade_for": verb},
        )

    def asked_through(self, surface: str) -> DependentsError:
        """This refusal with its hint naming the cascade as ``surface`` (a key of
        :attr:`CASCADE`) spells it; one that offers no cascade is left as it is."""
        verb = self.details.get("cascade_for")
        if isinstance(verb, str) and surface in self.CASCADE:
            self.hint = _cascade_hint(verb, surface)
        return self


def _cascade_hint(verb: str, surface: str) -> str:
    return f"{verb} those first, or ask for a cascade ({DependentsError.CASCADE[surface]})"


class CommandNotFound(PlugbayError, AttributeError):
    """The plugin has no command of that name. An ``AttributeError`` too: a proxy's
    commands are its attributes, so ``hasattr(proxy, name)`` and ``getattr(proxy, name,
    default)`` work as Python code expects."""

    code = "command_not_found"


class ParameterError(PlugbayError):
    """A call's parameters are missing, extra or of the wrong type."""

    code = "parameter_invalid"


class ResultTypeError(PlugbayError):
    """A command returned a value that does not match its declared return type."""

    code = "result_invalid"


class PluginCallError(PlugbayError):
    """The plugin's own code raised while running a command."""

    code = "plugin_raised"


class ServiceError(PlugbayError):
    """A service is not provided, or not at a version the caller accepts."""

    code = "service_unavailable"


class StateError(PlugbayError):
    """The host's state store cannot be opened or written."""

    code = "state_error"


class MetricError(PlugbayError):
    """A plugin's own metric clashes with another of a different kind, or has a bad name
    or label (``context.metrics``)."""

    code = "metric_invalid"


def _all_subclasses(cls: type[PlugbayError]) -> list[type[PlugbayError]]:
    out = [cls]
    for sub in cls.__subclasses__():
        out.extend(_all_subclasses(sub))
    return out


_BY_NAME: dict[str, type[PlugbayError]] = {c.__name__: c for c in _all_subclasses(PlugbayError)}
