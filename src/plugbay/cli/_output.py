"""Where every ``plugbay`` command prints, and how an error reads, without typer: the
lean ``plugbay run`` (:mod:`plugbay.cli._entry`) prints with these before any
command framework is loaded."""

from __future__ import annotations

import json

from rich.console import Console
from rich.markup import escape

from plugbay.api.errors import PlugbayError

__all__ = ["err", "out", "say_error"]

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def say_error(error: PlugbayError | str, *, as_json: bool = False) -> None:
    """Print one paragraph (what, where, what to do), or a JSON error."""
    if as_json:
        payload = error.to_dict() if isinstance(error, PlugbayError) else {"message": error}
        out.print_json(json.dumps({"ok": False, "error": payload}, default=str))
    else:
        err.print(f"[bold red]error:[/] {escape(str(error))}")
