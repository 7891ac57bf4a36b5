"""A path option naming the wrong kind of thing, refused before the command runs.

typer takes any string for a path, so ``--state notes.txt`` (a file) went on to "no host
is running on notes.txt", ``--plugins plugbay.toml`` to "the plugins directory does not
exist", and ``keygen --dir notes.txt`` to a traceback. :func:`check_path_options` gives
every path option a check of what it takes: a directory (when there is something at
the path) or a file; the usage error (exit 2) names the option, the value given and
what the option takes, in text and in the ``--json`` error object alike.

A file to read that is named and does not exist is refused too (``--config
nothere.toml`` ran with the default policy: a typo dropped the user's), as is a file to
write into a directory that does not exist (refused only after the work was done), and
an empty value for any path (typer reads ``''`` as ``.``, the current directory).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from typer import _click  # the click typer carries: its parameters and exceptions
from typer.core import _TyperParameter

from plugbay.cli._values import expected_of

__all__ = ["check_path_options"]

#: option → what it takes, in a user's words, and whether that is a directory
_TAKES: dict[str, tuple[str, bool]] = {
    "--state": ("a state directory", True),
    "--plugins": ("a plugins directory", True),
    "--dir": ("a directory", True),
    "--out": ("a directory to write into", True),
    "--config": ("a plugbay.toml file", False),
    "--sbom": ("a file to write", False),
    "--export": ("a file to write", False),
    "--key": ("a key file", False),
    "--from": ("a backup file", False),
    "--to": ("a file to write, or a directory to write into", False),
}
#: the files of :data:`_TAKES` read, so one named must exist (a hidden one too: a script
#: passing `metrics --config` with a typo learns of it), those written, into a directory
#: that exists, and those that take a directory that exists to write a file into as well
_READ = frozenset({"--config", "--key", "--from"})
_INTO = frozenset({"--to"})
_WRITTEN = frozenset({"--sbom", "--export"}) | _INTO
#: arguments whose kind is known, by name, as :data:`_TAKES`
_ARGUMENTS: dict[str, tuple[str, bool]] = {"directory": ("a directory of plugin wheels", True)}
#: what to do instead of naming a file to read that does not exist, when not "name one"
_INSTEAD_OF_MISSING = {
    "--config": "check the path, or give none to read ./plugbay.toml if there is one"
    " (else the default policy)",
    "--from": "check the path, or give none to restore the newest good backup"
    " ('plugbay state check' lists them)",
}


def check_path_options(commands: Iterable[_click.Command]) -> None:
    """Give each path option of ``commands`` (and of their subcommands) its check."""
    for command in commands:
        for param in command.params:
            if not (expected_of(param) or "").startswith("a path"):
                continue
            param.process_value = _not_empty(param, param.process_value)  # type: ignore[method-assign,assignment]
            if param.opts and param.opts[0] in _INTO:
                param.process_value = _slash_means_directory(param, param.process_value)  # type: ignore[method-assign,assignment]
            takes = _takes(param)
            if takes is not None:
                param.callback = _checked(*takes, param.callback)
        check_path_options((getattr(command, "commands", None) or {}).values())


def _takes(param: _click.Parameter) -> tuple[str, bool] | None:
    if not param.opts:
        return None
    if param.param_type_name == "argument":
        return _ARGUMENTS.get(param.opts[0])
    return _TAKES.get(param.opts[0])


_Callback = Callable[[_click.Context, _click.Parameter, Any], Any]


def _checked(what: str, directory: bool, then: _Callback | None) -> _Callback:
    def check(ctx: _click.Context, param: _click.Parameter, value: Any) -> Any:
        values = value if isinstance(value, (list, tuple)) else [value]
        for path in values:
            if isinstance(path, Path):
                _refuse_wrong_kind(path, what, directory, ctx, param)
        return value if then is None else then(ctx, param, value)

    return check


def _refuse_wrong_kind(
    path: Path, what: str, directory: bool, ctx: _click.Context, param: _click.Parameter
) -> None:
    if directory and path.exists() and not path.is_dir():
        found = "is a file"
        instead = "name a directory instead"
    elif not directory and path.is_dir() and param.opts[0] not in _INTO:
        found = "is a directory"
        instead = "name a file instead"
    elif param.opts[0] in _READ and not path.exists():
        found = "does not exist"
        instead = _INSTEAD_OF_MISSING.get(param.opts[0], "name a file that exists")
        if getattr(param, "hidden", False):  # kept for scripts: what it names is not read
            instead = "check the path, or leave the option out: it is no longer used"
    elif param.opts[0] in _WRITTEN and not path.parent.is_dir():
        there = "is not a directory" if path.parent.exists() else "does not exist"
        found = f"is in '{path.parent}', which {there}"
        instead = f"create '{path.parent}' first, or name a file in a directory that exists"
    else:
        return
    raise _refusal(f"'{path}' {found}; it takes {what}: {instead}", ctx, param)


def _not_empty(
    param: _click.Parameter, convert: Callable[[_click.Context, Any], Any]
) -> Callable[[_click.Context, Any], Any]:
    """``param``'s ``convert`` (its ``process_value``) refusing an empty path, which typer
    would read as ``.`` (``--state ''``: the current directory)."""

    def process_value(ctx: _click.Context, value: Any) -> Any:
        values = value if isinstance(value, (list, tuple)) else [value]
        if "" in values:
            takes = _takes(param)
            what = takes[0] if takes is not None else "a path"
            raise _refusal(f"'' is an empty path; it takes {what}: name one", ctx, param)
        return convert(ctx, value)

    return process_value


def _slash_means_directory(
    param: _click.Parameter, convert: Callable[[_click.Context, Any], Any]
) -> Callable[[_click.Context, Any], Any]:
    """``param``'s ``convert`` refusing a path written with a trailing ``/`` (a directory)
    where there is no directory: :class:`~pathlib.Path` drops the ``/``, so ``--to
    newdir/`` was taken as a file named ``newdir``."""

    def process_value(ctx: _click.Context, value: Any) -> Any:
        values = value if isinstance(value, (list, tuple)) else [value]
        for raw in values:
            if isinstance(raw, str) and raw.endswith(("/", os.sep)) and not Path(raw).is_dir():
                bare = raw.rstrip("/" + os.sep)
                found, instead = "which does not exist", f"create '{bare}' first"
                if Path(raw).exists():
                    found, instead = f"but '{bare}' is not one", "name an existing directory"
                takes = _takes(param)
                what = takes[0] if takes is not None else "a path"
                raise _refusal(
                    f"'{raw}' names a directory (it ends in '/'), {found}; it takes {what}: "
                    f"{instead}, or leave the '/' out to name a file",
                    ctx,
                    param,
                )
        return convert(ctx, value)

    return process_value


def _refusal(
    message: str, ctx: _click.Context, param: _click.Parameter
) -> _click.exceptions.BadParameter:
    return _click.exceptions.BadParameter(
        message, ctx=ctx, param=param if isinstance(param, _TyperParameter) else None
    )
