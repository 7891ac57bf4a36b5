"""A fast reader for the plain TOML manifests are written in; tomllib for anything else.

Discovering a thousand plugins spent most of its time in ``tomllib``, a parser
written in Python for all of TOML. A manifest uses a small part of it: tables
``[name]``, ``key = value`` lines whose values are one-line strings, integers,
booleans and arrays of strings. :func:`loads` reads exactly that, one line at
a time with a few regular expressions, and returns what ``tomllib.loads``
would; at the first thing it does not know (an escape, a dotted key, a float,
an inline table, a key given twice, a multi-line value, ...) it returns
``None`` and the caller parses the text with ``tomllib``, which also words
every error. Nothing is ever accepted here that tomllib would refuse.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any, Final

__all__ = ["loads", "with_line"]

_BARE: Final = r"[A-Za-z0-9_-]+"
_KEY: Final = rf'(?:({_BARE})|"([^"\\\x00-\x1f\x7f]*)")'
# a basic string without escapes, or a literal string
_STRING: Final = r'"([^"\\\x00-\x08\x0a-\x1f\x7f]*)"' + r"|'([^'\x00-\x08\x0a-\x1f\x7f]*)'"
_TAIL: Final = r"[ \t]*(?:#[^\x00-\x08\x0a-\x1f\x7f]*)?$"

_HEADER: Final = re.compile(rf"\[[ \t]*({_BARE}(?:[ \t]*\.[ \t]*{_BARE})*)[ \t]*\]{_TAIL}")
_PAIR: Final = re.compile(rf"{_KEY}[ \t]*=[ \t]*(.*)$")
# the line most manifests are made of, `key = "text"`, in one match
_STR_PAIR: Final = re.compile(rf"{_KEY}[ \t]*=[ \t]*(?:{_STRING}){_TAIL}")
_STR_VALUE: Final = re.compile(rf"(?:{_STRING}){_TAIL}")
_INT_VALUE: Final = re.compile(rf"([+-]?(?:0|[1-9][0-9]*)){_TAIL}")
_FLOAT_VALUE: Final = re.compile(
    rf"([+-]?(?:0|[1-9][0-9]*)(?:\.[0-9]+(?:[eE][+-]?[0-9]+)?|[eE][+-]?[0-9]+)){_TAIL}"
)
_BOOL_VALUE: Final = re.compile(rf"(true|false){_TAIL}")
_INLINE_VALUE: Final = re.compile(rf"\{{([^{{}}\[\]#]*)\}}{_TAIL}")
_ENTRY: Final = re.compile(rf"[ \t]*{_KEY}[ \t]*=[ \t]*(?:{_STRING})[ \t]*(,|$)")
_ARRAY_VALUE: Final = re.compile(rf"\[([^\]\[#]*)\]{_TAIL}")
_ITEM: Final = re.compile(rf"[ \t]*(?:{_STRING})[ \t]*(?:,|$)")
# anything TOML forbids outside strings and comments, or that this reader leaves to tomllib
_UNUSUAL: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\\]")


def loads(text: str) -> dict[str, Any] | None:
    """What ``tomllib.loads(text)`` returns, or None: parse it with tomllib instead."""
    if _UNUSUAL.search(text):
        return None
    root: dict[str, Any] = {}
    table = root
    for raw in text.split("\n"):
        line = raw.lstrip(" \t")
        if not line or line[0] == "#":
            continue
        if line[0] == "[":
            entered = _enter(root, line)
            if entered is None:
                return None
            table = entered
            continue
        pair = _STR_PAIR.match(line)
        if pair is not None:
            key, quoted, basic, literal = pair.groups()
            value = basic if basic is not None else literal
        else:
            pair = _PAIR.match(line)
            if pair is None:
                return None
            key, quoted, rest = pair.groups()
            value = _value(rest)
            if value is _NOT_MINE:
                return None
        if key is None:
            key = quoted
        if key in table:
            return None
        table[key] = value
    return _strip(root)


def _enter(root: dict[str, Any], line: str) -> dict[str, Any] | None:
    """The table a ``[a.b]`` header opens, or None: leave the text to tomllib."""
    header = _HEADER.match(line)
    if header is None:
        return None  # an array of tables, a quoted table name, ...
    table = root
    for part in header.group(1).split("."):
        name = part.strip(" \t")
        inner = table.get(name)
        if inner is None:
            inner = table[name] = {}
        elif not isinstance(inner, dict) or isinstance(inner, _Inline):
            return None  # a value, or an inline table (closed once written)
        table = inner
    if table.get(_DEFINED):
        return None  # a table defined twice: tomllib says so
    table[_DEFINED] = True
    return table


_NOT_MINE: Final = object()
_DEFINED: Final = "\x00defined"  # a key no TOML text can hold (control characters refused)


def _value(text: str) -> Any:
    m = _STR_VALUE.match(text)
    if m is not None:
        return m.group(1) if m.group(1) is not None else m.group(2)
    m = _INT_VALUE.match(text)
    if m is not None:
        return int(m.group(1))
    m = _FLOAT_VALUE.match(text)
    if m is not None:
        return float(m.group(1))
    m = _BOOL_VALUE.match(text)
    if m is not None:
        return m.group(1) == "true"
    m = _INLINE_VALUE.match(text)
    if m is not None:
        return _inline_strings(m.group(1))
    m = _ARRAY_VALUE.match(text)
    if m is not None:
        return _strings(m.group(1))
    return _NOT_MINE


def _strings(inner: str) -> Any:
    items: list[str] = []
    at = 0
    end = len(inner.rstrip(" \t"))
    while at < end:
        m = _ITEM.match(inner, at, end)
        if m is None:
            return _NOT_MINE
        items.append(m.group(1) if m.group(1) is not None else m.group(2))
        at = m.end()
    return items


def _inline_strings(inner: str) -> Any:
    """``{ a = "x", "b" = 'y' }``: string values only, no trailing comma (TOML has none)."""
    table = _Inline()
    at = 0
    end = len(inner.rstrip(" \t"))
    if not inner.strip(" \t"):
        return table
    while at < end:
        m = _ENTRY.match(inner, at, end)
        if m is None:
            return _NOT_MINE
        key = m.group(1) if m.group(1) is not None else m.group(2)
        if key in table:
            return _NOT_MINE
        table[key] = m.group(3) if m.group(3) is not None else m.group(4)
        at = m.end()
        if m.group(5) == "," and at >= end:
            return _NOT_MINE  # a trailing comma
    return table


class _Inline(dict[str, str]):
    """An inline table: no header may add to it."""


def _strip(root: dict[str, Any]) -> dict[str, Any]:
    """The tables as tomllib gives them: no marks, inline tables plain dicts. Iterative:
    a hostile header may nest thousands of tables deep (``[a.a.a…]``)."""
    tables = [root]
    while tables:
        table = tables.pop()
        table.pop(_DEFINED, None)
        for key, value in table.items():
            if isinstance(value, _Inline):
                table[key] = dict(value)
            elif isinstance(value, dict):
                tables.append(value)
    return root


def with_line(where: str, exc: tomllib.TOMLDecodeError) -> str:
    """``where:line`` of the error tomllib found, when it says the line."""
    m = re.search(r"line (\d+)", str(exc))
    return f"{where}:{m.group(1)}" if m else where
