"""The options many commands share, and the small helpers their bodies share."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from plugbay.api.errors import PlugbayError
from plugbay.cli._console import fail, out
from plugbay.cli._defaults import config_file, host_kwargs
from plugbay.cli._listing import STATE_COLOURS, state_text

__all__ = [
    "STATE_COLOURS",
    "ConfigOpt",
    "PluginIdArg",
    "PluginsOpt",
    "StateOpt",
    "add_command",
    "config_file",
    "host_kwargs",
    "literal_colons",
    "print_json",
    "prose",
    "state_text",
    "store_op",
    "to_builtins",
]

T = TypeVar("T")

PluginsOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--plugins",
        "-p",
        envvar="PLUGBAY_PLUGINS",
        help="Plugins directory (repeatable). Default: ./plugins",
        show_default=False,
    ),
]
StateOpt = Annotated[
    Path,
    typer.Option("--state", envvar="PLUGBAY_STATE", help="State directory (SQLite lives here)."),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="PLUGBAY_CONFIG",
        # rich markup would take [plugins."id"] for a style and print nothing: escaped
        help='Host config file with \\[plugins."id"] tables. Default: ./plugbay.toml if present',
        show_default=False,
    ),
]
PluginIdArg = Annotated[
    str, typer.Argument(metavar="ID", help="Plugin id ('plugbay list' shows them)")
]


def to_builtins(value: Any) -> Any:
    """A command's result (or a record) as JSON-ready builtins."""
    import msgspec

    return msgspec.to_builtins(value, str_keys=True, enc_hook=str)


def print_json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str))


def store_op(state_dir: Path, fn: Callable[[Any], T], *, as_json: bool = False) -> T:
    """Run ``fn`` on the state store of ``state_dir``; a failure is printed and exits 1."""
    from plugbay.state import StateStore

    try:
        with StateStore.open(state_dir) as store:
            return fn(store)
    except PlugbayError as exc:
        fail(exc, as_json=as_json)


def prose(doc: str | None) -> str:
    """A docstring as help text: each paragraph on one line, for rich to wrap to the
    terminal (a paragraph that starts with ``\\b`` keeps its line breaks)."""
    paragraphs = inspect.cleandoc(doc or "").split("\n\n")
    text = "\n\n".join(p if p.startswith("\b") else " ".join(p.split()) for p in paragraphs)
    return literal_colons(text)


#: a word between two colons, the shape rich reads as an emoji code (``:id:`` is 🆔)
_BETWEEN_COLONS = re.compile(r"(?<=:)([^\s:\[\]]+)(?=:)")


def literal_colons(text: str) -> str:
    """``text`` with each ``:word:`` split by an empty style span, so rich shows it as
    written ("call:ID:", not "call🆔"); rich markup has no escape for an emoji code."""
    return _BETWEEN_COLONS.sub(r"\1[b][/b]", text)


def add_command(
    app: typer.Typer, fn: Callable[..., Any], *, panel: str, name: str | None = None
) -> None:
    """File ``fn`` as a command of ``app`` under the help panel ``panel``."""
    app.command(name, help=prose(fn.__doc__), rich_help_panel=panel)(fn)
