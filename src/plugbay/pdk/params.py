"""``key=value`` command parameters as typed on a command line (``plugbay call``, ``debug``).

Shared by the CLI and the PDK's debugger, so neither imports the other.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from plugbay.api.errors import ParameterError, PlugbayError

__all__ = ["parse_params"]

#: how a value that is JSON's array or object starts: one that does not parse is a typo
#: in the JSON, not text, for any parameter the command does not take as ``str``
_JSON_OPENERS = ("[", "{")


def parse_params(
    pairs: Iterable[str], spec: Any = None, strings: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Parameters by name from ``name=value`` pairs.

    For a parameter the command takes as ``str`` (per ``spec``, a command spec, or named
    in ``strings``) the value is text (``text=007`` stays ``"007"``), except that a JSON
    string literal is unquoted (``name='"Ada"'`` is ``Ada``). For any other parameter a
    value is JSON when it parses as JSON (``n=3``, ``tags=["a"]``), else text (which the
    call then checks against the declared type); but a value that starts with ``[`` or
    ``{`` and does not parse is refused, naming where the JSON breaks.
    """
    by_name = {p.name: p for p in spec.params} if spec is not None else {}
    params: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise PlugbayError(
                f"'{pair}' is not key=value",
                hint="pass parameters as name=value, e.g. text='I am sad'",
            )
        key, _, raw = pair.partition("=")
        param = by_name.get(key)
        if key in strings or (param is not None and param.annotation is str):
            params[key] = _text(raw)
        else:
            params[key] = _json_or_text(key, raw)
    return params


def _text(raw: str) -> str:
    """A ``str`` parameter's value: the text as typed, or a JSON string literal unquoted."""
    if raw.startswith('"'):
        try:
            value = json.loads(raw)
        except ValueError:
            return raw
        if isinstance(value, str):
            return value
    return raw


def _json_or_text(key: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        if not raw.lstrip().startswith(_JSON_OPENERS):
            return raw
        where = f"line {exc.lineno} column {exc.colno}" if exc.lineno > 1 else f"column {exc.colno}"
        raise ParameterError(
            f"parameter '{key}': {raw!r} is not valid JSON: {exc.msg} at {where} (char {exc.pos})",
            hint=f"""fix the JSON and quote the whole value for the shell, e.g. {key}='["Ada", "Grace"]'""",
        ) from None
