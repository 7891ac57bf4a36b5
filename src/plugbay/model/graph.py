"""Walks of a dependency graph (an id → the ids it needs), shared by the resolver's
users: the deps tree, bisect's kept plugins, the plugins a host starts eagerly."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["reachable"]


def reachable(roots: Iterable[str], edges: Mapping[str, Iterable[str]]) -> set[str]:
    """``roots`` and every identifier they lead to in ``edges``, transitively."""
    reached: set[str] = set()
    frontier = list(roots)
    while frontier:
        pid = frontier.pop()
        if pid not in reached:
            reached.add(pid)
            frontier.extend(edges.get(pid, ()))
    return reached
