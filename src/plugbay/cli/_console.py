"""What every ``plugbay`` command prints with, and how it fails (shared by every command group)."""

from __future__ import annotations

import json
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from plugbay.api.errors import PlugbayError

__all__ = ["JsonOpt", "err", "fail", "out"]

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def fail(error: PlugbayError | str, *, as_json: bool = False, code: int = 1) -> NoReturn:
    """Print one paragraph (what, where, what to do), or a JSON error, and exit ``code``."""
    if as_json:
        payload = error.to_dict() if isinstance(error, PlugbayError) else {"message": error}
        out.print_json(json.dumps({"ok": False, "error": payload}, default=str))
    else:
        err.print(f"[bold red]error:[/] {escape(str(error))}")
    raise typer.Exit(code)
