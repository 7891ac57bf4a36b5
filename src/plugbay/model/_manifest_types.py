"""A manifest value of the wrong type, said in plugbay's words rather than msgspec's.

``version = 1`` is ``field 'version' must be a string (a version like "1.2.3"), not
the integer 1``, not ``Expected `str`, got `int```: what the key takes, in words (with
an example where the key's own form matters), and what was written, as TOML names it.
A value inside a table (``resources.custom."gpu-box"``) is named by its own path; an
item of an array by its number.
"""

from __future__ import annotations

import datetime
import json
import types
import typing
from typing import Any, Final

import msgspec

from plugbay.model._toml_lines import dotted

__all__ = ["wrong_type"]

_MANUAL: Final = "see the manifest reference (docs/manifest.md)"
_SIZE: Final = 'a number of bytes or a size like "256MiB"'
_RANGE: Final = 'a version range like ">=1.0.0 <2.0.0"'
#: the form a key's value takes, where a type alone does not say it
_EXAMPLES: Final = {
    ("id",): 'a plugin id like "acme.greeter"',
    ("version",): 'a version like "1.2.3"',
    ("host",): _RANGE,
    ("entry",): 'a "module:Class" like "acme_greeter:Greeter"',
    ("dependencies", "*"): _RANGE,
    ("optional-dependencies", "*"): _RANGE,
    ("services", "requires", "*"): _RANGE,
    ("services", "optional", "*"): _RANGE,
    ("services", "provides", "*"): 'a version like "1.0.0"',
    ("resources", "memory"): _SIZE,
    ("resources", "file-size"): _SIZE,
    ("resources", "storage"): _SIZE,
}
_NAMES: Final = {str: "a string", int: "a whole number", float: "a number", bool: "true or false"}
_PLURALS: Final = {
    str: "strings",
    int: "whole numbers",
    float: "numbers",
    bool: "true/false values",
}


def wrong_type(tp: Any, value: Any, path: tuple[str, ...]) -> tuple[tuple[str, ...], str, str]:
    """The path of the value that is wrong (``path``, or a key of the table there), the
    message and the hint for ``value``, given for the key at ``path`` whose type is
    ``tp`` (a type msgspec refused it as)."""
    tp, value, path, item = _misfit(tp, value, path)
    example = _EXAMPLES.get(path) or _EXAMPLES.get((*path[:-1], "*"))
    if example == _SIZE:  # "a whole number or a string" says less
        wanted = example
    else:
        wanted = f"{expected(tp)} ({example})" if example else expected(tp)
    if item is not None:
        said = f"item {item[0] + 1} is {shown(item[1])}, not {expected(_array_item(tp))}"
        return path, f"field '{dotted(path)}' must be {wanted}: {said}", _MANUAL
    message = f"field '{dotted(path)}' must be {wanted}, not {shown(value)}"
    if str in _members(tp) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return path, message, f'put it in quotes: {dotted(path[-1:])} = "{value}"; {_MANUAL}'
    if _array_item(tp) is not None and not isinstance(value, list):
        return path, message, f"write it as an array: {dotted(path[-1:])} = [...]; {_MANUAL}"
    return path, message, _MANUAL


def _misfit(
    tp: Any, value: Any, path: tuple[str, ...]
) -> tuple[Any, Any, tuple[str, ...], tuple[int, Any] | None]:
    """The innermost value that does not fit, its type and its path; for an array, the
    first item that does not fit (its index and value) beside the array's own."""
    for member in _members(tp):
        origin, args = typing.get_origin(member), typing.get_args(member)
        if origin is dict and len(args) == 2 and isinstance(value, dict):
            for key, entry in value.items():
                if not _fits(args[1], entry):
                    return _misfit(args[1], entry, (*path, str(key)))
        if origin is list and args and isinstance(value, list):
            for at, entry in enumerate(value):
                if not _fits(args[0], entry):
                    return member, value, path, (at, entry)
    return tp, value, path, None


def _fits(tp: Any, value: Any) -> bool:
    try:
        msgspec.convert(value, tp, strict=True)
    except (msgspec.ValidationError, TypeError, ValueError):
        return False
    return True


def _members(tp: Any) -> list[Any]:
    """The types a union allows (None left out: TOML has no null), else ``[tp]``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [m for m in typing.get_args(tp) if m is not type(None)]
    return [tp]


def _array_item(tp: Any) -> Any:
    for member in _members(tp):
        if typing.get_origin(member) is list:
            args = typing.get_args(member)
            return args[0] if args else Any
    return None


def expected(tp: Any) -> str:
    """What a value of ``tp`` is, as a noun phrase: ``an array of strings``."""
    members = _members(tp)
    if members != [tp]:  # a union (an optional key is one with None)
        return " or ".join(expected(m) for m in members)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return expected(args[0]) + _bounds(args[1:])
    if origin is typing.Literal:
        return "one of " + ", ".join(json.dumps(a) for a in args)
    if origin is list:
        return f"an array of {_plural(args[0] if args else Any)}"
    if origin is dict:
        return f"a table of {_plural(args[1] if len(args) == 2 else Any)}"
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return "a table"
    return _NAMES.get(tp, "a value")


def _plural(tp: Any) -> str:
    if typing.get_origin(tp) is typing.Annotated:
        return _PLURALS.get(typing.get_args(tp)[0], "values") + _bounds(typing.get_args(tp)[1:])
    return _PLURALS.get(tp) or f"values that are each {expected(tp)}"


def _bounds(metas: tuple[Any, ...]) -> str:
    said = []
    for meta in metas:
        if isinstance(meta, msgspec.Meta):
            if meta.ge is not None:
                said.append(f"at least {meta.ge:g}")
            if meta.gt is not None:
                said.append(f"more than {meta.gt:g}")
            if meta.le is not None:
                said.append(f"at most {meta.le:g}")
            if meta.lt is not None:
                said.append(f"less than {meta.lt:g}")
    return f" of {' and '.join(said)}" if said else ""


def shown(value: Any) -> str:
    """``value`` as TOML names it: ``the integer 1``, ``the string "x"``, ``a table``."""
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value:g}"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return f"the string {text if len(text) <= 80 else text[:79] + '…'}"
    if isinstance(value, list):
        return "an array" if value else "an empty array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (datetime.date, datetime.time)):
        return f"the date-time {value.isoformat()}"
    return "nothing" if value is None else f"a {type(value).__name__}"
