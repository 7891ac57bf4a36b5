"""An option value of the wrong type or out of range, said in plugbay's words.

typer converts a command line's values with pydantic, and its message is pydantic's
("Input should be a valid integer, unable to parse string as an integer"): it names
neither the value given nor what the option takes. :func:`in_plugbay_words` rewrites
such an error once, for every int, float and path option (and argument), before it
is shown as text or as the JSON error object (``cli._usage``).
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from typer import _click  # the click typer carries: the exceptions its parser raises

__all__ = ["expected_of", "in_plugbay_words"]

#: what a value of each type is, in a user's words
_NOUNS: dict[Any, str] = {int: "a whole number", float: "a number", Path: "a path"}


def in_plugbay_words(exc: _click.exceptions.BadParameter) -> None:
    """Make ``exc``'s message say the value given and what the option takes, in place, when
    it is typer's conversion failing (a pydantic error); any other message is left as is."""
    given = _input_of(exc.__cause__)
    expected = None if exc.param is None else expected_of(exc.param)
    if given is not _NOTHING and expected is not None:
        exc.message = f"{_quoted(given)} is not {expected}"


def expected_of(param: _click.Parameter) -> str | None:
    """What ``param`` takes: "a whole number from 0 to 65535", "a number of 0 or more";
    None for a type other than int, float or path (a choice says its choices itself)."""
    descriptor = getattr(param, "type_descriptor", None)
    noun = _NOUNS.get(_plain(getattr(descriptor, "annotation", None)))
    if noun is None:
        return None
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if low is not None and high is not None:
        return f"{noun} from {low:g} to {high:g}"
    if low is not None:
        return f"{noun} of {low:g} or more"
    if high is not None:
        return f"{noun} of at most {high:g}"
    return noun


_NOTHING = object()


def _input_of(cause: BaseException | None) -> object:
    """The value pydantic refused, or ``_NOTHING`` when ``cause`` is no pydantic error."""
    errors = getattr(cause, "errors", None)
    if type(cause).__name__ != "ValidationError" or not callable(errors):
        return _NOTHING
    found = errors()
    return found[0].get("input", _NOTHING) if found else _NOTHING


def _plain(annotation: Any) -> Any:
    """``int`` of ``int | None``, ``Path`` of ``list[Path]``: the type one value has."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        kinds = [arg for arg in get_args(annotation) if arg is not type(None)]
        return _plain(kinds[0]) if len(kinds) == 1 else annotation
    if origin in (list, tuple):
        kinds = list(get_args(annotation))
        return _plain(kinds[0]) if kinds else annotation
    return annotation


def _quoted(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    return "'" + text.replace("'", "\\'") + "'"
