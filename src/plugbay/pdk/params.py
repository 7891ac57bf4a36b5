"""``key=value`` command parameters as typed on a command line (``plugbay call``, ``debug``).

Shared by the CLI and the PDK's debugger, so neither imports the other.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from plugbay.api.errors import PlugbayError

__all__ = ["parse_params"]


def parse_params(
    pairs: Iterable[str], spec: Any = None, strings: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Parameters by name from ``name=value`` pairs.

    A value is JSON when it parses as JSON (``n=3``, ``tags=["a"]``), else text; a
    parameter the command takes as ``str`` (per ``spec``, a command spec, or named in
    ``strings``) is always text, so ``text=007`` stays ``"007"``.
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
            params[key] = raw
            continue
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params
