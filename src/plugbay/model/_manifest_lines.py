"""Where a manifest sets a key: ``plugin.toml:7``, as ``plugbay validate`` says it.

Read only once something it sets has failed (a resolution, an ``entry`` naming no
class), to say which line to change: a discovery or a load that succeeds never reads a
manifest's text a second time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from plugbay.api.errors import ManifestError
from plugbay.model._manifest_read import read_text
from plugbay.model._toml_lines import key_line
from plugbay.model.manifest import PluginManifest

__all__ = [
    "dependency_at",
    "dependency_heading",
    "dependency_table",
    "first_dependency_at",
    "key_at",
]

_SERVICE = "service:"


def dependency_table(manifest: PluginManifest, target: str) -> tuple[str, ...]:
    """The table in which ``manifest`` asks for ``target`` (a plugin id, or
    ``service:NAME``): ``("services", "optional")``, ``("optional-dependencies",)``, …"""
    if target.startswith(_SERVICE):
        name = target[len(_SERVICE) :]
        if name not in manifest.requires and name in manifest.optional_services:
            return ("services", "optional")
        return ("services", "requires")
    if target not in manifest.dependencies and target in manifest.optional_dependencies:
        return ("optional-dependencies",)
    return ("dependencies",)


def dependency_heading(manifest: PluginManifest, target: str) -> str:
    """That table as a message names it: ``[dependencies]``, ``[services] optional``."""
    table = dependency_table(manifest, target)
    return f"[{table[0]}] {table[1]}" if len(table) > 1 else f"[{table[0]}]"


class _Asker(Protocol):
    """Who asks for a target in a resolution (``model.resolve``'s candidate)."""

    @property
    def identifier(self) -> str: ...  # a plugin id, or service:NAME (a provider's own)

    @property
    def manifest(self) -> PluginManifest: ...


def first_dependency_at(
    root: str, asked: Mapping[str, Sequence[tuple[object, _Asker | None]]]
) -> str | None:
    """``FILE:LINE`` to look at first among the ranges ``asked`` (target → (requirement,
    who asks)): the one ``root`` sets, else the first; None when no manifest sets one."""
    ranges = [
        (who.manifest, target)
        for target, pairs in asked.items()
        for _, who in pairs
        if who is not None and not who.identifier.startswith(_SERVICE)
    ]
    own = [(m, target) for m, target in ranges if m.id == root] or ranges
    return dependency_at(*own[0]) if own else None


def dependency_at(manifest: PluginManifest, target: str) -> str:
    """``FILE:LINE`` of the key by which ``manifest`` asks for ``target`` (a plugin id, or
    ``service:NAME``), else its file (or distribution) as :attr:`~PluginManifest.location`
    says it."""
    key = target[len(_SERVICE) :] if target.startswith(_SERVICE) else target
    return key_at(manifest, (*dependency_table(manifest, target), key))


def key_at(manifest: PluginManifest, key: tuple[str, ...]) -> str:
    """``FILE:LINE`` of ``key`` in ``manifest``'s file (under ``[tool.plugbay]`` in a
    ``pyproject.toml``), else its location (:attr:`~PluginManifest.location`)."""
    path = manifest.path
    if path is None:
        return manifest.location
    try:
        text = read_text(path)
    except (OSError, UnicodeDecodeError, ManifestError):  # changed since: no line to name
        return manifest.location
    table = ("tool", "plugbay") if path.name == "pyproject.toml" else ()
    line = key_line(text, (*table, *key))
    return f"{path}:{line}" if line else manifest.location
