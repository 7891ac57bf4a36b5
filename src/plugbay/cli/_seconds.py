"""A command line's time limit in seconds, refused as a usage error when it is no time.

``--timeout 0`` (or a negative, ``inf``, ``nan``) reaches ``Host(call_timeout=...)``,
which refuses it in the library's words (``runtime.host_args``), naming an argument
the operator never wrote. The command line refuses it first, naming its own option
(exit code 2, as any usage error).
"""

from __future__ import annotations

import math

import typer

from plugbay.model.seconds import is_seconds

__all__ = ["finite_number", "positive_seconds", "some_seconds"]


def finite_number(ctx: typer.Context, param: typer.CallbackParam, value: float) -> float:
    """A typer callback: ``value`` when it is a finite number. ``nan`` passes a ``min=0``
    (it compares false with every bound) and ``inf`` is no amount, so both are refused."""
    if math.isfinite(value):
        return value
    raise _refused(param, value, "is not a number {name} can use: it takes a finite number")


def positive_seconds(ctx: typer.Context, param: typer.CallbackParam, value: float) -> float:
    """A typer callback: ``value`` when it is a finite number of seconds above 0, as
    ``Host(call_timeout=...)`` takes them (``model.seconds``)."""
    if is_seconds(value):
        return value
    raise _refused(param, value, "is no time limit: {name} takes a number of seconds above 0")


def some_seconds(ctx: typer.Context, param: typer.CallbackParam, value: float) -> float:
    """A typer callback: ``value`` when it is a finite number of seconds above 0, as a
    span of time (``plugbay profile --seconds``) takes them; click (``max=``) checks the
    upper bound before this is called."""
    if is_seconds(value):
        return value
    raise _refused(param, value, "is no span of time: {name} takes a number of seconds above 0")


def _refused(param: typer.CallbackParam, value: float, said: str) -> typer.BadParameter:
    """The usage error for ``value`` of the option ``param``: what it is not (``said``,
    ``{name}`` the option as written first), an example and the way back to the default.
    Click names the option too (the context and param it was called with)."""
    name = param.opts[0] if param.opts else param.name
    return typer.BadParameter(
        f"{value:g} {said.format(name=name)} "
        f"(e.g. {name} {param.default:g}; leave it out for the default)"
    )
