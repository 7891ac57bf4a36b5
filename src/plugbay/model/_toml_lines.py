"""Where a key is set in TOML text: the line a message about that key points to.

A manifest's errors name a key by its full path (``("tool", "plugbay", "config",
"units", "type")``), and the same short key is set in many places of one file
(``type`` of the plugin and of every config entry; ``version`` of ``[project]`` and
of ``[tool.plugbay]``). :func:`key_line` follows the file's tables as TOML does, so
it finds the line that sets that one key; a key set inside an inline table or an
array is found at the line of the nearest enclosing key that has one.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Final

__all__ = ["dotted", "key_line", "key_lines"]

_BARE: Final = re.compile(r"[A-Za-z0-9_-]+")
_KEY_PART: Final = re.compile(
    r"""[ \t]*(?:(?P<bare>[A-Za-z0-9_-]+)|"(?P<basic>(?:[^"\\]|\\.)*)"|'(?P<literal>[^']*)')[ \t]*"""
)


def dotted(path: Sequence[str]) -> str:
    """A key path as TOML spells it: ``config.units.type``, ``events.listens."a.b".queue``."""
    return ".".join(p if _BARE.fullmatch(p) else json.dumps(p) for p in path)


def key_line(text: str, path: Sequence[str]) -> int | None:
    """The line (from 1) that sets the key at ``path``, else the line of the nearest
    enclosing key or table that has one; None when not even the first part is set."""
    lines = key_lines(text)
    for end in range(len(path), 0, -1):
        line = lines.get(tuple(path[:end]))
        if line is not None:
            return line
    return None


@functools.lru_cache(maxsize=2)
def key_lines(text: str) -> Mapping[tuple[str, ...], int]:
    """Every key path the text sets (tables and keys) → the first line that sets it (kept
    for the last two texts: a manifest's problems are located one after the other)."""
    found: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, line in _statement_lines(text):
        stripped = line.lstrip(" \t")
        if stripped.startswith("["):
            keys = _parse_key(stripped.lstrip("[").lstrip(" \t"), "]")
            if keys is None:
                continue
            table = tuple(keys)
            _record(found, table, number)
        else:
            keys = _parse_key(stripped, "=")
            if keys is not None:
                _record(found, table + tuple(keys), number)
    return found


def _record(found: dict[tuple[str, ...], int], path: tuple[str, ...], line: int) -> None:
    for end in range(1, len(path) + 1):  # ``a.b = 1`` sets a too
        found.setdefault(path[:end], line)


def _parse_key(text: str, end: str) -> list[str] | None:
    """The parts of the dotted key at the start of ``text``, up to ``end`` (``=`` or ``]``)."""
    parts: list[str] = []
    at = 0
    while True:
        m = _KEY_PART.match(text, at)
        if m is None:
            return None
        if m.group("bare") is not None:
            parts.append(m.group("bare"))
        elif m.group("literal") is not None:
            parts.append(m.group("literal"))
        else:
            parts.append(_unescape(m.group("basic")))
        at = m.end()
        if text.startswith(".", at):
            at += 1
            continue
        return parts if text.startswith(end, at) else None


def _unescape(basic: str) -> str:
    try:
        value = json.loads(f'"{basic}"')
    except ValueError:
        return basic
    return value if isinstance(value, str) else basic


def _statement_lines(text: str) -> Iterator[tuple[int, str]]:
    """Each line that starts a statement (a table header or a key), with its number:
    the lines inside a multi-line string or array are skipped."""
    open_string: str | None = None  # the delimiter of a multi-line string still open
    depth = 0  # brackets of a value still open
    for number, line in enumerate(text.split("\n"), 1):
        starts = open_string is None and depth == 0
        if starts:
            stripped = line.lstrip(" \t")
            if not stripped or stripped.startswith("#"):
                continue
            yield number, line
            if stripped.startswith("["):
                continue  # a header holds no value
            line = line.split("=", 1)[1] if "=" in line else ""
        open_string, depth = _scan(line, open_string, depth)


def _scan(line: str, open_string: str | None, depth: int) -> tuple[str | None, int]:
    """What is still open at the end of ``line``: a multi-line string, and brackets."""
    i = 0
    while i < len(line):
        if open_string is not None:
            close = line.find(open_string, i)
            if close < 0:
                return open_string, depth
            i = close + 3
            open_string = None
            continue
        c = line[i]
        if line.startswith(('"""', "'''"), i):
            open_string = line[i : i + 3]
            i += 3
        elif c in "\"'":
            i = _string_end(line, i)
        elif c == "#":
            break
        else:
            depth += (c in "[{") - (c in "]}")
            i += 1
    return open_string, max(depth, 0)


def _string_end(line: str, start: int) -> int:
    """Past the one-line string that starts at ``start``."""
    quote = line[start]
    i = start + 1
    while i < len(line):
        if quote == '"' and line[i] == "\\":
            i += 2
            continue
        if line[i] == quote:
            return i + 1
        i += 1
    return i
