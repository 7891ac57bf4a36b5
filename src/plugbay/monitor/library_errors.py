"""The ``error`` label of a library's exception: ``module.Class``, a few per command.

A plugin's call that fails with ``json.JSONDecodeError``, ``httpx.ConnectError`` or
``sqlite3.OperationalError`` tells the operator more by that name than as ``other``.
Such a class is a library's when its module is one of Python's standard library or
comes from an installed distribution (a ``site-packages`` directory of the process
the plugin runs in), and the class is what that module names it (not one made up at
run time, nor a function's local one); it is then labelled
``f"{cls.__module__}.{cls.__qualname__}"`` (``json.decoder.JSONDecodeError``). A
plugin's own classes stay ``other``.

A sandboxed worker finds the name itself (only it holds the class) and sends it as
``details["library"]`` of the plugin's error; the host cannot check a worker's claim,
so it takes a name only in that shape, and every command counts at most
:data:`MAX_LIBRARY_LABELS` names: any further one is ``other``. That bound, not the
worker's honesty, keeps ``plugbay_call_errors_total`` from growing without end.
"""

from __future__ import annotations

import re
import sys
import sysconfig
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Final

__all__ = [
    "LIBRARY_KEY",
    "MAX_LIBRARY_LABELS",
    "claimed_library",
    "counted_as",
    "library_details",
    "library_name",
]

#: the key of a worker's ``PluginCallError`` details that names a library's class
LIBRARY_KEY: Final = "library"
#: distinct library labels one command counts; any further one is ``other``
MAX_LIBRARY_LABELS: Final = 8
_SHAPE: Final = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
_LONGEST: Final = 128


@cache
def _installed_roots() -> tuple[str, ...]:
    """The directories installed distributions live in, in this process."""
    paths = sysconfig.get_paths()
    roots = {paths["purelib"], paths["platlib"]}
    roots.update(p for p in sys.path if p.endswith(("site-packages", "dist-packages")))
    return tuple(str(Path(r).resolve()) + "/" for r in roots if r)


def _is_library(module: str) -> bool:
    top = module.partition(".")[0]
    if top in ("builtins", "__main__", "plugbay"):  # labelled by their own rules
        return False
    if top in sys.stdlib_module_names:
        return True
    file = getattr(sys.modules.get(top), "__file__", None)
    return isinstance(file, str) and str(Path(file).resolve()).startswith(_installed_roots())


def library_name(cls: type[BaseException]) -> str | None:
    """``module.Class`` when ``cls`` is a library's exception class (see the module
    docstring), else None. On a failed call's path only: never on one that succeeds."""
    module, qualname = getattr(cls, "__module__", None), getattr(cls, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname:
        return None
    found: object = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if found is not cls or not _is_library(module):
        return None
    name = f"{module}.{qualname}"
    return name if len(name) <= _LONGEST else None


def library_details(exc: BaseException) -> dict[str, str]:
    """What a worker adds to its error's details: the library's name of ``exc``'s class,
    when it is one (a plugin's own class adds nothing)."""
    name = library_name(type(exc))
    return {LIBRARY_KEY: name} if name is not None else {}


def claimed_library(details: object) -> str | None:
    """The library name a worker's error claims, when it has the shape of one."""
    claim = details.get(LIBRARY_KEY) if isinstance(details, Mapping) else None
    if isinstance(claim, str) and len(claim) <= _LONGEST and _SHAPE.fullmatch(claim):
        return claim
    return None


def counted_as(seen: Mapping[str, int], label: str, other: str) -> str:
    """``label`` as one command counts it: a library's name (dotted) beyond the first
    :data:`MAX_LIBRARY_LABELS` that command counted is ``other``."""
    if "." not in label or label in seen:
        return label
    if sum(1 for name in seen if "." in name) >= MAX_LIBRARY_LABELS:
        return other
    return label
