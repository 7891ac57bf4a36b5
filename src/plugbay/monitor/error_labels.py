"""The ``error`` label of a failed call: one of a bounded set of names, never a plugin's own.

A plugin can make up any number of exception classes, so the class name alone would
let it grow ``plugbay_call_errors_total`` (and ``errors_by_type`` in ``info``) without
end. A failed call is counted under, in this order:

* a plugbay error: the name of its class in :mod:`plugbay.api.errors`, the nearest one
  for a subclass (``PluginTimeout``, ``ResultTypeError``, ``PermissionDenied``; a
  plugin's own subclass of ``PlugbayError`` is ``PlugbayError``);
* the plugin's own exception: its class's name when that class is one of Python's
  built-in exceptions (``ValueError``, ``KeyError``, ``MemoryError``); a library's
  class (the standard library's, an installed distribution's) by ``module.Class``
  (``json.decoder.JSONDecodeError``), at most a few per command
  (``monitor.library_errors``); any other class (the plugin's own) is ``other``.

A sandboxed worker's error is the one the host judged (``isolation.identity``): a
plugin's exception arrives as a ``PluginCallError`` naming the exception's class, and
is counted by that name under the same rule, so a ``ValueError`` is ``ValueError``
inline and in a worker alike; a worker's claim to a kind only the host may raise was
judged ``PluginCallError`` already, and is counted as that.
"""

from __future__ import annotations

import builtins
from typing import Final

from plugbay.api import errors as _errors
from plugbay.api.errors import PlugbayError, PluginCallError
from plugbay.monitor.library_errors import claimed_library, library_name

__all__ = ["BUILTIN_ERRORS", "OTHER", "PLUGBAY_ERRORS", "error_label"]

#: what any exception of a class outside the bounded set is counted as
OTHER: Final = "other"
#: Python's built-in exception classes, by name
BUILTIN_ERRORS: Final[dict[str, type[BaseException]]] = {
    name: value
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
}
#: plugbay's public error classes, by name (``plugbay.api.errors``)
PLUGBAY_ERRORS: Final[dict[str, type[PlugbayError]]] = {
    name: value
    for name in _errors.__all__
    if isinstance(value := getattr(_errors, name), type) and issubclass(value, PlugbayError)
}
_NAMES: Final = frozenset(BUILTIN_ERRORS) | frozenset(PLUGBAY_ERRORS)


def error_label(error: BaseException | str) -> str:
    """The label a failed call is counted under (see the module docstring); a string is a
    class name the host chose itself (``"PluginTimeout"``)."""
    if isinstance(error, str):
        return error if error in _NAMES else OTHER
    if isinstance(error, PlugbayError):
        if type(error) is PluginCallError:  # the plugin's exception, named by its class
            raised = error.details.get("exception") if isinstance(error.details, dict) else None
            if isinstance(raised, str):
                if raised in BUILTIN_ERRORS:
                    return raised
                return claimed_library(error.details) or OTHER
        for cls in type(error).__mro__:  # the nearest of plugbay's own classes
            name = cls.__name__
            if PLUGBAY_ERRORS.get(name) is cls:
                return name
        return "PlugbayError"
    name = type(error).__name__
    if BUILTIN_ERRORS.get(name) is type(error):
        return name
    return library_name(type(error)) or OTHER
