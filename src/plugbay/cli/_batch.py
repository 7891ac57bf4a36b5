"""``plugbay call ID COMMAND --batch FILE``: many calls of one command at once
(``host.call_many``), their parameter sets read from a file or standard input, their
answers printed in order."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Final

from plugbay.api.errors import ParameterError, PlugbayError
from plugbay.cli._console import err, out
from plugbay.cli._counted import counted
from plugbay.cli._options import print_json, to_builtins

__all__ = ["print_batch", "read_batch"]

_SHAPE: Final = (
    'give one object of parameters per call: a JSON array such as [{"a": 1}, {"a": 2}], '
    "or one object a line (JSON lines)"
)
_JSON_TYPES: Final = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "true or false",
    type(None): "null",
}


def read_batch(source: str) -> list[dict[str, Any]]:
    """The parameter sets in ``source`` (a file, or ``-`` for standard input): a JSON array
    of objects, or JSON lines of objects; a :class:`ParameterError` saying where it is not."""
    where = "standard input" if source == "-" else source
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PlugbayError(
            f"cannot read the batch: {reason}",
            where=where,
            hint="name a readable JSON file, or '-' to read standard input",
        ) from None
    items: Any
    if text.lstrip().startswith("["):
        items = _loads(text, where)
    else:
        items = [
            _loads(line, f"{where}, line {n}")
            for n, line in enumerate(text.splitlines(), 1)
            if line.strip()
        ]
    if not items:
        raise ParameterError("the batch has no calls in it", where=where, hint=_SHAPE)
    for n, item in enumerate(items, 1):
        if not isinstance(item, dict):
            kind = _JSON_TYPES.get(type(item), type(item).__name__)
            raise ParameterError(
                f"call {n} of the batch is {kind}, not an object of parameters",
                where=where,
                hint=_SHAPE,
            )
    return list(items)


def _loads(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParameterError(
            f"the batch is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
            where=where,
            hint=_SHAPE,
        ) from None


def print_batch(results: list[Any], *, as_json: bool) -> int:
    """Each call's answer in order, one line each (``--json``: one document); the exit
    status: 1 when a call failed."""
    failed = sum(isinstance(r, PlugbayError) for r in results)
    if as_json:
        print_json(
            {
                "ok": not failed,
                "results": [
                    {"error": r.to_dict()}
                    if isinstance(r, PlugbayError)
                    else {"result": to_builtins(r)}
                    for r in results
                ],
            }
        )
        return 1 if failed else 0
    for result in results:
        if isinstance(result, PlugbayError):
            out.print(f"error: {result}", markup=False, soft_wrap=True)
        elif isinstance(result, str):
            out.print(result, markup=False, soft_wrap=True)
        else:
            out.print(json.dumps(to_builtins(result), default=str), markup=False, soft_wrap=True)
    if failed:
        err.print(f"{failed} of {counted(len(results), 'call')} failed")
    return 1 if failed else 0
