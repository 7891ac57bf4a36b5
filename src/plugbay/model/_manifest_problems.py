"""Every problem of a manifest in one reading, for ``plugbay validate``.

A host refuses a manifest at its first problem (:func:`~plugbay.model.manifest.load_manifest`).
A plugin's author wants them all at once, and the code checked too: :func:`read_manifest`
finds every key whose shape is wrong, then reads the manifest without them, again and
again, each problem its checks find taking its key out, until what is left reads. What
is left is the manifest as far as it is right: a key the author must still set gets a
stand-in, and :attr:`ManifestReading.broken` names every key taken out or stood in for,
so that no check of the code reads one of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from plugbay.api.errors import ManifestError, PlugbayError
from plugbay.model._manifest_read import parse_toml, read_text, too_deep
from plugbay.model.manifest import (
    PluginManifest,
    load_manifest,
    manifest_from_mapping,
    manifest_shape,
    manifest_table,
)

__all__ = ["ManifestReading", "read_manifest"]

#: stand-ins for the keys a manifest must have, while its other problems are looked for
_STAND_INS: Final = {
    "id": "unnamed.plugin",
    "version": "0.0.0",
    "type": "utility",
    "entry": "unnamed:Plugin",
}
#: a manifest has at most this many problems read one after the other
_MAX_PROBLEMS: Final = 100


@dataclass(slots=True)
class ManifestReading:
    """What :func:`read_manifest` found."""

    #: the manifest, or (with problems) the manifest without the keys they are about;
    #: None when there is no table of keys to read
    manifest: PluginManifest | None
    problems: list[PlugbayError] = field(default_factory=list)
    #: the manifest's keys (paths in its table) with a problem, taken out or stood in for
    broken: set[tuple[str, ...]] = field(default_factory=set)


def read_manifest(path: Path) -> ManifestReading:
    """Read the manifest at ``path`` (a plugin directory, ``plugin.toml`` or
    ``pyproject.toml``) and say everything wrong with it."""
    try:
        return ManifestReading(load_manifest(path))
    except ManifestError as first:
        file = _manifest_file(Path(path))
        try:
            text = read_text(file)
        except (OSError, UnicodeDecodeError, ManifestError):
            return ManifestReading(None, [first])  # not there, or not text: said already
        reading = _read_all(file, text)
        return reading if reading.problems else ManifestReading(None, [first])


def _read_all(file: Path, text: str) -> ManifestReading:
    table = ("tool", "plugbay") if file.name == "pyproject.toml" else ()
    where = str(file)
    try:
        data = manifest_table(parse_toml(text, where, what="the manifest"), text, where, table)
        shape = manifest_shape(data, where, text, table)
    except ManifestError as exc:
        return ManifestReading(None, [exc])
    except RecursionError:
        return ManifestReading(None, [too_deep(where, "the manifest")])
    reading = ManifestReading(None, list(shape.problems), shape.broken)
    if not isinstance(data, dict):
        return reading
    data = shape.data
    for key, stand_in in _STAND_INS.items():
        if key not in data:
            data[key] = stand_in
            reading.broken.add((key,))
    while len(reading.problems) < _MAX_PROBLEMS:
        try:
            reading.manifest = manifest_from_mapping(
                data, path=file, origin="directory", root=file.parent, text=text, table=table
            )
            return reading
        except ManifestError as exc:
            reading.problems.append(exc)
            about = exc.details.get("key")
            if not isinstance(about, list) or not _take_out(data, about):
                return reading
            reading.broken.add(tuple(about))
    return reading


def _manifest_file(path: Path) -> Path:
    if path.is_dir():
        for name in ("plugin.toml", "pyproject.toml"):
            if (path / name).is_file():
                return path / name
    return path


def _take_out(data: dict[str, Any], key: list[str]) -> bool:
    """Take the key at ``key`` out of ``data`` (a key it must have gets its stand-in);
    False when there is no such key, or nothing to put instead."""
    table: Any = data
    for part in key[:-1]:
        table = table.get(part) if isinstance(table, dict) else None
    if not isinstance(table, dict) or key[-1] not in table:
        return False
    if len(key) == 1 and key[0] in _STAND_INS:
        if data[key[0]] == _STAND_INS[key[0]]:
            return False  # the stand-in itself is refused: nothing else to try
        data[key[0]] = _STAND_INS[key[0]]
        return True
    del table[key[-1]]
    return True
