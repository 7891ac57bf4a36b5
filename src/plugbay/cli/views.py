"""What ``plugbay top``, ``logs`` and ``alerts`` show, and where they read it from.

A view reads through a :class:`MonitorSource`: :class:`HostSource` asks a
host in this process; :class:`StateSource` reads what a running host writes to
its SQLite state every tick (the live snapshot, log records, alerts), so the
commands work beside ``plugbay run`` today. A source over the HTTP API is the
third implementation of the same protocol.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from plugbay.cli._counted import counted

if TYPE_CHECKING:
    from plugbay.runtime.host import Host

__all__ = [
    "HostSource",
    "MonitorSource",
    "StateSource",
    "alerts_table",
    "health_table",
    "log_line",
    "top_table",
]


class MonitorSource(Protocol):
    def snapshot(self) -> dict[str, Any]:
        """``{"time", "host": {...} | None, "plugins": [row, ...]}`` (rows as PluginMonitor.snapshot)."""
        ...

    def alerts(
        self, plugin_id: str | None = None, *, open_only: bool = True, limit: int = 200
    ) -> list[dict[str, Any]]: ...

    def logs(
        self,
        plugin_id: str | None = None,
        *,
        min_level: int = 0,
        after_id: int = 0,
        limit: int = 200,
    ) -> list[dict[str, Any]]: ...


class HostSource:
    """A host in this process."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def snapshot(self) -> dict[str, Any]:
        return {"time": time.time(), **self.host.snapshot()}

    def alerts(
        self, plugin_id: str | None = None, *, open_only: bool = True, limit: int = 200
    ) -> list[dict[str, Any]]:
        state = self.host.state
        if open_only or state is None:
            return self.host.alerts(plugin_id)[:limit]
        return state.alerts(plugin_id, open_only=False, limit=limit)

    def logs(
        self,
        plugin_id: str | None = None,
        *,
        min_level: int = 0,
        after_id: int = 0,
        limit: int = 200,
    ) -> list[dict[str, Any]]:
        return self.host.logs(plugin_id, min_level=min_level, limit=limit)


class StateSource:
    """What a host serving ``state_dir`` wrote to its state (every tick: each second, each
    five while nothing happens)."""

    def __init__(self, state_dir: Path) -> None:
        from plugbay.state import StateStore

        self.store = StateStore.open(state_dir, read_only=True)

    def close(self) -> None:
        self.store.close()

    def snapshot(self) -> dict[str, Any]:
        when, rows = self.store.snapshot()
        host = next((r for r in rows if r.get("kind") == "host"), None)
        return {"time": when, "host": host, "plugins": [r for r in rows if r.get("kind") != "host"]}

    def alerts(
        self, plugin_id: str | None = None, *, open_only: bool = True, limit: int = 200
    ) -> list[dict[str, Any]]:
        return self.store.alerts(plugin_id, open_only=open_only, limit=limit)

    def logs(
        self,
        plugin_id: str | None = None,
        *,
        min_level: int = 0,
        after_id: int = 0,
        limit: int = 200,
    ) -> list[dict[str, Any]]:
        return self.store.logs(plugin_id, min_level=min_level, after_id=after_id, limit=limit)


# --------------------------------------------------------------------------- rendering

_HEALTH = {"green": "green", "degraded": "yellow", "failing": "red"}
_LEVEL = {10: ("DEBUG", "dim"), 20: ("INFO", "cyan"), 30: ("WARNING", "yellow"),
          40: ("ERROR", "red"), 50: ("CRITICAL", "bold red")}  # fmt: skip


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value == float("inf"):
        return "> 60 s"
    if value < 1e-3:
        return f"{value * 1e6:.0f} µs"
    if value < 1:
        return f"{value * 1e3:.1f} ms"
    return f"{value:.2f} s"


def _bytes(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f} MiB"


def _memory(row: dict[str, Any]) -> str:
    if row.get("isolation") == "inline" and row.get("state") == "active":
        return "in host"  # an inline plugin shares the host's memory (in the title)
    return _bytes(row.get("rss_bytes"))


def top_table(snap: dict[str, Any]) -> Table:
    host = snap.get("host") or {}
    when = snap.get("time")
    age = f", {time.time() - when:.0f} s ago" if when else ""
    status = str(host.get("health") or "-")
    title = (
        f"plugbay — worst plugin health [{_HEALTH.get(status, 'white')}]{status}[/], "
        f"host {_bytes(host.get('rss_bytes'))}, "
        f"{host.get('cpu_percent') or 0:.0f}% CPU, {counted(host.get('alerts', 0), 'alert')}{age}"
    )
    table = Table(title=title, header_style="bold", title_justify="left")
    for col, justify in (
        ("plugin", "left"), ("version", "left"), ("state", "left"), ("health", "left"),
        ("calls/s", "right"), ("errors", "right"), ("p50", "right"), ("p99", "right"),
        ("memory", "right"), ("CPU", "right"), ("queue", "right"), ("alerts", "left"),
    ):  # fmt: skip
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for row in snap.get("plugins", []):
        health = str(row.get("health") or "-")
        rate = row.get("calls_per_second")
        errors = row.get("error_rate")
        cpu = row.get("cpu_percent")
        table.add_row(
            escape(str(row["id"])),
            escape(str(row.get("version") or "")),
            escape(str(row.get("state"))),
            f"[{_HEALTH.get(health, 'dim')}]{escape(health)}[/]",
            "-" if rate is None else f"{rate:.1f}",
            "-" if errors is None else f"{errors:.0%}",
            _seconds(row.get("p50_seconds")),
            _seconds(row.get("p99_seconds")),
            _memory(row),
            "-" if cpu is None else f"{cpu:.0f}%",
            str(row.get("inflight", 0)),
            f"[red]{escape(', '.join(row.get('alerts') or []))}[/]",
        )
    return table


def health_table(snap: dict[str, Any]) -> Table:
    host = snap.get("host") or {}
    status = str(host.get("health") or "-")
    table = Table(
        title=f"worst plugin health: [{_HEALTH.get(status, 'white')}]{escape(status)}[/]",
        header_style="bold", title_justify="left",
    )  # fmt: skip
    for col in ("plugin", "version", "status", "live", "ready", "why"):
        table.add_column(col)
    for row in snap.get("plugins", []):
        health = str(row.get("health") or "-")

        def mark(value: Any) -> str:
            return (
                "-"
                if value is None
                else ("yes" if value is True else str(value).replace("False", "no"))
            )

        table.add_row(
            escape(str(row["id"])), escape(str(row.get("version") or "")),
            f"[{_HEALTH.get(health, 'dim')}]{escape(health)}[/]",
            mark(row.get("live")), mark(row.get("ready")),
            escape("; ".join(row.get("reasons") or [])[:200]),
        )  # fmt: skip
    return table


def alerts_table(alerts: list[dict[str, Any]]) -> Table:
    table = Table(header_style="bold")
    for col in ("fired", "plugin", "version", "rule", "message", "cleared"):
        table.add_column(col)
    for a in alerts:
        table.add_row(
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(a["fired"])),
            escape(a["plugin"]),
            escape(a.get("version") or ""),
            f"[red]{escape(a['rule'])}[/]" if a.get("cleared") is None else escape(a["rule"]),
            escape(a["message"]),
            "[red]firing[/]"
            if a.get("cleared") is None
            else time.strftime("%H:%M:%S", time.localtime(a["cleared"])),
        )
    return table


def log_line(record: dict[str, Any]) -> Text:
    name, style = _LEVEL.get(int(record["level"]), (str(record["level"]), "white"))
    stamp = time.strftime("%H:%M:%S", time.localtime(record["time"]))
    text = Text()
    text.append(f"{stamp}.{int(record['time'] % 1 * 1000):03d} ", style="dim")
    text.append(f"{name:<8}", style=style)
    text.append(f" {record['plugin']}@{record.get('version') or '?'} ", style="bold")
    logger = str(record.get("logger", ""))
    suffix = logger.rsplit(".", 1)[-1]
    if suffix in ("stdout", "stderr", "security", "lifecycle"):
        text.append(f"[{suffix}] ", style="magenta")
    text.append(str(record["message"]))
    fields = record.get("fields") or {}
    if fields:
        text.append("  " + " ".join(f"{k}={v}" for k, v in fields.items() if k != "exception"),
                    style="dim")  # fmt: skip
        if "exception" in fields:
            text.append("\n" + str(fields["exception"]).rstrip())
    return text
