"""A manifest's problems said as its author needs them: which key, on which line, and
what to write instead.

msgspec stops at a document's first problem and names a key inside a table of
tables as ``config[...].type``, without saying which entry. :func:`shape_problems`
checks the document one key at a time against the manifest's types instead: every
unknown key (with the closest known one, when one is close), every value of the
wrong type and every missing key, each at the line that sets it
(:mod:`plugbay.model._toml_lines`), and the document without them.
"""

from __future__ import annotations

import difflib
import functools
import re
import typing
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec

from plugbay.api.errors import ManifestError
from plugbay.model._config_schema import error_path
from plugbay.model._manifest_types import wrong_type
from plugbay.model._toml_lines import dotted, key_line, key_lines

__all__ = ["Shape", "doc_error", "id_problem", "locate", "shape_problems", "where_of"]

#: a manifest key's path: ``("config", "units", "type")``
KeyPath = tuple[str, ...]


_ID_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-.")


def id_problem(plugin_id: str) -> str:
    """Why ``plugin_id`` is not an id, for a message: a character an id cannot hold is
    named by its code point, since a look-alike (Cyrillic 'а') or an invisible one (a
    zero-width space, a newline) cannot be seen in the id as printed."""
    for at, char in enumerate(plugin_id, 1):
        if char not in _ID_CHARS:
            name = unicodedata.name(char, "a control character")
            return f"character {at}, U+{ord(char):04X} ({name}), cannot be in an id"
    if not plugin_id:
        return "it is empty"
    return "each part between dots must start with a letter a-z (and none be empty)"


def where_of(path: Path | None, distribution: str | None) -> str:
    if path is not None:
        return str(path)
    return f"distribution {distribution}" if distribution else "<manifest>"


def locate(
    where: str, text: str | None, key: str | Sequence[str], table: Sequence[str] = ()
) -> str:
    """``file:line`` of the line that sets ``key`` (a path under ``table``: that key, else
    its nearest enclosing key; one name: that key of the manifest's own table, else the
    first line that sets a key of that name), when there is one."""
    if not text or not key:
        return where
    if isinstance(key, str):
        line = key_lines(text).get((*table, key)) or _first_line_setting(text, key)
    else:
        line = key_line(text, (*table, *key)) if key else None
        line = line or _first_line_setting(text, key[-1])
    return f"{where}:{line}" if line else where


def _first_line_setting(text: str, key: str) -> int | None:
    pattern = re.compile(rf'^\s*"?{re.escape(key)}"?\s*=|^\s*\[[^\]]*\b{re.escape(key)}\]', re.M)
    m = pattern.search(text)
    return text.count("\n", 0, m.start()) + 1 if m else None


# --------------------------------------------------------------------------- the shape


@dataclass(slots=True)
class Shape:
    """What :func:`shape_problems` found: the problems in document order, the document
    without the keys they are about, and those keys' paths."""

    problems: list[ManifestError] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    broken: set[KeyPath] = field(default_factory=set)


class _Dropped:
    """A value :class:`_ShapeWalk` leaves out of the document."""


_DROPPED: Final = _Dropped()


def shape_problems(
    data: Any, doc_type: type[msgspec.Struct], where: str, text: str | None, table: Sequence[str]
) -> Shape:
    """Every key of ``data`` that does not fit ``doc_type``, each as a :class:`ManifestError`
    at its line (``table`` is where the manifest is in ``text``)."""
    walk = _ShapeWalk(where, text, tuple(table))
    if not isinstance(data, dict):
        walk.shape.problems.append(
            ManifestError("the manifest is not a table of keys", where=where)
        )
        return walk.shape
    walk.shape.data = walk.table(doc_type, data, ())
    return walk.shape


@dataclass(slots=True)
class _ShapeWalk:
    where: str
    text: str | None
    prefix: KeyPath
    shape: Shape = field(default_factory=Shape)

    def problem(self, path: KeyPath, error: ManifestError) -> _Dropped:
        error.details["key"] = list(path)
        self.shape.problems.append(error)
        self.shape.broken.add(path)
        return _DROPPED

    def at(self, path: KeyPath) -> str:
        return locate(self.where, self.text, path, self.prefix)

    def table(self, struct: type[msgspec.Struct], data: dict[str, Any], path: KeyPath) -> Any:
        """The keys of one table that fit ``struct``; ``_DROPPED`` when one it must have
        is missing (its problem said)."""
        fields = _fields(struct)
        kept: dict[str, Any] = {}
        meant: set[str] = set()  # the keys a misspelt one was taken for
        for key, value in data.items():
            spec = fields.get(key)
            if spec is None:
                error = unknown_field(key, path, list(fields), self.at((*path, key)))
                meant.add(error.details.pop("meant", ""))
                self.problem((*path, key), error)
                continue
            checked = self.value(spec.type, value, (*path, key))
            if checked is not _DROPPED:
                kept[key] = checked
        lost = [name for name, spec in fields.items() if spec.required and name not in kept]
        for name in lost:
            if name in data or name in meant:  # said already: its value, or its spelling
                self.shape.broken.add((*path, name))
            else:
                self.problem((*path, name), missing_field(name, path, self.at(path)))
        return _DROPPED if lost and path else kept  # a table without a key it must have

    def value(self, tp: Any, value: Any, path: KeyPath) -> Any:
        if isinstance(tp, type) and issubclass(tp, msgspec.Struct) and isinstance(value, dict):
            return self.table(tp, value, path)
        args = typing.get_args(tp)
        item = args[1] if typing.get_origin(tp) is dict and len(args) == 2 else None
        if isinstance(item, type) and issubclass(item, msgspec.Struct) and isinstance(value, dict):
            entries = {k: self.value(item, v, (*path, k)) for k, v in value.items()}
            return {k: v for k, v in entries.items() if v is not _DROPPED}
        try:
            msgspec.convert(value, tp, strict=True)
        except msgspec.ValidationError:
            return self.problem(path, invalid_value(tp, value, path, self.at))
        return value


@functools.cache
def _fields(struct: type[msgspec.Struct]) -> dict[str, msgspec.structs.FieldInfo]:
    """A table's keys as written (kebab-case) → its field."""
    return {f.encode_name: f for f in msgspec.structs.fields(struct)}


# --------------------------------------------------------------------------- the messages


def unknown_field(key: str, section: KeyPath, known: list[str], where: str) -> ManifestError:
    """A key ``section`` does not have, and the closest of the ``known`` ones when one
    is close (``details["meant"]``)."""
    close = difflib.get_close_matches(key.replace("_", "-"), known, n=1)
    if close:
        hint = f"did you mean '{close[0]}'?"
    elif known:
        hint = f"known keys{f' in [{dotted(section)}]' if section else ''}: {', '.join(known)}"
    else:
        hint = "remove it"
    return ManifestError(
        f"unknown field '{dotted((*section, key))}'",
        where=where,
        hint=hint,
        details={"meant": close[0]} if close else None,
    )


_REQUIRED_EXAMPLES: Final = {
    "id": 'id = "acme.example"',
    "version": 'version = "1.0.0"',
    "type": 'type = "utility"  # system | integration | extension | utility',
    "entry": 'entry = "my_module:MyPlugin"',
}


def missing_field(key: str, section: KeyPath, where: str) -> ManifestError:
    if section[:1] == ("config",):
        hint = 'add type = "string" (or integer, number, boolean, array, object)'
    else:
        hint = f"add {_REQUIRED_EXAMPLES.get(key, key + ' = …')}"
    return ManifestError(
        f"missing required field '{dotted((*section, key))}'", where=where, hint=hint
    )


def invalid_value(
    tp: Any, value: Any, path: KeyPath, at: Callable[[KeyPath], str]
) -> ManifestError:
    """``value`` of the key at ``path`` is not a ``tp``; ``at`` gives a key's ``file:line``
    (the line of the entry of a table that is wrong, not the table's)."""
    if typing.get_origin(tp) is typing.Literal:
        allowed = ", ".join(str(a) for a in typing.get_args(tp))
        return ManifestError(
            f"{_shown(value)} is not a valid {dotted(path)}",
            where=at(path),
            hint=f"use one of: {allowed}",
        )
    inner, said, hint = wrong_type(tp, value, path)
    return ManifestError(said, where=at(inner), hint=hint)


def _shown(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else repr(value)


def doc_error(text: str, where: str, source: str | None) -> ManifestError:
    """A msgspec validation message about the document, worded (what :func:`shape_problems`
    does not find, which should be nothing)."""
    path = error_path(text)
    if text.startswith("Object contains unknown field"):
        key = text.split("`")[1]
        return ManifestError(
            f"unknown field '{path + '.' if path else ''}{key}'", where=locate(where, source, key)
        )
    if text.startswith("Object missing required field"):
        return ManifestError(f"missing required field '{text.split('`')[1]}'", where=where)
    key = path.rsplit(".", 1)[-1] if path else ""
    return ManifestError(
        f"field '{path}' is invalid: {text.split(' - at ')[0]}",
        where=locate(where, source, key),
        hint="see the manifest reference (docs/manifest.md)",
    )
