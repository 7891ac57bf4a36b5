"""The bundled plugins, shipped inside the plugbay package (``plugbay/bundled/``).

``system.logging``, ``utility.formatters`` and the other plugins of the repository's
``plugins/`` directory are package data of every plugbay install (in a checkout,
``src/plugbay/bundled`` is a link to ``plugins/``). A host does not start them on its
own: a plugin that depends on one by id and range gets it, and what it depends on in
turn, unless a plugin directory, an entry point or the store already has that id (the
operator's copy wins). So a third-party plugin needs plugbay installed, not a checkout.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from plugbay.model.discover import discover_directory
from plugbay.model.manifest import PluginManifest

__all__ = ["bundled_needed", "bundled_root"]


def bundled_root() -> Path | None:
    """Where the installed package keeps its bundled plugins, or None (a build without)."""
    root = Path(__file__).resolve().parent.parent / "bundled"
    return root if root.is_dir() else None


def bundled_needed(
    known: Iterable[PluginManifest], *, root: Path | None = None
) -> list[PluginManifest]:
    """Every bundled plugin a known plugin depends on (directly, or through another bundled
    one) whose id no known plugin has: what a host adds to its registry."""
    root = root if root is not None else bundled_root()
    known = list(known)
    if root is None:
        return []
    bundled = {m.id: m for m in discover_directory(root).manifests}
    have = {m.id for m in known}
    wanted = [dep for m in known for dep in (*m.dependencies, *m.optional_dependencies)]
    added: list[PluginManifest] = []
    while wanted:
        plugin_id = wanted.pop()
        manifest = bundled.get(plugin_id)
        if manifest is None or plugin_id in have:
            continue
        have.add(plugin_id)
        added.append(manifest)
        wanted.extend(manifest.dependencies)
    return added
