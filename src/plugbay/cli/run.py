"""Commands that run a host on this machine: run, doctor."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from plugbay.api.errors import PlugbayError
from plugbay.cli._console import JsonOpt, err, fail, out
from plugbay.cli._options import (
    ConfigOpt,
    PluginsOpt,
    StateOpt,
    add_command,
    config_file,
)
from plugbay.cli._plugin_views import limits_text
from plugbay.cli._run_args import RunOptions
from plugbay.cli._seconds import finite_number
from plugbay.cli._serve import DRAIN_SECONDS, run_command

__all__ = ["PANEL", "register"]

PANEL = "host"


def run(
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
    once: Annotated[
        bool,
        typer.Option("--once", help="Start, print the table, stop: exit 1 if a plugin failed."),
    ] = False,
    metrics_port: Annotated[
        int,
        typer.Option(
            "--metrics-port",
            min=0,
            max=65535,
            help="Serve Prometheus /metrics on 127.0.0.1 here (0: any free port).",
        ),
    ] = 9464,
    no_metrics: Annotated[
        bool, typer.Option("--no-metrics", help="Do not serve /metrics.")
    ] = False,
    metrics_public: Annotated[
        bool,
        typer.Option(
            "--metrics-public",
            help="Serve /metrics without the API token (by default a scrape must send it).",
        ),
    ] = False,
    http: Annotated[
        str,
        typer.Option(
            "--http",
            envvar="PLUGBAY_HTTP",
            help="Serve the API and dashboard on HOST:PORT (port 0: any free port).",
        ),
    ] = "127.0.0.1:8750",
    no_http: Annotated[
        bool, typer.Option("--no-http", help="Do not serve the API and dashboard.")
    ] = False,
    http_public: Annotated[
        bool,
        typer.Option(
            "--http-public",
            help="Allow --http on an address other machines can reach (the token guards it).",
        ),
    ] = False,
    http_max_body: Annotated[
        int,
        typer.Option("--http-max-body", min=1, help="Largest request body the API accepts, bytes."),
    ] = 1 << 20,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch", "-w", help="Reload a plugin when its files change (dependents follow)."
        ),
    ] = False,
    drain: Annotated[
        float,
        typer.Option(
            "--drain",
            min=0.0,
            callback=finite_number,
            help="On SIGTERM / Ctrl-C, seconds calls in flight may take to finish.",
        ),
    ] = DRAIN_SECONDS,
) -> None:
    """Start the host on the plugins directory and serve until Ctrl-C.

    Prints each plugin with version, type, state and load time, then serves.
    On Ctrl-C (or SIGTERM) plugins are cleaned up in reverse dependency order.
    """
    started = time.perf_counter()
    options = RunOptions(
        tuple(plugins) if plugins else None, state, config, once, metrics_port, no_metrics,
        metrics_public, http, no_http, http_public, http_max_body, watch, drain,
    )  # fmt: skip
    # --once serves nothing, yet a --http it would not use is checked all the same: a
    # command line that --once takes is one that 'plugbay run' without it takes too
    bind = None if no_http else _http_bind(http, http_public, serving=not once)
    code = run_command(options, bind, started)
    raise typer.Exit(code)


def _http_bind(text: str, public: bool, *, serving: bool = True) -> tuple[str, int]:
    """``--http`` as (address, port), or exit 2 when it is no HOST:PORT (or a public address
    without --http-public, when the API is to be served: ``serving``)."""
    from plugbay.web import is_loopback, parse_bind

    try:
        address, port = parse_bind(text)
    except PlugbayError as exc:
        fail(exc, code=2)
    if serving and not is_loopback(address):
        if not public:
            fail(
                PlugbayError(
                    f"--http {text} would let other machines reach this host's API",
                    hint="add --http-public if that is what you want (every request still needs "
                    "the token), or bind 127.0.0.1",
                ),
                code=2,
            )
        err.print(
            f"[yellow]warning:[/] the API listens on {escape(address)}:{port}, reachable from "
            "other machines; anyone with the token can load, stop and call plugins. Keep it "
            "behind TLS and a firewall."
        )
    return address, port


# --------------------------------------------------------------------------- doctor


def doctor(
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 when any isolation layer is inactive.")
    ] = False,
) -> None:
    """Check which isolation layers this machine offers, and what each guarantees.

    Every layer is tried for real, in a short-lived child process, so the answer is
    what a sandboxed worker would get here. The host refuses to start a sandboxed
    plugin rather than run it with a layer missing. The host config is checked first,
    table by table, as 'plugbay run' checks it at start: what run would refuse, doctor
    refuses in the same words.
    """
    from plugbay.isolation.limits import probe_all

    path = config_file(config)
    policy = _isolation_policy(path, as_json=as_json)  # a broken file is said before probing
    statuses = probe_all()
    trusted = list(policy.inline) + (["core/* plugins"] if policy.trust_core else [])
    if as_json:
        report = _doctor_report(statuses, policy, path, trusted) | _reporting()
        out.print_json(json.dumps(report, default=str))
    else:
        _print_doctor(statuses, policy, trusted)
    if strict and any(not s.active for s in statuses):
        raise typer.Exit(1)


def _isolation_policy(path: Path | None, *, as_json: bool) -> Any:
    """The policy of the host config at ``path``, read as the host reads it, or exit: a
    ``[policy]``, ``[secrets]``, ``[python]``, ``[monitor]`` or ``[plugins]`` that
    ``plugbay run`` would refuse is refused here in its words (``runtime.host_file``)."""
    from plugbay.isolation.policy import IsolationPolicy
    from plugbay.monitor.config import MonitorSettings
    from plugbay.runtime.host_file import read_host_file

    if path is None:
        return IsolationPolicy.from_config({})
    try:
        read = read_host_file(path)
        MonitorSettings.from_config(read.monitor, where=str(path))
    except PlugbayError as exc:
        fail(exc, as_json=as_json)
    return read.policy


def _doctor_report(
    statuses: list[Any], policy: Any, path: Path | None, trusted: list[str]
) -> dict[str, Any]:
    return {
        "layers": [
            {"name": s.name, "active": s.active, "detail": s.detail, "guarantees": s.guarantees}
            for s in statuses
        ],
        "policy": {
            "config": str(path) if path else None,
            "inline": trusted,
            "defaults": dict(policy.defaults),
            "caps": dict(policy.caps),
        },
    }


def _reporting() -> dict[str, Any]:
    """What enforces the storage quota here, and which layers report their denials."""
    from plugbay.isolation.denials import denial_reporting
    from plugbay.isolation.quota import probe as probe_quota

    storage = probe_quota()
    return {
        "storage_quota": {"enforced_by": storage.mechanism, "detail": storage.detail},
        "denials": [d.as_dict() for d in denial_reporting()],
    }


def _print_doctor(statuses: list[Any], policy: Any, trusted: list[str]) -> None:
    table = Table(header_style="bold", show_lines=True)
    for col in ("layer", "here", "detail", "guarantees"):
        table.add_column(col, overflow="fold")
    for s in statuses:
        here = "[green]active[/]" if s.active else "[red]INACTIVE[/]"
        table.add_row(s.name, here, escape(s.detail), escape(s.guarantees))
    out.print(table)
    report = _reporting()
    quota = report["storage_quota"]
    out.print(f"storage quota: {quota['enforced_by']} — {escape(quota['detail'])}")
    seen = Table("denials by", "reported", "how", header_style="bold")
    for d in report["denials"]:
        seen.add_row(d["layer"], d["reported"], escape(d["how"]))
    out.print(seen)
    out.print("runs inline (trusted): " + escape(", ".join(trusted) or "nothing"))
    out.print("every other plugin: a sandboxed worker with " + limits_text(dict(policy.defaults)))
    inactive = [s.name for s in statuses if not s.active]
    if inactive:
        err.print(
            f"[yellow]warning:[/] inactive here: {', '.join(inactive)}. A sandboxed plugin "
            "cannot start without every layer; see the detail column for why, and run "
            "as root on Linux ≥ 6.7 with writable cgroups for all of them."
        )
    else:
        out.print(f"[green]all {len(statuses)} layers active[/]")


def register(app: typer.Typer) -> None:
    """Attach the host commands to ``app``."""
    for fn in (run, doctor):
        add_command(app, fn, panel=PANEL)
