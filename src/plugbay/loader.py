"""Finding plugins and importing their code.

Discovery is static: it reads manifests from plugin directories and from the
``plugbay.plugins`` entry-point group and never imports plugin code. Import
happens later, per loaded version, into a fresh module namespace
(``plugbay_plugins.<slug>``), so two versions of one plugin never share a
module and unloading leaves nothing behind in ``sys.modules``.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.metadata
import inspect
import itertools
import json
import os
import re
import sys
import sysconfig
import traceback
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from plugbay.api import Plugin, command_specs
from plugbay.api._command import CommandSpec
from plugbay.api._plugin import ExtensionPlugin, IntegrationPlugin, SystemPlugin, UtilityPlugin
from plugbay.errors import ManifestError, PlugbayError, PluginLoadError
from plugbay.manifest import PluginManifest, load_manifest_file, parse_manifest

__all__ = [
    "ENTRY_POINT_GROUP",
    "NAMESPACE",
    "Discovery",
    "LoadedCode",
    "discover",
    "discover_directory",
    "discover_entry_points",
    "import_plugin",
    "plugin_frame",
    "unload_code",
]

ENTRY_POINT_GROUP: Final = "plugbay.plugins"
NAMESPACE: Final = "plugbay_plugins"
_SKIP_DIRS: Final = frozenset({"__pycache__", ".git", ".venv", "node_modules", "build", "dist"})
_BASE_FOR_TYPE: Final[dict[str, type[Plugin]]] = {
    "system": SystemPlugin,
    "integration": IntegrationPlugin,
    "extension": ExtensionPlugin,
    "utility": UtilityPlugin,
}
_generation = itertools.count(1)


@dataclass(slots=True)
class Discovery:
    """What discovery found: valid manifests, and the problems, each a ``PlugbayError``."""

    manifests: list[PluginManifest] = field(default_factory=list)
    problems: list[PlugbayError] = field(default_factory=list)

    def extend(self, other: Discovery) -> None:
        self.manifests.extend(other.manifests)
        self.problems.extend(other.problems)


def discover(directories: Iterable[Path] = (), *, entry_points: bool = True) -> Discovery:
    """Manifests from every directory (searched recursively) and, optionally, entry points."""
    found = Discovery()
    for directory in directories:
        found.extend(discover_directory(Path(directory)))
    if entry_points:
        found.extend(discover_entry_points())
    return found


def discover_directory(root: Path) -> Discovery:
    """Every plugin below ``root``: a directory holding a ``plugin.toml``, or a
    ``pyproject.toml`` with a ``[tool.plugbay]`` table. A plugin directory is not
    searched further (its subdirectories are its own code)."""
    found = Discovery()
    if not root.is_dir():
        found.problems.append(
            ManifestError(
                "the plugins directory does not exist",
                where=str(root),
                hint="create it, or point plugbay at another one with --plugins DIR",
            )
        )
        return found
    for manifest_path in _manifest_files(root):
        try:
            found.manifests.append(load_manifest_file(manifest_path))
        except PlugbayError as exc:
            found.problems.append(exc)
    return found


def _manifest_files(directory: str | Path) -> Iterator[str]:
    # one stat for the common case (a plugin directory); a directory read otherwise
    plugin_toml = os.path.join(directory, "plugin.toml")
    if os.path.isfile(plugin_toml):
        yield plugin_toml
        return
    try:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        return
    if any(e.name == "pyproject.toml" for e in entries):
        pyproject = os.path.join(directory, "pyproject.toml")
        with open(pyproject, encoding="utf-8", errors="replace") as f:
            if re.search(r"^\[tool\.plugbay[\].]", f.read(), re.M):
                yield pyproject
                return
    for entry in entries:
        if (
            not entry.name.startswith(".")
            and entry.name not in _SKIP_DIRS
            and entry.is_dir(follow_symlinks=True)
        ):
            yield from _manifest_files(entry.path)


def discover_entry_points(group: str = ENTRY_POINT_GROUP) -> Discovery:
    """Plugins installed as distributions that declare an entry point in ``group``.

    The manifest is looked up without importing anything: a ``plugin.toml`` among
    the distribution's files next to the entry module, or, for an editable or
    local install, ``[tool.plugbay]`` in the project's ``pyproject.toml``.
    """
    found = Discovery()
    for ep in importlib.metadata.entry_points(group=group):
        dist = ep.dist
        dist_name = dist.metadata["Name"] if dist is not None else "?"
        try:
            manifest = _entry_point_manifest(ep, dist)
        except PlugbayError as exc:
            found.problems.append(exc)
            continue
        if manifest.entry != ep.value:
            found.problems.append(
                ManifestError(
                    f"the entry point says '{ep.value}' but the manifest's entry is '{manifest.entry}'",
                    plugin=manifest.id,
                    where=f"distribution {dist_name}",
                    hint='make [project.entry-points."plugbay.plugins"] and the manifest\'s entry agree',
                )
            )
            continue
        found.manifests.append(manifest)
    return found


def _entry_point_manifest(
    ep: importlib.metadata.EntryPoint, dist: importlib.metadata.Distribution | None
) -> PluginManifest:
    dist_name = dist.metadata["Name"] if dist is not None else "?"
    top = ep.value.split(":", 1)[0].split(".", 1)[0]
    if dist is not None:
        for f in dist.files or ():
            parts = f.parts
            if parts and parts[0] == top and f.name == "plugin.toml":
                path = Path(str(dist.locate_file(f)))
                return parse_manifest(
                    path.read_text(encoding="utf-8"),
                    path=path,
                    origin="entry-point",
                    distribution=dist_name,
                )
        source = _editable_source(dist)
        if source is not None and (source / "pyproject.toml").is_file():
            path = source / "pyproject.toml"
            return parse_manifest(
                path.read_text(encoding="utf-8"),
                path=path,
                table=("tool", "plugbay"),
                origin="entry-point",
                distribution=dist_name,
            )
    raise ManifestError(
        f"entry point '{ep.name} = {ep.value}' has no manifest",
        where=f"distribution {dist_name}",
        hint="ship a plugin.toml inside the package, or build with 'plugbay build' which adds it",
    )


def _editable_source(dist: importlib.metadata.Distribution) -> Path | None:
    text = dist.read_text("direct_url.json")
    if not text:
        return None
    try:
        url = json.loads(text).get("url", "")
    except ValueError:
        return None
    return Path(url[len("file://") :]) if url.startswith("file://") else None


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
    doomed = [name for name in sys.modules if name == namespace or name.startswith(namespace + ".")]
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


def _import(module_name: str, manifest: PluginManifest) -> types.ModuleType:
    where = str(manifest.root or manifest.location)
    try:
        return importlib.import_module(module_name)
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
            hint="install that package in the host's environment, or import your own modules "
            "relatively ('from . import x')",
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
            details={"traceback": _tb(exc)},
        ) from None


def _resolve_attribute(module: types.ModuleType, manifest: PluginManifest) -> type[Plugin]:
    obj: object = module
    for part in manifest.attribute.split("."):
        if not hasattr(obj, part):
            names = sorted(
                n for n, v in vars(module).items() if isinstance(v, type) and issubclass(v, Plugin)
            )
            raise PluginLoadError(
                f"module '{manifest.module}' has no attribute '{manifest.attribute}'",
                plugin=manifest.id,
                where=getattr(module, "__file__", None) or manifest.location,
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
    where = inspect.getsourcefile(cls) or manifest.location
    base = _BASE_FOR_TYPE[manifest.type]
    if not issubclass(cls, base):
        raise PluginLoadError(
            f"the manifest says type '{manifest.type}' but {cls.__name__} is not a {base.__name__}",
            plugin=manifest.id,
            where=where,
            hint=f"subclass plugbay.{base.__name__}, or change type in the manifest",
        )
    for attr in ("id", "version"):
        declared = cls.__dict__.get(attr)
        if isinstance(declared, str) and declared != str(getattr(manifest, attr)):
            raise PluginLoadError(
                f"{cls.__name__}.{attr} is '{declared}' but the manifest says '{getattr(manifest, attr)}'",
                plugin=manifest.id,
                where=where,
                hint=f"make them agree, or drop {attr} from the class (the manifest is the source of truth)",
            )
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        raise PluginLoadError(
            f"{cls.__name__} does not implement {missing}",
            plugin=manifest.id,
            where=where,
            hint=f"a {base.__name__} must implement every method of its interface",
        )
    try:
        return command_specs(cls)
    except PlugbayError as exc:
        exc.plugin = manifest.id
        raise


def _tb(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


_PLUGBAY_DIR: Final = str(Path(__file__).resolve().parent)
_STDLIB_DIR: Final = sysconfig.get_paths()["stdlib"]


def plugin_frame(exc: BaseException, manifest: PluginManifest) -> str | None:
    """``file:line`` of the deepest traceback frame in the plugin's own code: its
    directory, or (an installed plugin) anything outside plugbay and the stdlib."""
    root = str(manifest.root) if manifest.root is not None else None
    best = None
    for frame in traceback.extract_tb(exc.__traceback__):
        name = frame.filename
        if root is not None:
            mine = name.startswith(root)
        else:
            mine = not name.startswith((_PLUGBAY_DIR, _STDLIB_DIR, "<"))
        if mine:
            best = f"{name}:{frame.lineno}"
    return best
