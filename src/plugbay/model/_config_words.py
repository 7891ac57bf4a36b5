"""A config value a plugin's schema refuses, said in the operator's words.

Whatever sets the value (``plugbay config``, ``PUT /api/v1/plugins/{id}/config``, the
dashboard's form, ``[plugins."ID"]`` in ``plugbay.toml`` at start), the refusal says the
key, the value given (a ``secret`` key's never), what the key allows in words, and what
to do: ``config key 'count' is invalid: 0 is not a whole number from 1 to 10``. A
``pattern`` is said by the field's ``pattern-hint`` when it has one; else the regular
expression is named as one, with the key's description beside it.
"""

from __future__ import annotations

import difflib
import json
from typing import TYPE_CHECKING, Any, Final

from plugbay.api.errors import ConfigError

if TYPE_CHECKING:
    from plugbay.model._config_schema import ConfigField

__all__ = ["allowed", "pointing", "refused", "together", "unknown_key"]

_KINDS: Final = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "a table of keys and values (a JSON object)",
}
_ITEMS: Final = {
    "string": "strings",
    "integer": "whole numbers",
    "number": "numbers",
    "boolean": "true/false values",
}
_ITEM: Final = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
}
#: the longest a value given is shown in an error (a long one is cut, with "…")
_SHOWN_CHARS: Final = 80


def allowed(f: ConfigField) -> str:
    """What ``f`` allows, as a noun phrase completing "VALUE is not …":
    ``a whole number from 1 to 10``, ``one of "fast", "slow"``."""
    if f.enum is not None:
        return "one of " + ", ".join(_json(v) for v in f.enum)
    if f.type == "array":
        return f"a list of {_ITEMS[f.items or 'string']}" + _length(f, "item", "with")
    text = _KINDS[f.type]
    if f.type in ("integer", "number"):
        return text + _range(f)
    if f.type != "string":
        return text
    text += _length(f, "character", "of")
    if f.pattern is None:
        return text
    if f.pattern_hint:
        return f"{text}: {f.pattern_hint}" if text != "text" else f.pattern_hint
    return f"{text} that the regular expression {f.pattern} matches in full"


def refused(
    plugin: str, f: ConfigField, given: Any, *, item: int | None = None, source: str
) -> ConfigError:
    """The error for ``given``, a value of ``f`` its schema refuses (``item``: the index
    of the array's item that is wrong, when one is)."""
    said = f"{_shown(f, given)}{'' if f.secret else _count(f, given)} is not {allowed(f)}"
    if item is not None and isinstance(given, list) and 0 <= item < len(given):
        kind = _ITEM[f.items or "string"]
        said += f": item {item + 1}, {_shown(f, given[item])}, is not {kind}"
    example = (
        f", such as {_json(f.default)} (its default)"
        if f.has_default and not f.secret and f.default is not None
        else ""
    )
    hint = f"set '{f.name}' to a value it allows{example}"
    if f.pattern and not f.pattern_hint and f.description:
        hint += f"; the key's description: {_json(f.description)}"
    return ConfigError(
        f"config key '{f.name}' is invalid: {said}",
        plugin=plugin,
        where=f"{source}: {f.name}",
        hint=hint,
    )


def unknown_key(plugin: str, key: str, known: list[str], *, source: str) -> ConfigError:
    """The error for a key the schema does not declare (its value is not shown: it may be
    a secret meant for another plugin, or a misspelt secret key)."""
    close = difflib.get_close_matches(key, known, n=1)
    near = f"did you mean '{close[0]}'? " if close else ""
    return ConfigError(
        f"unknown config key '{key}': {plugin} declares no such key",
        plugin=plugin,
        where=f"{source}: {key}",
        hint=f"{near}remove '{key}', or name one of this plugin's config keys: "
        + (", ".join(known) or "none"),
    )


def together(plugin: str, problems: list[ConfigError], *, source: str) -> ConfigError:
    """One refusal for every key of one attempt that is wrong, each in its own words:
    the messages and the hints joined in order; ``details["problems"]`` holds each one
    (``key``, ``message``, ``where``, ``hint``) for a script or a form to show beside
    its key."""
    keys = [(p.where or "").partition(": ")[2] for p in problems]
    error = (
        problems[0]
        if len(problems) == 1
        else ConfigError(
            "; ".join(p.message for p in problems),
            plugin=plugin,
            where=f"{source}: {', '.join(keys)}",
            hint="; ".join(p.hint for p in problems if p.hint),
        )
    )
    error.details["problems"] = [
        {"key": key, "message": p.message, "where": p.where, "hint": p.hint}
        for key, p in zip(keys, problems, strict=True)
    ]
    return error


def pointing(error: ConfigError, pointer: str) -> ConfigError:
    """``error`` (a refusal of config keys) with its hint ending in where to read the keys
    the plugin declares: ``pointer`` is in the words of whoever asked (the CLI's command,
    the API's path); a pointer said before (by the API, to the CLI) is replaced."""
    problems = error.details.get("problems")
    if problems:
        hints = "; ".join(p["hint"] for p in problems if p.get("hint"))
        error.hint = f"{hints}; {pointer}" if hints else pointer
    return error


def _range(f: ConfigField) -> str:
    low, high = f.minimum, f.maximum
    if low is not None and high is not None:
        return f" from {_number(low)} to {_number(high)}"
    if low is not None:
        return f" of at least {_number(low)}"
    return f" of at most {_number(high)}" if high is not None else ""


def _length(f: ConfigField, unit: str, joiner: str) -> str:
    low, high = f.min_length, f.max_length
    if low is not None and high is not None:
        return f" {joiner} {low} to {high} {unit}s" if low != high else _units(joiner, low, unit)
    if low is not None:
        return f" {joiner} at least" + _units("", low, unit)
    return f" {joiner} at most" + _units("", high, unit) if high is not None else ""


def _units(joiner: str, n: int, unit: str) -> str:
    return f"{' ' + joiner if joiner else ''} {n} {unit}{'' if n == 1 else 's'}"


def _count(f: ConfigField, given: Any) -> str:
    """How long ``given`` is, when its length is what ``f`` refuses."""
    if (f.min_length is None and f.max_length is None) or not isinstance(given, (str, list)):
        return ""
    n = len(given)
    if (f.min_length is None or n >= f.min_length) and (f.max_length is None or n <= f.max_length):
        return ""
    unit = "character" if isinstance(given, str) else "item"
    return f" ({n} {unit}{'' if n == 1 else 's'})"


def _shown(f: ConfigField, value: Any) -> str:
    if f.secret:
        return f"the value given (not shown: '{f.name}' is secret)"
    text = _json(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
