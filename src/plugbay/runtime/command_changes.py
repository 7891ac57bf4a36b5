"""How a swap changes what callers may send: each command removed, and each parameter
renamed, removed, newly required or of another type.

Read at the swap from the commands both versions loaded (the new one is loaded before
it serves), as the watch's note on a command that is gone is; each change is a note in
the upgrade's answer and the history entry, never a refusal: the operator chose the
version, and a caller still sending the old parameters is told so by the call's own
error ("has no parameter 'name'").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plugbay.api._command import CommandSpec

__all__ = ["command_changes", "dry_run_note"]


def command_changes(
    old: Mapping[str, CommandSpec], new: Mapping[str, CommandSpec]
) -> list[dict[str, Any]]:
    """Each change a caller of ``old`` would notice with ``new`` serving, by command
    name: ``{"command", "change", "parameter", "was", "now", "note"}``."""
    changes: list[dict[str, Any]] = []
    for name in sorted(old):
        if name not in new:
            note = f"command '{name}' is gone: a caller of it now gets 'has no command'"
            changes.append(_change(name, "command removed", None, None, None, note))
            continue
        before = _params(old[name])
        if before != _params(new[name]):
            changes += _param_changes(name, before, _params(new[name]))
    return changes


def dry_run_note() -> str:
    """What ``--dry-run`` says of the commands: it runs no new code, so it cannot know them."""
    return (
        "a dry run loads no new code, so it does not compare the commands: the upgrade "
        "compares them when the new version is loaded, at the swap, and names each command "
        "removed and each parameter renamed, removed, newly required or of another type "
        "(also in 'plugbay history ID --json', details.command_changes)"
    )


def _params(spec: CommandSpec) -> list[tuple[str, str, bool]]:
    """(name, type, required) of each parameter, in order, as the command describes them
    (the same words for an inline, a sandboxed and a Wasm command)."""
    described = spec.describe().get("params", [])
    return [
        (p["name"], str(p.get("type")), bool(p.get("required", "default" not in p)))
        for p in described
    ]


def _param_changes(
    command: str, before: list[tuple[str, str, bool]], after: list[tuple[str, str, bool]]
) -> list[dict[str, Any]]:
    old = {name: (i, tp, required) for i, (name, tp, required) in enumerate(before)}
    new = {name: (i, tp, required) for i, (name, tp, required) in enumerate(after)}
    renamed = _renamed(before, after, old, new)
    changes: list[dict[str, Any]] = []
    for name, (_, tp, _) in old.items():
        if name in renamed:
            to = renamed[name]
            note = (
                f"{command}: parameter '{name}' is now '{to}': a caller passing '{name}' "
                f"now gets \"has no parameter '{name}'\""
            )
            changes.append(_change(command, "parameter renamed", name, name, to, note))
        elif name not in new:
            note = (
                f"{command}: parameter '{name}' is gone: a caller passing it now gets "
                f"\"has no parameter '{name}'\""
            )
            changes.append(_change(command, "parameter removed", name, tp, None, note))
        elif new[name][1] != tp:
            note = (
                f"{command}: parameter '{name}' was {tp}, now {new[name][1]}: a caller "
                f"passing a {tp} may be refused"
            )
            changes.append(_change(command, "parameter type", name, tp, new[name][1], note))
    called = {to: name for name, to in renamed.items()}  # new name → the old one
    for name, (_, tp, required) in new.items():
        before_name = name if name in old else called.get(name)
        if not required or (before_name is not None and old[before_name][2]):
            continue
        was = "optional" if before_name is not None else None
        note = (
            f"{command}: parameter '{name}' ({tp}) is now required"
            if was
            else f"{command}: new required parameter '{name}' ({tp})"
        ) + ": a caller not passing it now gets 'is missing parameter'"
        changes.append(_change(command, "parameter required", name, was, "required", note))
    return changes


def _renamed(
    before: list[tuple[str, str, bool]],
    after: list[tuple[str, str, bool]],
    old: Mapping[str, tuple[int, str, bool]],
    new: Mapping[str, tuple[int, str, bool]],
) -> dict[str, str]:
    """Old name → new name of each parameter that only changed its name: at the same
    place, of the same type, the old name gone and the new one not there before."""
    renamed: dict[str, str] = {}
    for i, (name, tp, _) in enumerate(before):
        if name in new or i >= len(after):
            continue
        other, other_tp, _ = after[i]
        if other not in old and other_tp == tp:
            renamed[name] = other
    return renamed


def _change(
    command: str, change: str, parameter: str | None, was: str | None, now: str | None, note: str
) -> dict[str, Any]:
    return {
        "command": command,
        "change": change,
        "parameter": parameter,
        "was": was,
        "now": now,
        "note": note,
    }
