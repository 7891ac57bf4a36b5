"""How plugins are shown: the list, one plugin's detail, the history, the dependency tree."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from plugbay.cli._approve import approve_hint
from plugbay.cli._console import out
from plugbay.cli._counted import counted
from plugbay.cli._listing import print_listing, state_text
from plugbay.cli.env import python_rows
from plugbay.cli.events import event_rows
from plugbay.cli.tasks import task_rows
from plugbay.model.sizes import size_text

__all__ = [
    "deps_tree",
    "history_table",
    "limits_text",
    "nothing_recorded",
    "print_info",
    "print_listing",
]


# --------------------------------------------------------------------------- list


# --------------------------------------------------------------------------- info


def print_info(data: dict[str, Any], *, show_traceback: bool = False) -> None:
    """A plugin's detail as ``plugbay info`` prints it."""
    m = data.get("manifest") or {}
    out.print(f"[bold]{data['id']}[/] {data['version'] or ''}  {state_text(data['state'])}")
    if m.get("description"):
        out.print(escape(m["description"]))
    facts = [
        *_manifest_facts(data, m),
        *_restart_facts(data, m),
        *_permission_facts(data["id"], data.get("permissions") or {}),
        *_sandbox_facts(data, m),
        *_usage_facts(data.get("usage") or {}),
        *python_rows(data),
        *task_rows(data),
        *event_rows(data),
    ]
    for key, value in facts:
        out.print(f"  [dim]{key:<15}[/] {escape(str(value))}")
    _print_relations(data, m)
    _print_commands(data["commands"])
    _print_outcome(data, show_traceback)


def _manifest_facts(data: dict[str, Any], m: dict[str, Any]) -> list[tuple[str, Any]]:
    load = data["load_seconds"]
    return [
        ("type", m.get("type")),
        ("entry", m.get("entry")),
        ("manifest", m.get("path")),
        ("capabilities", ", ".join(m.get("capabilities", [])) or "-"),
        ("host", m.get("host")),
        ("isolation", _isolation_text(data, m)),
        ("versions known", ", ".join(data["versions_known"]) or "-"),
        ("load time", f"{load * 1000:.1f} ms" if load else "-"),
    ]


def _is_wasm(data: dict[str, Any], m: dict[str, Any]) -> bool:
    """A Wasm plugin: an instance of its module in the host's Wasm runtime serves it."""
    return data.get("isolation") == "wasm" or m.get("runtime") == "wasm"


def _restart_facts(data: dict[str, Any], m: dict[str, Any]) -> list[tuple[str, Any]]:
    """While it is ``restarting``: which restart of how many, when, and why, in the words
    of what serves it (a Wasm instance traps and a new one is made; a worker crashes)."""
    restart = data.get("restart")
    if data.get("state") != "restarting" or not restart:
        return []
    from plugbay.runtime.supervision import crash_words

    isolation = "wasm" if _is_wasm(data, m) else str(data.get("isolation"))
    which = f"{restart['attempt']} of {restart['max_attempts']}"
    at = time.strftime("%H:%M:%S", time.localtime(restart["next_try"]))
    new = {
        "wasm": "a new instance of its module in the host's Wasm runtime",
        "ray": "a new Ray actor or worker for it",
    }.get(isolation, "a new worker")
    if restart["next_try"] <= time.time():  # its backoff is over: the restart runs
        return [("restart", f"{which}, under way since {at}: starting {new}")]
    why = crash_words(isolation)
    backoff = f"after {restart['backoff_seconds']:g} s"
    return [("restart", f"{which} at {at} ({backoff}): {why}; then {new} starts")]


def _permission_facts(plugin_id: str, permissions: dict[str, Any]) -> list[tuple[str, Any]]:
    """The layers of ``runtime.permissions``: asked, each grant and where it comes from,
    in force now and at the next start, pending and denied."""
    asked, grants = permissions.get("asked") or [], permissions.get("grants") or []
    if not (asked or grants):
        return []
    facts: list[tuple[str, Any]] = [("permissions", "asked: " + (", ".join(asked) or "nothing"))]
    facts += [("", "granted: " + _grant_text(g)) for g in grants] or [("", "granted: nothing")]
    facts += _in_force_facts(plugin_id, permissions)
    facts += [
        # the diff the operator approves: what a new version asks for beyond its grants
        ("", f"pending: {pending} — {approve_hint(plugin_id, pending)}")
        for pending in permissions.get("pending") or []
    ]
    facts += [
        ("", f"denied: {denied} — runs without it; 'plugbay grant {plugin_id} {denied}' allows it")
        for denied in permissions.get("denied") or []
    ]
    if permissions.get("unconfined"):
        facts.append((
            "", f"unconfined ({permissions['unconfined_in']}): "
            f"{', '.join(permissions['unconfined'])} — it runs with no sandbox, so nothing "
            "limits these, granted or not",
        ))  # fmt: skip
    return facts


def _grant_text(grant: Mapping[str, Any]) -> str:
    """One grant: what, where from (and who, when), and whether it does anything."""
    text = f"{grant['permission']} — {grant['where']}"
    if grant.get("by"):
        text += f", by {grant['by']}"
    if grant.get("since"):
        text += time.strftime(", %Y-%m-%d %H:%M", time.localtime(grant["since"]))
    if grant.get("asked") is False:
        text += " — not asked for by its manifest: no effect until it is"
    return text


def _in_force_facts(plugin_id: str, permissions: dict[str, Any]) -> list[tuple[str, Any]]:
    """In force in its running worker, and what changes at its next start (or, when no
    worker runs, what it gets when it starts)."""
    now = permissions.get("in_force")
    then = permissions.get("next_start", permissions.get("effective") or [])
    if now is None:
        return [("", "in effect: " + (", ".join(then) or "none") + " (when it starts)")]
    facts: list[tuple[str, Any]] = [
        ("", "in effect: " + (", ".join(now) or "none") + " (in force now)")
    ]
    changes = permissions.get("at_next_start") or {}
    moves = [f"+{p}" for p in changes.get("gains") or []]
    moves += [f"-{p}" for p in changes.get("loses") or []]
    if moves:
        facts.append(
            (
                "",
                f"at its next start: {', '.join(moves)} (kept since it started; "
                f"'plugbay reload {plugin_id}' applies it now)",
            )
        )
    return facts


#: the limits that bound a Wasm instance (a worker's files, file size, processes,
#: threads and storage image are not its: it has none of its own)
_WASM_LIMITS = ("memory", "cpu-seconds", "timeout")


def _sandbox_facts(data: dict[str, Any], m: dict[str, Any]) -> list[tuple[str, Any]]:
    facts: list[tuple[str, Any]] = []
    limits = data.get("limits") or {}
    if limits and _is_wasm(data, m):
        kept = {k: v for k, v in limits.items() if k in _WASM_LIMITS}
        facts.append(
            ("limits", limits_text(kept) + " (memory: its linear memory; CPU and time: per call)")
        )
    elif limits:
        facts.append(("limits", limits_text(limits) + _unenforced(data)))
    sandbox = data.get("sandbox") or {}
    if sandbox.get("secrets"):
        facts.append(("secrets", ", ".join(sandbox["secrets"]) + " (through context.secrets)"))
    if sandbox.get("layers"):
        layers = (f"{x['name']}{'' if x['active'] else ' (off)'}" for x in sandbox["layers"])
        facts.append(("layers", ", ".join(layers)))
    return facts


def _unenforced(data: dict[str, Any]) -> str:
    """What a bare Ray actor's limits are not: it has no sandbox, and Ray's ``memory`` is
    room its scheduler reserves on a node, never a bound on what the process uses."""
    if (data.get("location") or {}).get("mode") != "actor":
        return ""
    return (
        " (not enforced: a bare Ray actor has no sandbox; its memory only reserves room on "
        "its node for Ray's scheduler, and only each call's timeout holds; [ray] "
        "bare-actors = false runs it in a worker of its node's agent, under its manifest's "
        "[resources] memory)"
    )


def _usage_facts(usage: dict[str, Any]) -> list[tuple[str, Any]]:
    if "linear_memory_bytes" in usage:  # a Wasm instance: a thread of the host's process
        limit = usage.get("memory_limit")
        of = f" of {size_text(limit)}" if limit else " (no limit)"
        return [
            (
                "usage",
                f"its instance, on a thread of the host's process (pid {usage['pid']}): "
                f"linear memory {usage['linear_memory_bytes'] / 2**20:.1f} MiB{of}, CPU "
                f"{usage['cpu_seconds']:.2f} s in {_times(usage['calls'], 'call')}, replaced "
                f"{_times(usage['instances_replaced'], 'time')}",
            )
        ]
    if "rss_bytes" not in usage:
        return []
    shared = " (the host's process, shared)" if usage.get("shared") else ""
    uss = f", USS {usage['uss_bytes'] / 2**20:.1f} MiB" if "uss_bytes" in usage else ""
    facts: list[tuple[str, Any]] = [
        (
            "usage",
            f"pid {usage['pid']}{shared}: RSS {usage['rss_bytes'] / 2**20:.1f} MiB{uss}, "
            f"CPU {usage['cpu_seconds']:.2f} s, {counted(usage['open_files'], 'open file')}, "
            f"{counted(usage['threads'], 'thread')}",
        )
    ]
    if usage.get("storage_quota"):
        facts.append(("storage quota", usage["storage_quota"]))
    return facts


def _times(n: int, what: str) -> str:
    return counted(n, what)


def _ranges(ranges: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in ranges.items())


def _print_relations(data: dict[str, Any], m: dict[str, Any]) -> None:
    out.print("  [dim]dependencies  [/] " + (_ranges(data["dependencies"]) or "-"))
    if m.get("optional-dependencies"):
        out.print("  [dim]optional      [/] " + _ranges(m["optional-dependencies"]))
    services = m.get("services") or {}
    for kind in ("provides", "requires"):
        if services.get(kind):
            out.print(f"  [dim]{'services ' + kind:<15}[/] " + _ranges(services[kind]))
    out.print("  [dim]dependents    [/] " + (", ".join(data["dependents"]) or "-"))


def _print_commands(commands: list[dict[str, Any]]) -> None:
    if not commands:
        return
    out.print("[bold]commands[/]")
    for c in commands:
        doc = f"  [dim]{escape(c['doc'].splitlines()[0])}[/]" if c["doc"] else ""
        out.print(f"  {escape(c['signature'])}{doc}")


def _print_outcome(data: dict[str, Any], show_traceback: bool) -> None:
    if data.get("config"):
        out.print("[bold]config[/] " + escape(json.dumps(data["config"])))
    for note in data.get("notes") or []:
        out.print(f"[yellow]note:[/] {escape(note)}")
    if data["reason"]:
        out.print(f"[red]reason:[/] {escape(data['reason'])}")
    if show_traceback and data.get("traceback"):
        out.print(data["traceback"], markup=False)
    elif data.get("traceback"):
        out.print("[dim](--traceback shows the traceback)[/]")


def _isolation_text(data: dict[str, Any], manifest: dict[str, Any]) -> str:
    """What serves the plugin, in its backend's words, and why there."""
    sandbox = data.get("sandbox") or {}
    where = data["isolation"]
    location = data.get("location") or {}
    if _is_wasm(data, manifest):  # whatever the policy: a module has only what it is given
        return (
            "an instance of its Wasm module in the host's Wasm runtime (wasmtime, on a "
            "thread of the host's process; no worker process): its own store, deny by default"
        )
    if data.get("sandbox") is None:  # not placed: no host runs it here
        return (
            f"not known here (asked: {manifest.get('isolation', where)}): the host's policy "
            "places it when it starts it, in a sandboxed worker unless trusted"
        )
    if where == "ray":  # which node, and whether it kept its sandbox there
        node = str(location.get("node", "?"))[:12]
        kind = "sandboxed worker of the node's agent" if sandbox.get("sandboxed") else "bare actor"
        if location.get("mode") == "agent" and not sandbox.get("sandboxed"):
            kind = "worker of the node's agent (not sandboxed)"
        # not running: where its host places it when it starts (its policy and [ray])
        where = f"Ray {kind} on node {node}" if location else "on Ray when it starts, not now"
    elif sandbox.get("sandboxed"):
        where = "sandboxed worker"
    elif where == "process":
        where = "worker (not sandboxed)"
    reason = sandbox.get("reason")
    return f"{where}: {reason}" if reason else f"{where} (asked: {manifest.get('isolation', '-')})"


def limits_text(limits: Mapping[str, Any]) -> str:
    """Resource limits in words: ``memory 256 MiB, timeout 30 s a call, …``."""

    def shown(key: str, value: Any) -> str:
        if value is None:
            return f"{key} unlimited" if key not in ("timeout",) else f"{key} host default"
        if key in ("memory", "file-size", "storage"):
            return f"{key} {size_text(value)}"
        if key == "timeout":  # the deadline of each call (runtime.deadlines), not a lifetime
            return f"timeout {value:g} s a call"
        if key == "cpu-seconds":
            return f"{key} {value:g} s"
        return f"{key} {value:g}"

    return ", ".join(shown(k, v) for k, v in limits.items())


# --------------------------------------------------------------------------- history


def history_table(events: list[dict[str, Any]]) -> Table:
    """Newest first: time, plugin, action, version (or the move), result, reason."""
    table = Table(header_style="bold")
    for col in ("time", "plugin", "action", "version", "result", "reason"):
        table.add_column(col)
    for e in events:
        colour = "green" if e["result"] == "ok" else "red"
        moved = e["details"].get("from"), e["details"].get("to")
        table.add_row(
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["time"])),
            e["plugin_id"],
            e["action"],
            f"{moved[0]} → {moved[1]}"
            if all(moved) and moved[0] != moved[1]
            else e["version"] or "",
            f"[{colour}]{e['result']}[/]",
            escape((e["reason"] or _command_notes(e["details"]))[:120]),
        )
    return table


def _command_notes(details: dict[str, Any]) -> str:
    """A swap's notes on the commands it changed for callers (``details.command_changes``)."""
    return "; ".join(c["note"] for c in details.get("command_changes", ()))


def nothing_recorded(plugin_id: str | None, state: Path) -> str:
    """What ``plugbay history`` says when there is no event to show, not an empty table."""
    what = f"{plugin_id} has no history" if plugin_id else "there is no history"
    return escape(
        f"{what} in {state} yet: a host records each install, load, reload, upgrade, "
        "rollback, failure, enable and disable there as it happens ('plugbay run', "
        "'plugbay install'); --state names another host's directory"
    )


# --------------------------------------------------------------------------- deps


def deps_tree(graph: dict[str, dict[str, str]], plan: Any) -> Tree:
    """The dependency tree from its roots, each with the chosen version; ✗ and ↻ mark
    what cannot be resolved and cycles."""
    from plugbay.model.graph import reachable
    from plugbay.model.versions import Range

    needed = {d for k in graph for d in graph[k]}
    roots = [pid for pid in sorted(graph) if pid not in needed]
    # what no root leads to (plugins that only need each other: a cycle) is a root too
    reached = reachable(roots, graph)
    for pid in sorted(graph):
        if pid not in reached:
            roots.append(pid)
            reached |= reachable([pid], graph)
    tree = Tree("[bold]plugins[/]")

    def label(pid: str, rng: str | None) -> str:
        text = pid + (f" [dim]{rng}[/]" if rng else "")
        if pid in plan.failures:
            return f"[red]✗ {text}[/] [red]{plan.failures[pid].code}[/]"
        if pid in plan.selected:
            version = plan.selected[pid].version
            if rng and not Range.parse(rng).contains(version):
                return f"[red]✗ {text}[/] → {version} [red](not in the range)[/]"
            return f"[green]{text}[/] → {version}"
        return f"[red]✗ {text} (not found)[/]"

    def add(node: Tree, pid: str, rng: str | None, path: tuple[str, ...]) -> None:
        child = node.add(label(pid, rng))
        if pid in path:
            child.add("[red]↻ cycle[/]")
            return
        for dep, dep_rng in sorted(graph.get(pid, {}).items()):
            add(child, dep, dep_rng, (*path, pid))

    for pid in roots:
        add(tree, pid, None, ())
    return tree
