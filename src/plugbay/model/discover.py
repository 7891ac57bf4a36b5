"""Finding plugins: manifests from plugin directories and entry points.

Discovery is static: it reads manifests from plugin directories and from the
``plugbay.plugins`` entry-point group and never imports plugin code. Importing
a plugin's code is :mod:`plugbay.isolation.loading`'s job, per loaded version.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.machinery
import importlib.metadata
import json
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from plugbay.api.errors import ManifestError, PlugbayError
from plugbay.model.manifest import (
    MAX_MANIFEST_BYTES,
    PluginManifest,
    load_manifest_file,
    parse_manifest,
)

if TYPE_CHECKING:
    from plugbay.model.manifest_cache import ManifestCache

__all__ = [
    "ENTRY_POINT_GROUP",
    "Discovery",
    "discover",
    "discover_directory",
    "discover_entry_points",
    "manifest_files",
    "plugins_dir_problem",
]

ENTRY_POINT_GROUP: Final = "plugbay.plugins"
_SKIP_DIRS: Final = frozenset({"__pycache__", ".git", ".venv", "node_modules", "build", "dist"})


@dataclass(slots=True)
class Discovery:
    """What discovery found: valid manifests, and the problems, each a ``PlugbayError``."""

    manifests: list[PluginManifest] = field(default_factory=list)
    problems: list[PlugbayError] = field(default_factory=list)

    def extend(self, other: Discovery) -> None:
        self.manifests.extend(other.manifests)
        self.problems.extend(other.problems)


def discover(
    directories: Iterable[Path] = (),
    *,
    entry_points: bool = True,
    cache: ManifestCache | None = None,
) -> Discovery:
    """Manifests from every directory (searched recursively) and, optionally, entry points.
    ``cache`` keeps parsed manifests between starts (``model.manifest_cache``)."""
    found = Discovery()
    for directory in directories:
        found.extend(discover_directory(Path(directory), cache=cache))
    if entry_points:
        found.extend(discover_entry_points())
    return found


def plugins_dir_problem(directory: Path) -> str | None:
    """What is wrong with the plugins directory ``directory`` (None: it is a directory),
    in the words of each place that meets it: a start refused, a problem noted, a list."""
    if directory.is_dir():
        return None
    what = "is not a directory" if directory.exists() else "does not exist"
    return f"the plugins directory {directory} {what}"


def discover_directory(root: Path, *, cache: ManifestCache | None = None) -> Discovery:
    """Every plugin below ``root``: a directory holding a ``plugin.toml``, or a
    ``pyproject.toml`` with a ``[tool.plugbay]`` table. A plugin directory is not
    searched further (its subdirectories are its own code)."""
    found = Discovery()
    problem = plugins_dir_problem(root)
    if problem is not None:
        found.problems.append(
            ManifestError(
                f"{problem}: no plugin is found there",
                where=str(root),
                hint="create it, or point plugbay at another one with --plugins DIR",
            )
        )
        return found
    for manifest_path, st in _manifest_entries(root):
        try:
            found.manifests.append(
                load_manifest_file(manifest_path)
                if cache is None
                else cache.load(manifest_path, st)
            )
        except PlugbayError as exc:
            found.problems.append(exc)
    return found


def manifest_files(directory: str | Path) -> Iterator[str]:
    """Each manifest file below ``directory``, in the order discovery reads them (each
    folder by name: ``a/x`` before ``a-b/x``): the copy a host finds first comes first."""
    for path, _st in _manifest_entries(directory):
        yield path


def _manifest_entries(directory: str | Path) -> Iterator[tuple[str, os.stat_result | None]]:
    """Each manifest file below ``directory``, with its ``stat`` when it was taken (the
    manifest cache keys on it: one stat a plugin, not two)."""
    # one stat for the common case (a plugin directory); a directory read otherwise
    plugin_toml = os.path.join(directory, "plugin.toml")
    try:
        st: os.stat_result | None = os.stat(plugin_toml)
    except (OSError, ValueError):
        st = None
    if st is not None and stat.S_ISREG(st.st_mode):
        yield plugin_toml, st
        return
    try:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        return
    # a regular file only: opening a FIFO named pyproject.toml would wait for a writer
    # forever; and only as much of it as a manifest may hold
    if any(e.name == "pyproject.toml" and e.is_file() for e in entries):
        pyproject = os.path.join(directory, "pyproject.toml")
        with open(pyproject, encoding="utf-8", errors="replace") as f:
            if re.search(r"^\[tool\.plugbay[\].]", f.read(MAX_MANIFEST_BYTES + 1), re.M):
                yield pyproject, None
                return
    for entry in entries:
        if (
            not entry.name.startswith(".")
            and entry.name not in _SKIP_DIRS
            and entry.is_dir(follow_symlinks=True)
        ):
            yield from _manifest_entries(entry.path)


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
                return _with_requires_dist(
                    parse_manifest(
                        path.read_text(encoding="utf-8"),
                        path=path,
                        origin="entry-point",
                        distribution=dist_name,
                    ),
                    dist,
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


def _with_requires_dist(
    manifest: PluginManifest, dist: importlib.metadata.Distribution
) -> PluginManifest:
    """An installed wheel's ``Requires-Dist`` are its Python requirements too."""
    requires = [
        r for r in dist.requires or () if "extra ==" not in r.replace("extra==", "extra ==")
    ]
    if not requires:
        return manifest
    merged = tuple(dict.fromkeys([*requires, *manifest.python_dependencies]))
    return dataclasses.replace(manifest, python_dependencies=merged)


def _editable_source(dist: importlib.metadata.Distribution) -> Path | None:
    text = dist.read_text("direct_url.json")
    if not text:
        return None
    try:
        url = json.loads(text).get("url", "")
    except ValueError:
        return None
    return Path(url[len("file://") :]) if url.startswith("file://") else None
