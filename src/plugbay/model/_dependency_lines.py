"""Where a manifest sets a dependency: ``plugin.toml:7``, as ``plugbay validate`` says it.

Read only when a resolution fails, to say which line to change: a discovery that
succeeds never reads a manifest's text a second time.
"""

from __future__ import annotations

from plugbay.api.errors import ManifestError
from plugbay.model._manifest_read import read_text
from plugbay.model._toml_lines import key_line
from plugbay.model.manifest import PluginManifest

__all__ = ["dependency_at"]

_SERVICE = "service:"


def dependency_at(manifest: PluginManifest, target: str) -> str:
    """``FILE:LINE`` of the key by which ``manifest`` asks for ``target`` (a plugin id, or
    ``service:NAME``), else its file (or distribution) as :attr:`~PluginManifest.location`
    says it."""
    path = manifest.path
    if path is None:
        return manifest.location
    if target.startswith(_SERVICE):
        key: tuple[str, ...] = ("services", "requires", target[len(_SERVICE) :])
    elif target in manifest.dependencies:
        key = ("dependencies", target)
    else:
        key = ("optional-dependencies", target)
    try:
        text = read_text(path)
    except (OSError, UnicodeDecodeError, ManifestError):  # changed since: no line to name
        return manifest.location
    table = ("tool", "plugbay") if path.name == "pyproject.toml" else ()
    line = key_line(text, (*table, *key))
    return f"{path}:{line}" if line else manifest.location
