"""Where a plugin's Python requirement is written: the manifest's file and line, which an
error refusing the requirement at install, load or reload names (as ``plugbay validate``
does), so the author goes straight to the line to change."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from plugbay.model._manifest_errors import locate
from plugbay.model._toml_lines import key_lines

if TYPE_CHECKING:
    from plugbay.model.manifest import PluginManifest

__all__ = ["culprit", "requirement_where"]


def requirement_where(manifest: PluginManifest, requirement: str | None = None) -> str:
    """``file:line`` of the line that holds ``requirement`` as written in the value of the
    key that lists the requirements (else of that key: a comment or a description that
    quotes it is no requirement); the manifest's location when it has no file (a wheel's
    ``Requires-Dist``, an in-memory manifest) or the file cannot be read."""
    path = manifest.path
    if path is None:
        return manifest.location
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return manifest.location
    if path.name == "pyproject.toml" and "python-dependencies" not in text:
        key = locate(str(path), text, ("project", "dependencies"))
    else:
        key = locate(str(path), text, "python-dependencies")
    line = _value_line(text, key, requirement) if requirement is not None else None
    return f"{path}:{line}" if line is not None else key


def _value_line(text: str, key: str, requirement: str) -> int | None:
    """The line, from the key's at ``key`` (``file:line``) to the next key or table, that
    holds ``requirement`` quoted; None if none does."""
    start = key.rpartition(":")[2]
    if not start.isdigit():
        return None
    first = int(start)
    later = [line for line in key_lines(text).values() if line > first]
    lines = text.split("\n")[first - 1 : min(later) - 1 if later else None]
    for number, line in enumerate(lines, first):
        if f'"{requirement}"' in line or f"'{requirement}'" in line:
            return number
    return None


def culprit(manifest: PluginManifest, explanation: str) -> str | None:
    """The plugin's requirement (as written) the installer's explanation names: the one
    it quotes whole, else the first whose package it names; None if none."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    parsed: list[tuple[str, Requirement]] = []
    for text in manifest.python_dependencies:
        try:
            parsed.append((text, Requirement(text)))
        except InvalidRequirement:
            continue
    lower = explanation.lower().replace("_", "-")
    for text, req in parsed:
        if str(req).lower().replace("_", "-") in lower:
            return text
    for text, req in parsed:
        name = re.escape(str(canonicalize_name(req.name)))
        if re.search(rf"(?<![\w.-]){name}(?![\w-])", lower):
            return text
    return None
