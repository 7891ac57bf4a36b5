"""Where each of a plugin's limits was set, recorded as the policy works the limit out.

``IsolationPolicy.limits_for`` takes a limit from the manifest's ``[resources]``, else
the policy's ``[policy.defaults]``, and lowers it to the policy's ``[policy.limits]``
cap. :func:`limit_and_source` does that for one limit and keeps which table set it,
what it asked for, and whether the cap lowered it (a :class:`LimitSource`, kept in the
plugin's ``Placement.sources``), so a "set by …" message reads the record instead of
working it out again from the manifest and the policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from plugbay.model.sizes import size_text

__all__ = ["DEFAULTS", "RESOURCES", "LimitSource", "limit_and_source", "memory_set_by"]

#: the manifest's table
RESOURCES: Final = "[resources]"
#: the policy's table (its file's, else the host's built-in default)
DEFAULTS: Final = "[policy.defaults]"


@dataclass(frozen=True, slots=True)
class LimitSource:
    """Where one limit was set: the table (:data:`RESOURCES`, :data:`DEFAULTS`, or None
    when neither set one), what it asked for, the manifest's own spelling of it, and
    the ``[policy.limits]`` cap when that cap lowered it (else None)."""

    table: str | None
    asked: float | None
    written: str | float | None = None
    capped_by: float | None = None


def limit_and_source(
    key: str,
    asked: float | None,
    written: str | float | None,
    defaults: Mapping[str, float | None],
    caps: Mapping[str, float | None],
) -> tuple[float | None, LimitSource]:
    """The limit ``key`` (what the manifest asks, ``asked``, else the default, never above
    the cap) and where it was set."""
    table: str | None = RESOURCES
    if asked is None:
        asked, written = defaults.get(key), None
        table = DEFAULTS if asked is not None else None
    cap = caps.get(key)
    if cap is not None and (asked is None or asked > cap):
        return cap, LimitSource(table, asked, written, capped_by=cap)
    return asked, LimitSource(table, asked, written)


def memory_set_by(source: LimitSource | None) -> str:
    """Where the plugin's memory limit came from, in the words of the file that set it."""
    if source is None or source.table is None:
        return "the host's policy ([policy.defaults] memory in its config file)"
    if source.capped_by is not None and source.table == RESOURCES:
        return (
            f"the host's policy ([policy.limits] memory caps the {source.written} its "
            "manifest's [resources] memory asks for)"
        )
    if source.capped_by is not None:
        return (
            f"the host's policy ([policy.limits] memory caps the {size_text(source.asked)} "
            "its [policy.defaults] memory sets, as its manifest sets no [resources] memory)"
        )
    if source.table == RESOURCES:
        return f"its manifest's [resources] memory = {source.written!r}"
    return "the host's policy ([policy.defaults] memory in its config file)"
