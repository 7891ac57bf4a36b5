"""A path option naming the wrong kind of thing, refused before the command runs.

typer takes any string for a path, so ``--state notes.txt`` (a file) went on to "no host
is running on notes.txt", ``--plugins plugbay.toml`` to "the plugins directory does not
exist", and ``keygen --dir notes.txt`` to a traceback. :func:`check_path_options` gives
every path option a check of what it takes: a directory (when there is something at
the path) or a file; the usage error (exit 2) names the option, the value given and
what the option takes, in text and in the ``--json`` error object alike.
"""

from __future__ import annotations

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
}


def check_path_options(commands: Iterable[_click.Command]) -> None:
    """Give each path option of ``commands`` (and of their subcommands) its check."""
    for command in commands:
        for param in command.params:
            takes = _TAKES.get(param.opts[0]) if param.opts else None
            if takes is not None and (expected_of(param) or "").startswith("a path"):
                param.callback = _checked(*takes, param.callback)
        check_path_options((getattr(command, "commands", None) or {}).values())


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
        found = "a file"
    elif not directory and path.is_dir():
        found = "a directory"
    else:
        return
    raise _click.exceptions.BadParameter(
        f"'{path}' is {found}; it takes {what}: name {'a directory' if directory else 'a file'}"
        " instead",
        ctx=ctx,
        param=param if isinstance(param, _TyperParameter) else None,
    )
