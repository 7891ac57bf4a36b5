"""The plugin table every command that lists plugins prints (``plugbay list``, ``plugbay
run``), and the rows it is made of; light enough for the lean ``plugbay run`` to load
before the plugins are active (rich, no command framework)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from plugbay.cli._output import out

if TYPE_CHECKING:
    from plugbay.runtime.host import Host

__all__ = [
    "LIST_KEYS",
    "STATE_COLOURS",
    "Listing",
    "list_row",
    "listing_of",
    "print_listing",
    "rehearse",
    "state_text",
]

LIST_KEYS = (
    "id", "version", "type", "state", "isolation", "uptime_seconds", "load_seconds", "reason",
    "error", "needs", "restart", "source",
)  # fmt: skip

STATE_COLOURS = {
    "active": "green",
    "failed": "red",
    "disabled": "yellow",
    "stopped": "dim",
    "initializing": "cyan",
    "resolved": "cyan",
    "discovered": "cyan",
    "stopping": "cyan",
    "on-demand": "blue",
    "restarting": "dark_orange",
}


#: the states whose reason the table's lines below it say
_EXPLAINED = ("failed", "disabled", "restarting")


@dataclass
class Listing:
    """Every plugin found: one row each (:data:`LIST_KEYS`), what went wrong outside a
    plugin, and where the figures come from."""

    rows: list[dict[str, Any]]
    problems: list[str] = field(default_factory=list)
    footer: str | None = None


def state_text(state: str) -> str:
    """A plugin state, coloured."""
    return f"[{STATE_COLOURS.get(state, 'white')}]{state}[/]"


def list_row(data: dict[str, Any], source: str | None) -> dict[str, Any]:
    """One plugin's row of the table, from its record (or the API's answer)."""
    return {
        **{k: data.get(k) for k in LIST_KEYS},
        "needs": data.get("needs") or [],
        "source": source,
    }


def listing_of(host: Host) -> Listing:
    """The plugins of a host in this process, and its problems no plugin's reason says."""
    records = host.plugins()
    shown = {r.reason for r in records if r.reason and str(r.state) in _EXPLAINED}
    problems = [str(p) for p in host.problems if str(p) not in shown and not p.plugin]
    return Listing([list_row(r.to_dict(), None) for r in records], problems)


def _seconds(value: float | None, *, ms: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.1f} ms" if ms else f"{value:.0f} s"


def print_listing(listing: Listing) -> None:
    """The table of ``plugbay list``, each failure's reason, problems, and the source."""
    out.print(_table(listing))
    for r in listing.rows:
        if r["reason"] and r["state"] in (*_EXPLAINED, "on-demand", "not running"):
            colour = STATE_COLOURS.get(r["state"], "yellow")
            out.print(f"[{colour}]{r['state']}:[/] {escape(r['reason'])}")
    for problem in listing.problems:
        out.print(f"[red]problem:[/] {escape(problem)}")
    if listing.footer:
        out.print(f"[dim]{escape(listing.footer)}[/]")


def rehearse() -> None:
    """Render a throwaway table and line to nowhere: what rich loads and fills on its
    first render (its emoji table, measured widths) is then ready for the real one
    (``plugbay run`` does this in a thread while its plugins start)."""
    import io

    from rich.console import Console

    row = dict.fromkeys(LIST_KEYS) | {"id": "a.b", "state": "active", "load_seconds": 0.0}
    nowhere = Console(file=io.StringIO(), highlight=False, soft_wrap=True, width=out.width)
    nowhere.print(_table(Listing([row])))
    nowhere.print(f"[bold]plugbay[/]: 1 active, ready in 1 ms (state: {escape('[x]')})")


def _table(listing: Listing) -> Table:
    table = Table(header_style="bold")
    for col in ("plugin", "version", "type", "state", "isolation", "uptime", "load time"):
        table.add_column(col, justify="right" if col in ("uptime", "load time") else "left")
    for r in listing.rows:
        table.add_row(
            r["id"], r["version"] or "?", r["type"] or "?", state_text(r["state"]),
            r["isolation"] or "-", _seconds(r["uptime_seconds"]),
            _seconds(r["load_seconds"], ms=True),
        )  # fmt: skip
    return table
