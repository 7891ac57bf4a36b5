"""What every ``plugbay`` command prints with, and how it fails (shared by every command group)."""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer

from plugbay.api.errors import PlugbayError
from plugbay.cli._output import err, out, say_error

__all__ = ["JsonOpt", "err", "fail", "out"]

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def fail(error: PlugbayError | str, *, as_json: bool = False, code: int = 1) -> NoReturn:
    """Print one paragraph (what, where, what to do), or a JSON error, and exit ``code``."""
    say_error(error, as_json=as_json)
    raise typer.Exit(code)
