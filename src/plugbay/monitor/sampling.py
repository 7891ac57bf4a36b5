"""Which workers the monitor measures on a tick: all of a few, a rota of many.

Reading a worker's usage from ``/proc`` costs a few hundred microseconds (its
private memory, a page-table walk, about a millisecond more, is read at most
every ``uss_max_age`` seconds per worker); a thousand workers measured every
second kept a core busy. On each tick the monitor measures workers in the
order given here, never measured (just started or replaced) first, then the
longest unmeasured, and stops when the tick's :data:`BUDGET` of CPU time is
spent: a few workers are all measured every tick, as before; many are measured
in turn, and the cost of a tick stays flat whatever their number. Inline
plugins share the host's process and cost nothing to ask: always included.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final, TypeVar

__all__ = ["BUDGET", "SampleRota"]

#: CPU seconds one tick may spend measuring workers (at least one is measured)
BUDGET: Final = 0.004

H = TypeVar("H")


class SampleRota:
    """The order in which the handles are measured on this tick (a round robin)."""

    def __init__(self, budget: float = BUDGET) -> None:
        self.budget = budget
        #: id(handle) → when it was last measured (a count of measures: ties cannot happen,
        #: so the ones measured last in a tick are not passed over by the first next time)
        self._last: dict[int, int] = {}
        self._ids: dict[str, int] = {}
        self._measures = 0

    def due(self, handles: Mapping[str, H]) -> dict[str, H]:
        self._ids = {pid: id(h) for pid, h in handles.items()}
        live = set(self._ids.values())
        self._last = {k: v for k, v in self._last.items() if k in live}
        last = self._last
        order = sorted(handles, key=lambda pid: last.get(id(handles[pid]), -1))
        return {pid: handles[pid] for pid in order}

    def measured(self, plugin_ids: Iterable[str]) -> None:
        for pid in plugin_ids:
            key = self._ids.get(pid)
            if key is not None:
                self._measures += 1
                self._last[key] = self._measures
