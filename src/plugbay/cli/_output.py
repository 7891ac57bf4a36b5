"""Where every ``plugbay`` command prints, and how an error reads, without typer: the
lean ``plugbay run`` (:mod:`plugbay.cli._entry`) prints with these before any
command framework is loaded."""

from __future__ import annotations

import json
import os
import sys
from typing import Final

from rich.console import Console
from rich.markup import escape

from plugbay.api.errors import PlugbayError

__all__ = ["err", "out", "say_error"]

#: how wide a table may grow when the output is not a terminal (a pipe, a file): its
#: natural width, never cut to 80 columns with ellipses ('plugbay list | grep ID' finds
#: the whole id); COLUMNS still sets it
_PIPED_WIDTH: Final = 4096


def _console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    piped = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(
        stderr=stderr, highlight=False, soft_wrap=True, width=_PIPED_WIDTH if piped else None
    )


out = _console()
err = _console(stderr=True)


def say_error(error: PlugbayError | str, *, as_json: bool = False) -> None:
    """Print one paragraph (what, where, what to do), or a JSON error."""
    if as_json:
        payload = error.to_dict() if isinstance(error, PlugbayError) else {"message": error}
        out.print_json(json.dumps({"ok": False, "error": payload}, default=str))
    else:
        err.print(f"[bold red]error:[/] {escape(str(error))}")
        at = error.details.get("raised_at") if isinstance(error, PlugbayError) else None
        if isinstance(at, dict):
            _say_raised_at(at)


def _say_raised_at(at: dict[str, object]) -> None:
    """Where in the plugin's own code its error was raised (``details["raised_at"]``):
    the line a plugin author opens, without the whole traceback (that is in --json)."""
    err.print(
        f"  raised at {at.get('file')}:{at.get('line')} in {at.get('function')}",
        markup=False,
    )
    if at.get("code"):
        err.print(f"    {at['code']}", markup=False)
