"""The events part of ``plugbay info``: what a plugin emits and hears, each listener's
queue (priority, bound, overflow policy, and what happened to its events so far), and
what starts it (``activation``)."""

from __future__ import annotations

from typing import Any

__all__ = ["event_rows"]


def event_rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    """``("emits", "a, b")``, one ``listens`` row per event, one ``no longer hears`` row
    per event a reload stopped listening to with events passed on unheard, and
    ``starts``."""
    events = data.get("events") or {}
    rows: list[tuple[str, str]] = []
    if events.get("emits"):
        rows.append(("emits", ", ".join(events["emits"])))
    for i, listen in enumerate(events.get("listens") or []):
        rows.append(
            (
                "listens" if i == 0 else "",
                f"{listen['event']} (priority {listen['priority']}, queue "
                f"{listen['queued']}/{listen['queue']}, {listen['overflow']}): "
                f"{listen['delivered']} delivered, {listen['failed']} failed, "
                f"{listen['dropped']} dropped",
            )
        )
    for i, gone in enumerate(events.get("unheard") or []):
        rows.append(
            (
                "no longer hears" if i == 0 else "",
                f"{gone['event']}: {gone['unheard']} queued for it were passed on unheard "
                "(a new version without the listen)",
            )
        )
    activation = events.get("activation") or ["eager"]
    if activation != ["eager"]:
        rows.append(("starts", "on demand: " + ", ".join(activation)))
    return rows
