"""``plugbay grants``: what every plugin may do, one row per plugin and permission.

Each grant with where it comes from (``[policy.grants]`` of which file, ``plugbay grant``
or the API by whom and when, the host's trust in the plugin's code), whether it is in
force now and at the plugin's next start; and what a plugin asks for that nothing
grants: pending the operator's answer, or denied; or unconfined, when the plugin runs
with no sandbox (trusted, inline) and nothing limits it. The view is ``runtime.permissions``':
a host serving the state directory's API answers for its plugins (``GET
/api/v1/permissions``); with none, the plugins on disk are read with the state and the
host config file, as a host started now would place them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Final

from rich.markup import escape
from rich.table import Table

from plugbay.api.errors import PlugbayError
from plugbay.cli._approve import ungrantable
from plugbay.cli._console import JsonOpt, err, fail, out
from plugbay.cli._options import ConfigOpt, PluginsOpt, StateOpt, config_file, print_json

__all__ = ["grant_rows", "grants"]

#: each status as the table says it (rich markup)
_STATUS: Final = {
    "granted": "[green]granted[/]",
    "unasked": "[dim]granted, not asked for: no effect[/]",
    "revoked": "[yellow]revoked: in force until its next start[/]",
    "pending": "[bold yellow]PENDING: asked, not granted[/]",
    "denied": "[bold red]DENIED: asked, refused by the operator[/]",
    "unconfined": "[bold magenta]UNCONFINED: no sandbox limits it, granted or not[/]",
}


def grants(
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List every plugin's permissions: each grant and where it comes from, in force now
    and at the next start, and what is asked for and not granted (pending or denied).

    Beside a host serving the state directory's API, its answer (its own plugins
    directories and config count, not --plugins and --config); with none, the plugins on
    disk, the state's grants and the host config file, as a host started now would see
    them. 'plugbay grant ID PERMISSION'
    grants one; 'plugbay info ID' shows one plugin.
    """
    try:
        views, host, footer = _views(plugins, state, config)
    except PlugbayError as exc:
        fail(exc, as_json=as_json)
    rows, quiet = grant_rows(views)
    if as_json:
        print_json({"host": host, "rows": rows, "asks_nothing": quiet})
        return
    _print(rows, quiet, footer)


def _views(
    plugins: list[Path] | None, state: Path, config: Path | None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None, str]:
    """Every plugin's view, the host that gave it (None: none runs), and where it is from."""
    from plugbay.web.client import connect, running_host

    client = connect(state)
    if client is not None:
        with client:
            views = client.permissions()
        host = {"pid": client.pid, "api": client.url}
        return views, host, f"from the running host at {client.url} (pid {client.pid})"
    from plugbay.cli.offline import disk_permissions

    running = running_host(state)
    dirs = plugins or [Path("plugins")]
    if running is not None and plugins is None and running.get("plugins"):
        dirs = [Path(d) for d in running["plugins"]]  # the directories that host reads
    file = config_file(config)
    views = disk_permissions(dirs, state, file)
    read = f"read from its state database and {file or 'the default policy (no plugbay.toml)'}"
    if running is None:
        return views, None, (
            f"no host is running on {state.resolve()}: {read}, as a host started now would "
            "place them; what is in force is known to a running host"
        )  # fmt: skip
    host = {"pid": running["pid"], "api": None}
    return views, host, (
        f"the host running on {state.resolve()} (pid {running['pid']}) serves no API: {read}; "
        "what is in force in its workers is not known here"
    )  # fmt: skip


def grant_rows(views: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per plugin and permission, from each plugin's view; and the plugins that
    ask for nothing and have no grant."""
    rows: list[dict[str, Any]] = []
    quiet: list[str] = []
    for view in sorted(views, key=lambda v: v["id"]):
        mine = _rows_of(view)
        rows += mine
        if not mine:
            quiet.append(view["id"])
    return rows, quiet


def _rows_of(view: dict[str, Any]) -> list[dict[str, Any]]:
    from plugbay.isolation.policy import covers

    perms = view["permissions"]
    plugin = {"plugin": view["id"], "version": view["version"], "state": view["state"]}
    rows = [
        {
            **plugin,
            "permission": g["permission"],
            "status": "granted" if g["asked"] else "unasked",
            # what it allows of what the manifest asks (read:/srv covers read:/srv/data)
            "covers": [p for p in perms["asked"] if covers(g["permission"], p)],
            **{k: g[k] for k in ("source", "where", "file", "by", "since", "in_force")},
            # a grant that covers something asked is in force from its next start
            "next_start": bool(g["asked"]),
        }
        for g in perms["grants"]
    ]
    return rows + _unconfined_rows(plugin, perms) + _ungranted_rows(plugin, perms)


def _ungranted_rows(plugin: dict[str, Any], perms: dict[str, Any]) -> list[dict[str, Any]]:
    """What nothing grants: revoked (in force until its next start), pending, denied."""
    unsaid = dict.fromkeys(("source", "where", "file", "by", "since"))  # no grant gives it
    now = perms["in_force"]  # None: no worker of it runs, or no host to ask
    # in force in its worker, granted by nothing since: one row, not a pending one too
    lost = (perms.get("at_next_start") or {}).get("loses") or []
    free = perms.get("unconfined") or []
    lost = [p for p in lost if p not in free]  # with no sandbox it keeps it all the same
    rows: list[dict[str, Any]] = []
    for status, names in (
        ("revoked", lost),
        ("pending", [p for p in perms["pending"] if p not in lost]),
        ("denied", [p for p in perms["denied"] if p not in lost]),
    ):
        rows += [
            {**plugin, "permission": p, "status": status, "covers": [], **unsaid,
             "in_force": None if now is None else p in now, "next_start": False}
            for p in names
        ]  # fmt: skip
    return rows


def _unconfined_rows(plugin: dict[str, Any], perms: dict[str, Any]) -> list[dict[str, Any]]:
    """What a plugin with no sandbox asks for and nothing grants: it has it all the same
    (a grant or a denial changes nothing while the host trusts its code)."""
    where = perms.get("unconfined_in")
    if where is None:
        return []
    running = perms["in_force"] is not None
    return [
        {**plugin, "permission": p, "status": "unconfined", "covers": [],
         "source": "trust", "where": f"no sandbox ({where}): the host trusts its code",
         "file": None, "by": None, "since": None,
         "in_force": True if running else None, "next_start": True}
        for p in perms.get("unconfined") or []
    ]  # fmt: skip


def _approve(plugin_id: str, permission: str) -> str:
    """The footer's way to approve the first pending ask: its grant, or what instead."""
    instead = ungrantable(plugin_id, permission)
    if instead is None:
        return f"'plugbay grant {plugin_id} {escape(permission)}' grants one"
    return f"{plugin_id} {escape(permission)}: {escape(instead)}"


def _print(rows: list[dict[str, Any]], quiet: list[str], footer: str) -> None:
    if rows:
        out.print(_table(rows))
    waiting = [r for r in rows if r["status"] == "pending"]
    if waiting:
        first = waiting[0]
        out.print(
            f"[bold yellow]{len(waiting)} asked for and not granted[/]: "
            f"{_approve(first['plugin'], first['permission'])}, "
            "or deny it in the dashboard (the plugin runs without it)"
        )
    free = sorted({r["plugin"] for r in rows if r["status"] == "unconfined"})
    if free:
        out.print(
            f"[bold magenta]run with no sandbox[/] (trusted by the host's policy): "
            f"{', '.join(free)}: what they ask for of the network, files and subprocesses "
            "is not limited; to confine one, take it out of \\[policy] inline (or trust-core) "
            "in the host config and restart the host"
        )
    if quiet:
        out.print("ask for nothing and have no grant: " + ", ".join(quiet))
    if not rows and not quiet:
        err.print("no plugins found ('plugbay list' shows what is on disk and why)")
    out.print(f"[dim]{escape(footer)}[/]")


def _table(rows: list[dict[str, Any]]) -> Table:
    table = Table(header_style="bold")
    for col in ("plugin", "permission", "status", "source", "now", "next start"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["plugin"], escape(_permission(r)), _STATUS[r["status"]], escape(_source(r)),
            _now(r), "yes" if r["next_start"] else "no",
        )  # fmt: skip
    return table


def _permission(row: dict[str, Any]) -> str:
    """The permission, and what it covers of what is asked when that is not itself."""
    others = [p for p in row["covers"] if p != row["permission"]]
    return str(row["permission"]) + (f" (covers {', '.join(others)})" if others else "")


def _source(row: dict[str, Any]) -> str:
    """Where a grant comes from: the file, or who granted it and when, or the trust."""
    if row["where"] is None:
        return "-"
    text = str(row["where"])
    if row["by"]:
        text += f", by {row['by']}"
    if row["since"]:
        text += time.strftime(", %Y-%m-%d %H:%M", time.localtime(row["since"]))
    return text


def _now(row: dict[str, Any]) -> str:
    """In force in its running worker: yes, no, or why that is not known."""
    if row["status"] == "unconfined":  # nothing limits it: in force wherever it runs
        return f"unconfined ({str(row['where']).partition('(')[2].partition(')')[0]})"
    if row["in_force"] is None:
        return "-" if row["state"] == "not running" else f"- ({row['state']})"
    return "yes" if row["in_force"] else "no"
