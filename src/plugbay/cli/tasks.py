"""The background-task part of ``plugbay info``: each task of ``context.tasks`` with its
state and restarts, read from the plugin's own metrics (``task_state``, ``task_restarts``),
which a worker sends to the host with its heartbeat."""

from __future__ import annotations

import re
from typing import Any, Final

__all__ = ["task_rows"]

_SERIES: Final = re.compile(r"(?P<name>\w+)\{(?P<labels>[^}]*)\}")


def _labels(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split(",") if "=" in part)


def task_rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    """``("tasks", "poll running, 2 restarts")`` and one more row per further task."""
    metrics = data.get("metrics") or {}
    states: dict[str, str] = {}
    restarts: dict[str, int] = {}
    for series, value in (metrics.get("gauges") or {}).items():
        match = _SERIES.fullmatch(series)
        if match and match["name"] == "task_state" and value == 1.0:
            labels = _labels(match["labels"])
            states[labels.get("task", "?")] = labels.get("state", "?")
    for series, value in (metrics.get("counters") or {}).items():
        match = _SERIES.fullmatch(series)
        if match and match["name"] == "task_restarts":
            restarts[_labels(match["labels"]).get("task", "?")] = int(value)
    return [
        ("tasks" if i == 0 else "", f"{name} {states[name]}, {restarts.get(name, 0)} restarts")
        for i, name in enumerate(sorted(states))
    ]
