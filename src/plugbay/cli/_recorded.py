"""Each plugin's state as a running host recorded it in the state (no plugin is started)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["recorded"]

_OUTCOME = {
    ("load", "ok"): "active",
    ("reload", "ok"): "active",
    ("upgrade", "ok"): "active",
    ("rollback", "ok"): "active",
    ("bisect", "ok"): "active",
    ("restart", "ok"): "restarting",  # its start after a crash's backoff, until "load"
    ("unload", "ok"): "stopped",
    ("shutdown", "ok"): "stopped",
    ("disable", "ok"): "disabled",
}


def recorded(
    state_dir: Path, running: dict[str, Any], plugin_dirs: list[Path]
) -> list[dict[str, Any]]:
    """One row per plugin found: id, version, type, state, reason, load_seconds, needs."""
    from plugbay.model.discover import discover
    from plugbay.state import StateStore

    found = discover(plugin_dirs, entry_points=True)
    newest: dict[str, Any] = {}
    for m in found.manifests:
        if m.id not in newest or m.version > newest[m.id].version:
            newest[m.id] = m
    rows = []
    with StateStore.open(state_dir, read_only=True) as store:
        for pid, manifest in sorted(newest.items()):
            row: dict[str, Any] = {
                "id": pid, "version": str(manifest.version), "type": manifest.type,
                "state": "unknown", "reason": None, "load_seconds": None,
                "needs": sorted(manifest.dependencies),
            }  # fmt: skip
            event = _last_outcome(store.history(pid, limit=20), since=running["since"])
            if event is not None:
                row.update(
                    state=_state_after(event),
                    version=event.version or row["version"],
                    reason=_reason_after(event),
                    load_seconds=event.details.get("seconds"),
                )
            rows.append(row)
    return rows


def _state_after(event: Any) -> str:
    if event.action == "crash" and "restart" in event.details:
        return "restarting"  # a restart comes; the supervisor giving up has no "restart"
    return _OUTCOME.get((event.action, event.result)) or "failed"


def _reason_after(event: Any) -> str | None:
    if event.action == "restart":  # its reason is the backoff it waited
        return f"its restart after a crash is under way (it began {event.reason})"
    if event.action == "crash" and "restart" in event.details:
        details = event.details
        return f"{event.reason}; restart {details['restart']} after {details['backoff']:g} s"
    return event.reason  # type: ignore[no-any-return]


def _last_outcome(events: list[Any], *, since: float) -> Any:
    """The newest event since the host started that says which state a plugin is in."""
    for event in events:
        if event.time < since:
            return None
        if event.action in ("reload", "upgrade", "rollback", "bisect") and event.result != "ok":
            continue  # a failed swap leaves the version before it serving
        if (event.action, event.result) in _OUTCOME or event.result == "failed":
            return event
    return None
