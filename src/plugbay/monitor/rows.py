"""The live snapshot's rows, written as they change.

``plugbay top`` and the dashboard of another process read a table the monitor writes
(``StateStore.put_snapshot``): one row per plugin and one for the host. The monitor
used to build every plugin's row and rewrite the whole table; with a thousand idle
plugins that was a thousand rows serialised and written for nothing but the host's
own figures. Now:

- a row is built anew only for a plugin that may have changed since the last write
  (:meth:`SnapshotRows.mark`: looked at and found changed, a readiness answer, its
  worker's figures moved, an event), and for one whose row said calls were running or
  coming in, or its health was not green (:func:`_moving`);
- only the rows that differ from the ones written are written, a plugin gone is
  deleted, and the host's row goes with every write (its time is the snapshot's);
- the first write, and the one after a write failed, replace the whole table, so a
  previous host's rows never linger.

The host's health is the worst of its plugins': the rows' statuses are counted as
they change, so it is known without reading every row.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["SnapshotRows"]

Row = dict[str, Any]


def _moving(row: Row) -> bool:
    """Whether a row shows what changes with time alone: it is built again next write."""
    return bool(
        row["calls_per_second"] or row["inflight"] or row["cpu_percent"] or row["health"] != "green"
    )


class SnapshotRows:
    def __init__(self) -> None:
        #: the rows as last built, by plugin id
        self.rows: dict[str, Row] = {}
        #: plugins whose row is built anew at the next write
        self._dirty: set[str] = set()
        #: how many rows have each health status
        self._health: Counter[str] = Counter()
        #: the next write replaces the whole table (the first one, or after a failure)
        self.whole = True

    def mark(self, plugin_ids: Iterable[str]) -> None:
        """These plugins' rows may have changed: build them at the next write."""
        self._dirty.update(plugin_ids)

    def changed(self, build: Callable[[str], Row | None]) -> dict[str, Row | None]:
        """The marked plugins' rows built anew (``build``: None when the plugin is gone),
        those that differ from the last ones: the row, or None to delete it. With
        :attr:`whole` set, every row."""
        dirty, self._dirty = self._dirty, set()
        rows, health = self.rows, self._health
        out: dict[str, Row | None] = {}
        for pid in dirty:
            row, old = build(pid), rows.get(pid)
            if old is not None and row != old:
                health[old["health"]] -= 1
            if row is None:
                if old is not None:
                    del rows[pid]
                    out[pid] = None
                continue
            if _moving(row):
                self._dirty.add(pid)
            if row != old:
                health[row["health"]] += 1
                rows[pid] = out[pid] = row
        return dict(rows) if self.whole else out

    def statuses(self) -> list[str]:
        """The health statuses some row has now."""
        return [status for status, n in self._health.items() if n > 0]
