"""The ``plugbay`` command: one typer app, split by command group; rendering lives here.

``main`` is the command; ``app``, the typer app, is loaded when first asked for, so
``plugbay run`` starts its plugins without loading the command framework
(:mod:`plugbay.cli._entry`).
"""

from __future__ import annotations

import sys
import types
from typing import Any

from plugbay.cli._entry import main

__all__ = ["app", "main"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from plugbay.cli.app import app

        return app
    raise AttributeError(f"module 'plugbay.cli' has no attribute {name!r}")


class _Package(types.ModuleType):
    """``plugbay.cli.app`` is the typer app, as it always was, not the submodule that
    makes it: importing the submodule would otherwise bind its name here."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "app" and isinstance(value, types.ModuleType):
            value = value.app
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
