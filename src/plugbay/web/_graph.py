"""The dependency graph as a picture: inline SVG laid out on the server.

Plugins are placed in columns by depth (a plugin stands one column right of
the deepest plugin it needs), tall columns wrap, and each edge is a curve from
a plugin to what it needs. No JavaScript and nothing from outside: the page
embeds the SVG as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape
from typing import Final

__all__ = ["STATE_COLOURS", "dependency_svg"]

STATE_COLOURS: Final[Mapping[str, str]] = {
    "active": "#2e8b57",
    "failed": "#c0392b",
    "disabled": "#c98a00",
    "stopped": "#7f8c8d",
    "stopping": "#2c7fb8",
    "initializing": "#2c7fb8",
    "resolved": "#2c7fb8",
    "discovered": "#2c7fb8",
    "on-demand": "#5b6fb3",
    "restarting": "#d35400",
}

_W: Final = 210  # node width
_H: Final = 26  # node height
_GAP_X: Final = 70
_GAP_Y: Final = 10
_PER_COLUMN: Final = 20


def _depths(needs: Mapping[str, Iterable[str]]) -> dict[str, int]:
    depth: dict[str, int] = {}
    visiting: set[str] = set()

    def visit(pid: str) -> int:
        if pid in depth:
            return depth[pid]
        if pid in visiting:  # a cycle: cut it here
            return 0
        visiting.add(pid)
        d = 1 + max((visit(n) for n in needs.get(pid, ()) if n in needs), default=-1)
        visiting.discard(pid)
        depth[pid] = d
        return d

    for pid in sorted(needs):
        visit(pid)
    return depth


def dependency_svg(nodes: Iterable[tuple[str, str | None, str, Iterable[str]]]) -> str:
    """``nodes``: (id, version, state, ids it needs). Returns an ``<svg>`` element."""
    listed = list(nodes)
    info = {pid: (version, state) for pid, version, state, _ in listed}
    needs = {pid: sorted(set(n)) for pid, _, _, n in listed}
    if not info:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="300" height="30" role="img" aria-label="no plugins"><text x="8" y="20">no plugins</text></svg>'
    where, bands, width, height = _layout(sorted(info), needs)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        f'aria-label="dependency graph of {len(info)} plugins">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#888"/></marker></defs>',
    ]
    parts += [_band(x0, x1, d, height) for x0, x1, d in bands]
    parts += [
        _edge(pid, where[pid], dep, where[dep])
        for pid in sorted(needs)
        for dep in needs[pid]
        if dep in where
    ]
    parts += [_node(pid, where[pid], *info[pid]) for pid in sorted(info)]
    parts.append("</svg>")
    return "".join(parts)


_Point = tuple[float, float]


def _layout(
    ids: list[str], needs: dict[str, list[str]]
) -> tuple[dict[str, _Point], list[tuple[float, float, int]], float, float]:
    """Where each plugin's box goes, the depth bands behind them, and the picture's size."""
    depth = _depths(needs)
    columns: dict[int, list[str]] = {}
    for pid in ids:
        columns.setdefault(depth[pid], []).append(pid)
    where: dict[str, _Point] = {}
    rank: dict[str, float] = {}
    bands: list[tuple[float, float, int]] = []
    x_col = 10.0
    height = 0.0
    for d in sorted(columns):
        # a plugin sits near what it needs (the mean position of its dependencies):
        # fewer edges cross, and the dependents of one plugin stay together
        ordered = sorted(columns[d], key=lambda p: (_mean_rank(needs[p], rank), p))
        start_x = x_col
        for start in range(0, len(ordered), _PER_COLUMN):
            for row, pid in enumerate(ordered[start : start + _PER_COLUMN]):
                y = 30.0 + row * (_H + _GAP_Y)
                where[pid] = (x_col, y)
                rank[pid] = start + row
                height = max(height, y + _H + 10)
            x_col += _W + _GAP_X / 3
        bands.append((start_x - 5, x_col - _GAP_X / 3 + 5, d))
        x_col += _GAP_X * 2 / 3
    return where, bands, x_col - _GAP_X + 10, height


def _mean_rank(needed: list[str], rank: dict[str, float]) -> float:
    placed = [rank[n] for n in needed if n in rank]
    return sum(placed) / max(1, len(placed))


def _band(x0: float, x1: float, d: int, height: float) -> str:
    label = "needs nothing" if d == 0 else f"depth {d}"
    return (
        f'<rect x="{x0:.0f}" y="4" width="{x1 - x0:.0f}" height="{height - 6:.0f}" rx="6" '
        f'fill="{"#f4f6f8" if d % 2 == 0 else "#eef1f4"}"/>'
        f'<text x="{x0 + 8:.0f}" y="20" font-size="11" fill="#6b7580" '
        f'font-family="system-ui,sans-serif">{label}</text>'
    )


def _edge(pid: str, at: _Point, dep: str, dep_at: _Point) -> str:
    # from the left edge of the dependent to the right edge of what it needs
    (x1, y1), (x2, y2) = at, dep_at
    sx, sy, ex, ey = x1, y1 + _H / 2, x2 + _W, y2 + _H / 2
    mid = (sx + ex) / 2
    return (
        f'<path class="edge" data-from="{escape(pid)}" data-to="{escape(dep)}" '
        f'd="M{sx:.0f},{sy:.0f} C{mid:.0f},{sy:.0f} {mid:.0f},{ey:.0f} {ex:.0f},{ey:.0f}" '
        'fill="none" stroke="#888" stroke-width="1.2" marker-end="url(#arrow)"/>'
    )


def _node(pid: str, at: _Point, version: str | None, state: str) -> str:
    x, y = at
    colour = STATE_COLOURS.get(state, "#555")
    label = pid if len(pid) <= 24 else pid[:23] + "…"
    return (
        f'<g class="node" data-plugin="{escape(pid)}" data-state="{escape(state)}">'
        f"<title>{escape(pid)} {escape(version or '')} — {escape(state)}</title>"
        f'<rect x="{x:.0f}" y="{y:.0f}" width="{_W}" height="{_H}" rx="5" '
        f'fill="#fff" stroke="{colour}" stroke-width="2"/>'
        f'<circle cx="{x + 12:.0f}" cy="{y + _H / 2:.0f}" r="5" fill="{colour}"/>'
        f'<text x="{x + 22:.0f}" y="{y + 17:.0f}" font-size="12" '
        f'font-family="system-ui,sans-serif">{escape(label)}'
        f'<tspan fill="#777"> {escape(version or "")}</tspan></text></g>'
    )
