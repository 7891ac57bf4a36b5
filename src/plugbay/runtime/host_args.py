"""``Host(...)``'s arguments that mypy cannot check for the application.

A ``str`` is an ``Iterable[str]`` to Python's typing, so ``Host(inline="acme.*")`` type
checks, and iterating it would give the patterns ``'a'``, ``'c'``, …, ``'*'``: every
plugin trusted to run in the host's process, unsandboxed. Such an argument is refused
where it is given, naming it and saying how to write it; so is a time that is not a
positive number of seconds (``call_timeout=0`` is no time, not "no limit"). A plugins
directory that does not exist is refused when the host opens (it may be made between).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Final

from plugbay.api.errors import ParameterError
from plugbay.model.discover import plugins_dir_problem
from plugbay.model.seconds import is_seconds

__all__ = ["check_plugin_dirs", "crash_count", "missing_dirs", "plugin_ids", "seconds"]


def plugin_ids(value: Iterable[str], argument: str) -> tuple[str, ...]:
    """``value`` (plugin ids or fnmatch patterns of them) as a tuple; a lone ``str``, or
    an item that is not one, is refused with :class:`ParameterError`."""
    if isinstance(value, str):
        raise ParameterError(
            f"{argument} takes a list of plugin ids, not the string {value!r}: each of its "
            "characters would be read as an id",
            where=f"Host({argument}=...)",
            hint=f"write {argument}=[{value!r}]",
        )
    ids = tuple(value)
    for item in ids:
        if not isinstance(item, str):
            raise ParameterError(
                f"{argument} takes plugin ids (strings), not {item!r}",
                where=f"Host({argument}=...)",
                hint=f"write {argument}=['acme.greeter', 'acme.*']",
            )
    return ids


def seconds(value: float, argument: str, *, zero: str | None = None) -> float:
    """``value`` as a number of seconds: finite and above 0, or with ``zero`` (what 0
    means for this argument) at least 0. Anything else (``0`` or ``-1`` read as no
    limit, ``inf``, ``nan``, a string, ``None``) is refused with :class:`ParameterError`
    where it is given, not at the first call it would bound."""
    if is_seconds(value, zero=zero is not None):
        return float(value)
    default = _DEFAULTS[argument]
    takes = "a number of seconds " + ("0 or above" if zero else "above 0")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParameterError(
            f"{argument} takes {takes}, not {value!r}",
            where=f"Host({argument}=...)",
            hint=f"write {argument}={default} (the default) or another number of seconds",
        )
    meaning = f"; 0 {zero}" if zero else ": 0 or less is no time at all, not no limit"
    raise ParameterError(
        f"{argument} takes {takes}, not {value!r}{meaning}",
        where=f"Host({argument}=...)",
        hint=f"write {argument}={default} (the default), or a larger number of seconds "
        "for longer work",
    )


def crash_count(value: int, argument: str = "max_crashes") -> int:
    """``value`` as how many crashes within ``crash_window`` end a plugin's restarts: an
    ``int`` of 1 or more (0 would give up at the first crash as 1 does), else refused
    with :class:`ParameterError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParameterError(
            f"{argument} takes a whole number of crashes, 1 or more, not {value!r} "
            "(1: a plugin fails at its worker's first crash, with no restart)",
            where=f"Host({argument}=...)",
            hint=f"write {argument}={_DEFAULTS[argument]} (the default), or another count",
        )
    return value


#: the defaults of ``Host(...)``, said in the hint of a refused value
_DEFAULTS: Final = {
    "call_timeout": "30.0",
    "init_timeout": "10.0",
    "cleanup_timeout": "5.0",
    "restart_backoff": "0.5",
    "crash_window": "60.0",
    "probation": "0.5",
    "max_crashes": "5",
}


def missing_dirs(value: str) -> str:
    """``missing_plugins_dir``: ``"refuse"`` or ``"note"``, else :class:`ParameterError`."""
    if value not in ("refuse", "note"):
        raise ParameterError(
            f"missing_plugins_dir takes 'refuse' or 'note', not {value!r}",
            where="Host(missing_plugins_dir=...)",
            hint="'refuse' (the default) refuses the start; 'note' starts without the "
            "directory and keeps the problem in host.problems",
        )
    return value


def check_plugin_dirs(dirs: Iterable[Path]) -> None:
    """Refuse the start of a host one of whose plugins directories does not exist (a
    typo would otherwise start it with none of the plugins the application meant)."""
    for directory in dirs:
        problem = plugins_dir_problem(directory)
        if problem is not None:
            raise ParameterError(
                f"{problem}: the host is not started without its plugins",
                where="Host(plugins_dir=...)",
                hint="create it before the host starts, or pass the directory that holds "
                "the plugins (plugins_dir=None: entry points and the store only); "
                "Host(missing_plugins_dir='note') starts without it, the problem kept "
                "in host.problems",
            )
