"""Importing a plugin's code, per loaded version, into a fresh module namespace.

Each version is imported as ``plugbay_plugins.<slug>``, so two versions of one
plugin never share a module and unloading leaves nothing behind in
``sys.modules``. Manifests come from :mod:`plugbay.model.discover`, which never
imports plugin code.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import inspect
import itertools
import os
import re
import sys
import sysconfig
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from plugbay.api import Plugin, command_specs
from plugbay.api._command import CommandSpec
from plugbay.api._events import event_handlers
from plugbay.api._plugin import ExtensionPlugin, IntegrationPlugin, SystemPlugin, UtilityPlugin
from plugbay.api.errors import PlugbayError, PluginLoadError
from plugbay.model._manifest_lines import key_at
from plugbay.model.manifest import PluginManifest

__all__ = [
    "MISSING_PACKAGE_HINT",
    "NAMESPACE",
    "LoadedCode",
    "check_plugin_class",
    "import_plugin",
    "plugin_frame",
    "raised_at",
    "unload_code",
]

NAMESPACE: Final = "plugbay_plugins"
#: what to do when the plugin's code imports a package that is not there (a Ray node
#: says its own: ``isolation._ray_missing``)
MISSING_PACKAGE_HINT: Final = (
    "install that package in the host's environment, or import your own modules "
    "relatively ('from . import x')"
)
_BASE_FOR_TYPE: Final[dict[str, type[Plugin]]] = {
    "system": SystemPlugin,
    "integration": IntegrationPlugin,
    "extension": ExtensionPlugin,
    "utility": UtilityPlugin,
}
_generation = itertools.count(1)


# --------------------------------------------------------------------------- import


@dataclass(frozen=True, slots=True)
class LoadedCode:
    """A plugin class imported for one manifest, and the namespace that holds it."""

    manifest: PluginManifest
    cls: type[Plugin]
    commands: dict[str, CommandSpec]
    namespace: str | None  # None for entry-point plugins imported by their own name


def import_plugin(manifest: PluginManifest) -> LoadedCode:
    """Import the manifest's entry class and check it against the manifest.

    Directory plugins are imported as a fresh package ``plugbay_plugins.<slug>``
    whose ``__path__`` is the plugin's directory, so the plugin's own relative
    imports work and nothing leaks between versions. Every failure is a
    :class:`PluginLoadError` naming the file and what to change; the namespace
    is removed again on failure.
    """
    namespace: str | None = None
    try:
        if manifest.origin == "directory" and manifest.root is not None:
            namespace = _new_namespace(manifest)
            module_name = f"{namespace}.{manifest.module}"
        else:
            module_name = manifest.module
        module = _import(module_name, manifest)
        cls = _resolve_attribute(module, manifest)
        commands = check_plugin_class(cls, manifest)
    except BaseException:
        if namespace is not None:
            unload_code(namespace)
        raise
    return LoadedCode(manifest, cls, commands, namespace)


def unload_code(namespace: str) -> int:
    """Drop a plugin's namespace from ``sys.modules``; returns how many modules went."""
    # a copy first (one C call): another thread may import meanwhile (the store's keeper,
    # a backup), and a dict that changes size under the iteration raises
    names = list(sys.modules)
    doomed = [name for name in names if name == namespace or name.startswith(namespace + ".")]
    for name in doomed:
        del sys.modules[name]
    importlib.invalidate_caches()
    return len(doomed)


def _new_namespace(manifest: PluginManifest) -> str:
    if NAMESPACE not in sys.modules:
        root_pkg = types.ModuleType(NAMESPACE, "Synthetic parent of every directory plugin's code.")
        root_pkg.__path__ = []
        root_pkg.__spec__ = importlib.machinery.ModuleSpec(NAMESPACE, None, is_package=True)
        sys.modules[NAMESPACE] = root_pkg
    slug = re.sub(r"\W", "_", f"{manifest.id}_{manifest.version}")
    name = f"{NAMESPACE}.{slug}_g{next(_generation)}"
    assert manifest.root is not None
    pkg = types.ModuleType(name, f"Code of plugin {manifest.id} {manifest.version}")
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = [str(manifest.root)]
    pkg.__spec__ = spec
    pkg.__path__ = [str(manifest.root)]
    pkg.__file__ = None
    sys.modules[name] = pkg
    return name


def _entry_file(module_name: str, manifest: PluginManifest) -> types.ModuleType | None:
    """A directory plugin's entry module when it is one ``.py`` file beside its manifest:
    loaded from that file as the import system would load it (the same spec, loader,
    cached bytecode and attributes), without asking every finder on ``sys.meta_path``
    and building a directory finder first. A sandboxed worker runs this once, and each
    function of the import machinery it skips is a page it does not copy from the
    zygote (about 0.1 MiB). None where the import system might find something else
    first (a package or an extension module of that name): it then decides."""
    parent_name, _, child = module_name.rpartition(".")
    parent = sys.modules.get(parent_name)
    if manifest.origin != "directory" or manifest.root is None or parent is None:
        return None
    base = os.path.join(manifest.root, child)
    source = base + ".py"
    if os.path.lexists(base) or not os.path.isfile(source):
        return None
    if any(os.path.lexists(base + suffix) for suffix in importlib.machinery.EXTENSION_SUFFIXES):
        return None
    spec = importlib.util.spec_from_file_location(module_name, source)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    module = sys.modules[module_name]  # as the import system: a module may replace itself
    setattr(parent, child, module)
    return module


def _import(module_name: str, manifest: PluginManifest) -> types.ModuleType:
    where = str(manifest.root or manifest.location)
    try:
        return _entry_file(module_name, manifest) or importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or "?"
        if module_name.endswith(manifest.module) and missing.endswith(manifest.module):
            raise PluginLoadError(
                f"entry module '{manifest.module}' does not exist",
                plugin=manifest.id,
                where=where,
                hint=f"create {manifest.module.replace('.', '/')}.py there, or fix entry in the manifest",
            ) from None
        raise PluginLoadError(
            f"importing '{manifest.module}' failed: no module named '{missing}'",
            plugin=manifest.id,
            where=plugin_frame(exc, manifest) or where,
            hint=MISSING_PACKAGE_HINT,
            details={"traceback": _tb(exc)},
        ) from None
    except SyntaxError as exc:
        raise PluginLoadError(
            f"syntax error in '{manifest.module}': {exc.msg}",
            plugin=manifest.id,
            where=f"{exc.filename}:{exc.lineno}" if exc.filename else where,
            hint="fix the syntax; the host keeps serving every other plugin meanwhile",
            details={"traceback": _tb(exc)},
        ) from None
    except Exception as exc:
        raise PluginLoadError(
            f"importing '{manifest.module}' raised {type(exc).__name__}: {exc}",
            plugin=manifest.id,
            where=plugin_frame(exc, manifest) or where,
            hint="fix the error at module level; see the traceback with 'plugbay info "
            f"{manifest.id} --traceback'",
            details={
                "exception": type(exc).__name__,
                "raised_at": raised_at(exc, manifest),
                "traceback": _tb(exc),
            },
        ) from None


def _resolve_attribute(module: types.ModuleType, manifest: PluginManifest) -> type[Plugin]:
    obj: object = module
    for part in manifest.attribute.split("."):
        if not hasattr(obj, part):
            # plugbay's own bases (imported to subclass) are no entry to suggest
            names = sorted(
                n
                for n, v in vars(module).items()
                if isinstance(v, type)
                and issubclass(v, Plugin)
                and v.__module__.partition(".")[0] != "plugbay"
            )
            raise PluginLoadError(
                f"module '{manifest.module}' has no attribute '{manifest.attribute}'",
                plugin=manifest.id,
                where=key_at(manifest, ("entry",)),  # the line to fix
                hint=f"plugin classes in that module: {', '.join(names) or 'none'}; fix entry",
            )
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, Plugin)):
        raise PluginLoadError(
            f"entry '{manifest.entry}' is {type(obj).__name__}, not a Plugin subclass",
            plugin=manifest.id,
            where=getattr(module, "__file__", None) or manifest.location,
            hint="subclass plugbay.Plugin (or SystemPlugin, IntegrationPlugin, ExtensionPlugin)",
        )
    return obj


def check_plugin_class(cls: type[Plugin], manifest: PluginManifest) -> dict[str, CommandSpec]:
    """Refuse a class that does not honour its manifest, naming what is wrong."""

    def where() -> str:  # read only for an error: a worker's start calls none of inspect
        return inspect.getsourcefile(cls) or manifest.location

    base = _BASE_FOR_TYPE[manifest.type]
    if not issubclass(cls, base):
        raise PluginLoadError(
            f"the manifest says type '{manifest.type}' but {cls.__name__} is not a {base.__name__}",
            plugin=manifest.id,
            where=where(),
            hint=f"subclass plugbay.{base.__name__}, or change type in the manifest",
        )
    for attr in ("id", "version"):
        declared = cls.__dict__.get(attr)
        if isinstance(declared, str) and declared != str(getattr(manifest, attr)):
            raise PluginLoadError(
                f"{cls.__name__}.{attr} is '{declared}' but the manifest says '{getattr(manifest, attr)}'",
                plugin=manifest.id,
                where=where(),
                hint=f"make them agree, or drop {attr} from the class (the manifest is the source of truth)",
            )
    abstract = getattr(cls, "__abstractmethods__", ())  # what inspect.isabstract reads
    if abstract:
        missing = ", ".join(sorted(abstract))
        raise PluginLoadError(
            f"{cls.__name__} does not implement {missing}",
            plugin=manifest.id,
            where=where(),
            hint=f"a {base.__name__} must implement every method of its interface",
        )
    try:
        specs = command_specs(cls)
        _check_event_handlers(cls, manifest, where)
    except PlugbayError as exc:
        exc.plugin = manifest.id
        raise
    return specs


def _check_event_handlers(
    cls: type[Plugin], manifest: PluginManifest, where: Callable[[], str]
) -> None:
    """Every event the manifest listens to has an ``@on_event`` handler, and no handler
    waits for an event the manifest does not listen to (refused when loaded, not when
    the first event comes)."""
    handlers = event_handlers(cls)
    missing = sorted(set(manifest.listens) - set(handlers))
    if missing:
        raise PluginLoadError(
            f"the manifest listens to {', '.join(missing)} but {cls.__name__} has no handler",
            where=where(),
            hint=f'mark a method @on_event("{missing[0]}") taking one parameter, event',
        )
    unheard = sorted(set(handlers) - set(manifest.listens))
    if unheard:
        raise PluginLoadError(
            f"{cls.__name__} handles {', '.join(unheard)}, which the manifest does not listen to",
            where=where(),
            hint=f'add [events.listens."{unheard[0]}"] to the manifest, or drop the handler',
        )


def _tb(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


_PLUGBAY_DIR: Final = str(Path(__file__).resolve().parent)
_STDLIB_DIR: Final = sysconfig.get_paths()["stdlib"]


def _innermost_plugin_frame(
    exc: BaseException, manifest: PluginManifest
) -> traceback.FrameSummary | None:
    """The deepest traceback frame in the plugin's own code: its directory, or (an
    installed plugin) anything outside plugbay and the stdlib."""
    root = str(manifest.root) if manifest.root is not None else None
    best = None
    for frame in traceback.extract_tb(exc.__traceback__):
        name = frame.filename
        if root is not None:
            mine = name.startswith(root)
        else:
            mine = not name.startswith((_PLUGBAY_DIR, _STDLIB_DIR, "<"))
        if mine:
            best = frame
    return best


def plugin_frame(exc: BaseException, manifest: PluginManifest) -> str | None:
    """``file:line`` of the deepest traceback frame in the plugin's own code: its
    directory, or (an installed plugin) anything outside plugbay and the stdlib."""
    frame = _innermost_plugin_frame(exc, manifest)
    return f"{frame.filename}:{frame.lineno}" if frame is not None else None


def raised_at(exc: BaseException, manifest: PluginManifest) -> dict[str, Any] | None:
    """Where in the plugin's own code ``exc`` was raised (its innermost frame there), as
    JSON-ready ``file``, ``line``, ``function`` and ``code`` (the line's text); None
    when no frame of the traceback is the plugin's. What an error's
    ``details["raised_at"]`` holds, so a plugin author reads the line without the
    whole traceback."""
    frame = _innermost_plugin_frame(exc, manifest)
    if frame is None:
        return None
    return {
        "file": frame.filename,
        "line": frame.lineno,
        "function": frame.name,
        "code": (frame.line or "").strip(),
    }
