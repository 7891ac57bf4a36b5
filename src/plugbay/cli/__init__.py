"""The ``plugbay`` command: one typer app, split by command group; rendering lives here."""

from plugbay.cli.app import app, main

__all__ = ["app", "main"]
