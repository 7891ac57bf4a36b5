"""The resolver's own graph walks give what graphlib gives.

``model.resolve`` orders plugins without graphlib when there is no cycle (graphlib
builds a node object for each plugin and walks the graph twice): these properties
hold the two walks to graphlib's answers on any graph, cycles included.
"""

from __future__ import annotations

import graphlib

from hypothesis import given
from hypothesis import strategies as st

from plugbay.model.resolve import _needs_first, _rounds

NODES = [f"p{i}" for i in range(12)]

graphs = st.dictionaries(
    st.sampled_from(NODES), st.sets(st.sampled_from(NODES), max_size=4), min_size=1
)


def _closed(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Every node a key, as the resolver's needs graph has it."""
    out = {node: set(needs) for node, needs in graph.items()}
    for needs in graph.values():
        for need in needs:
            out.setdefault(need, set())
    return out


def _graphlib_order(graph: dict[str, set[str]], alive: set[str]) -> list[str] | None:
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for pid in sorted(alive):
        sorter.add(pid, *sorted(graph[pid] & alive))
    try:
        sorter.prepare()
    except graphlib.CycleError:
        return None
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        order.extend(ready)
        sorter.done(*ready)
    return order


@given(graphs)
def test_needs_first_puts_each_node_after_its_needs_or_finds_the_cycle(
    graph: dict[str, set[str]],
) -> None:
    closed = _closed(graph)
    try:
        list(graphlib.TopologicalSorter(closed).static_order())
        cyclic = False
    except graphlib.CycleError:
        cyclic = True
    order = _needs_first(closed)
    if cyclic:
        assert order is None
        return
    assert order is not None
    assert sorted(order) == sorted(closed)  # every node, once
    position = {node: i for i, node in enumerate(order)}
    assert all(position[need] < position[node] for node in closed for need in closed[node])


@given(graphs, st.sets(st.sampled_from(NODES)))
def test_the_load_order_is_graphlibs_by_rounds_ties_by_id(
    graph: dict[str, set[str]], removed: set[str]
) -> None:
    closed = _closed(graph)
    alive = set(closed) - removed  # a plugin that failed is left out, its edges kept
    edges = {pid: frozenset(needs) for pid, needs in closed.items()}
    assert _rounds(alive, edges) == _graphlib_order(closed, alive)
