"""Usage errors (exit 2) in the shape a ``--json`` reader expects.

A misspelt option, a missing argument or a value of the wrong type is found by the
command framework before any command runs, so no command could answer it with
``--json``: its reader got a box of text on stderr and nothing on stdout. The
``plugbay`` group reads ``--json`` on the command line itself and, when it is
there, answers such an error with the common error object on stdout
(docs/cli-json.md, "When a command fails"), still exiting 2.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import typer
from typer import _click  # the click typer carries: the exceptions its parser raises
from typer.core import TyperGroup

from plugbay.api.errors import PlugbayError
from plugbay.cli._output import say_error
from plugbay.cli._path_options import check_path_options
from plugbay.cli._values import in_plugbay_words

__all__ = ["CommandLineError", "PlugbayGroup"]

_JSON = "plugbay.json"  # ctx.meta key: the command line asks for --json


class CommandLineError(PlugbayError):
    """The command line is not one the command takes: an unknown command or option, a
    missing argument, a value of the wrong type (exit 2)."""

    code = "usage_error"


def asks_json(args: Sequence[str]) -> bool:
    """``--json`` among the options (not after ``--``, where it is an argument)."""
    for arg in args:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


def as_plugbay_error(exc: _click.exceptions.UsageError) -> CommandLineError:
    """``exc`` with where it happened (the command) and what to do (its --help)."""
    ctx = exc.ctx
    path = _command_path(ctx)
    usage = None
    if ctx is not None:
        usage = " ".join(ctx.get_usage().removeprefix("Usage: ").split())  # one line
        usage = usage.replace(ctx.command_path, path, 1)
    return CommandLineError(
        exc.format_message(),
        where=path,
        hint=f"'{path} --help' says what it takes",
        details={"usage": usage},
    )


def _command_path(ctx: _click.Context | None) -> str:
    """``plugbay SUBCOMMAND…`` as a reader of the JSON matches it, however the command
    was started (``python -m plugbay.cli`` names itself so in click's own path)."""
    names: list[str] = []
    while ctx is not None and ctx.parent is not None:
        names.insert(0, ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(["plugbay", *names])


@contextmanager
def _json_usage_errors(wanted: bool) -> Iterator[None]:
    try:
        yield
    except _click.exceptions.UsageError as exc:
        if isinstance(exc, _click.exceptions.BadParameter):
            in_plugbay_words(exc)  # then it is said so in text and in JSON alike
        # a group called with nothing prints its help: that is no error to report
        if not wanted or isinstance(exc, _click.exceptions.NoArgsIsHelpError):
            raise
        say_error(as_plugbay_error(exc), as_json=True)
        raise typer.Exit(exc.exit_code) from exc


class PlugbayGroup(TyperGroup):
    """The ``plugbay`` command's root group: as typer's, and with ``--json`` on the command
    line a usage error anywhere below it answers in JSON (see the module); a path option
    naming the wrong kind of thing is such an error (``cli._path_options``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        check_path_options(self.commands.values())

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: _click.Context | None = None,
        **extra: Any,
    ) -> _click.Context:
        wanted = asks_json(args)
        with _json_usage_errors(wanted):
            ctx = super().make_context(info_name, args, parent, **extra)
        ctx.meta[_JSON] = wanted
        return ctx

    def invoke(self, ctx: _click.Context) -> Any:
        with _json_usage_errors(bool(ctx.meta.get(_JSON))):
            return super().invoke(ctx)
