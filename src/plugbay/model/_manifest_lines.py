"""Where a manifest sets a key: ``plugin.toml:7``, as ``plugbay validate`` says it.

Read only once something it sets has failed (a resolution, an ``entry`` naming no
class), to say which line to change: a discovery or a load that succeeds never reads a
manifest's text a second time.
"""

from __future__ import annotations

from plugbay.api.errors import ManifestError
from plugbay.model._manifest_read import read_text
from plugbay.model._toml_lines import key_line
from plugbay.model.manifest import PluginManifest

__all__ = ["dependency_at", "key_at"]

_SERVICE = "service:"


def dependency_at(manifest: PluginManifest, target: str) -> str:
    """``FILE:LINE`` of the key by which ``manifest`` asks for ``target`` (a plugin id, or
    ``service:NAME``), else its file (or distribution) as :attr:`~PluginManifest.location`
    says it."""
    if target.startswith(_SERVICE):
        return key_at(manifest, ("services", "requires", target[len(_SERVICE) :]))
    if target in manifest.dependencies:
        return key_at(manifest, ("dependencies", target))
    return key_at(manifest, ("optional-dependencies", target))


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
