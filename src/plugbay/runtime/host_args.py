"""``Host(...)``'s arguments that mypy cannot check for the application.

A ``str`` is an ``Iterable[str]`` to Python's typing, so ``Host(inline="acme.*")`` type
checks, and iterating it would give the patterns ``'a'``, ``'c'``, …, ``'*'``: every
plugin trusted to run in the host's process, unsandboxed. Such an argument is refused
where it is given, naming it and saying how to write it.
"""

from __future__ import annotations

from collections.abc import Iterable

from plugbay.api.errors import ParameterError

__all__ = ["plugin_ids"]


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
