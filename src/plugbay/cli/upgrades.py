"""Upgrades that prove themselves: record, replay, canary, shadow, bisect.

``record``, ``canary``, ``shadow`` and the ``--canary``/``--shadow`` forms of
``upgrade`` act on live calls, so they ask the host serving the state directory
through its API. ``replay`` starts a sandbox of its own and asks no host at all.
``bisect`` moves the running host's plugins (or a host it starts here, for a
``--call`` check) and puts them back.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from plugbay.api.errors import PlugbayError
from plugbay.cli._console import JsonOpt, err, fail, out
from plugbay.cli._options import (
    ConfigOpt,
    PluginIdArg,
    PluginsOpt,
    StateOpt,
    add_command,
    config_file,
    print_json,
)
from plugbay.cli._seconds import positive_seconds

if TYPE_CHECKING:
    from plugbay.runtime.bisect import Activated, BisectResult
    from plugbay.web.client import HostClient

__all__ = ["PANEL", "gradual_upgrade", "register"]

PANEL = "versions"


# --------------------------------------------------------------------------- the running host


@contextlib.contextmanager
def _running(state: Path, what: str, *, as_json: bool) -> Iterator[HostClient]:
    """The host serving ``state`` through its API; a clear error when there is none."""
    from plugbay.web.client import connect

    try:
        client = connect(state)
    except PlugbayError as exc:
        fail(exc, as_json=as_json)
    if client is None:
        fail(
            PlugbayError(
                f"'{what}' acts on live calls, and no host with an API serves {state}",
                hint="start one with 'plugbay run' (it serves its API on 127.0.0.1), "
                "or pass --state for the directory it serves",
            ),
            as_json=as_json,
        )
    try:
        with client:
            yield client
    except PlugbayError as exc:
        fail(exc, as_json=as_json)


def _api(client: HostClient, method: str, path: str, body: Any = None) -> Any:
    return client._json(method, path, body)


# --------------------------------------------------------------------------- record


def record(
    plugin_id: PluginIdArg,
    calls: Annotated[
        int | None, typer.Option("--calls", min=1, help="Keep the newest this many calls.")
    ] = None,
    stop: Annotated[bool, typer.Option("--stop", help="Stop recording (the file stays).")] = False,
    export: Annotated[
        Path | None,
        typer.Option("--export", help="Write the recording to this file (JSON lines)."),
    ] = None,
    state: StateOpt = Path(".plugbay"),
    as_json: JsonOpt = False,
) -> None:
    """Record a plugin's calls on the running host (the flight recorder).

    Each call is kept with its command, parameters, result or error, duration and the
    version that answered, bounded to the newest calls (1000 unless --calls, or the
    host config's \\[policy] record-calls); parameters the manifest lists under
    secret-parameters are redacted. The recording is kept beside the state
    (STATE/recordings/ID.jsonl); --export writes it where you say, for 'plugbay replay'.
    Without a running host, --export copies the recording the last host kept.
    """
    path = state / "recordings" / f"{plugin_id}.jsonl"
    if export is not None and not stop and calls is None:
        from plugbay.web.client import connect

        client = connect(state)
        if client is None:
            if not path.is_file():
                fail(
                    PlugbayError(
                        "has no recording in this state directory",
                        plugin=plugin_id,
                        where=str(path),
                        hint=f"'plugbay record {plugin_id}' on a running host records its calls",
                    ),
                    as_json=as_json,
                )
            _export(export, path.read_bytes(), plugin_id, as_json=as_json)
            return
        client.close()
    with _running(state, "record", as_json=as_json) as client:
        base = f"/api/v1/plugins/{plugin_id}/recording"
        if export is not None:
            data = client._request("GET", base).content
            _export(export, data, plugin_id, as_json=as_json)
            if not stop:
                return
        if stop:
            status = _api(client, "DELETE", base)
        else:
            status = _api(client, "POST", base, {"calls": calls} if calls else None)
    if as_json:
        print_json({"ok": True, **status})
        return
    verb = "recording" if status["recording"] else "stopped recording"
    out.print(
        f"{plugin_id}: {verb}; {status['calls']} call(s) kept (newest {status['limit_calls']}), "
        f"{status['dropped']} dropped" + (f"; file {status['path']}" if status["path"] else "")
    )


def _export(target: Path, data: bytes, plugin_id: str, *, as_json: bool) -> None:
    try:
        target.write_bytes(data)
    except OSError as exc:
        fail(PlugbayError(f"cannot write {target}: {exc.strerror or exc}", where=str(target)))
    calls = max(data.count(b"\n") - 1, 0)
    if as_json:
        print_json({"ok": True, "plugin": plugin_id, "exported": str(target), "calls": calls})
    else:
        out.print(f"{plugin_id}: {calls} recorded call(s) written to {target}")


# --------------------------------------------------------------------------- replay


def replay(
    recording: Annotated[Path, typer.Argument(help="A recording ('plugbay record ID --export')")],
    version: Annotated[str, typer.Option("--version", "-v", help="The installed version to run")],
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", callback=positive_seconds, help="Per-call time limit, s (above 0)."
        ),
    ] = 30.0,
    as_json: JsonOpt = False,
) -> None:
    """Run a recording's calls against an installed version, and compare the answers.

    The version runs in a sandbox of its own (a host in a temporary directory, with the
    host config's policy and a copy of the plugin's data directory: never the live one).
    For each command: answers that differ, new errors, errors that went away, latency
    before and after. Exits 1 when an answer differs or a new error appears, so it can
    gate a deployment.
    """
    from plugbay.runtime.recorder import read_recording
    from plugbay.runtime.replay import replay as run_replay

    try:
        recorded = read_recording(recording)
        report = asyncio.run(
            run_replay(
                recorded, version, plugin_dirs=plugins or [Path("plugins")], state_dir=state,
                config_file=config_file(config), call_timeout=timeout,
            )
        )  # fmt: skip
    except PlugbayError as exc:
        fail(exc, as_json=as_json)
    data = report.to_dict()
    if as_json:
        print_json({"ok": not report.failed, **data})
    else:
        out.print(
            f"replayed {report.replayed} call(s) of {report.plugin} "
            f"(recorded on {', '.join(report.recorded_versions) or '-'}) against {report.version}"
            + (f" in {report.seconds:.2f} s" if report.seconds else "")
        )
        out.print(comparison_table(data["commands"], "recorded", report.version))
        _print_examples(data["commands"])
        for note in report.notes:
            err.print(f"[yellow]note:[/] {escape(note)}")
        verdict = (
            f"[red]{report.comparison.differences} difference(s)[/]"
            if report.failed
            else "[green]no difference[/]"
        )
        out.print(verdict)
    if report.failed:
        raise typer.Exit(1)


def comparison_table(commands: dict[str, Any], before: str, after: str) -> Table:
    """One row per command: calls, same, differ, new errors, fixed, skipped, latency."""
    table = Table(box=None, pad_edge=False)
    for name in (
        "command",
        "calls",
        "same",
        "differ",
        "new errors",
        "fixed",
        "both err",
        "skipped",
    ):
        table.add_column(name, justify="left" if name == "command" else "right")
    table.add_column(f"latency {before} → {after}", justify="right")
    for name, c in commands.items():
        ref, cand = c["reference_mean_seconds"], c["candidate_mean_seconds"]
        latency = (
            f"{ref * 1000:.2f} → {cand * 1000:.2f} ms ({c['latency_ratio']:.2f}x)"
            if ref and cand is not None and c["latency_ratio"] is not None
            else "-"
        )
        table.add_row(
            escape(name), str(c["calls"]), str(c["same"]),
            _red(c["differ"]), _red(c["new_errors"]), str(c["fixed_errors"]),
            str(c["both_errors"]), str(c["skipped"]), latency,
        )  # fmt: skip
    return table


def _red(n: int) -> str:
    return f"[red]{n}[/]" if n else "0"


def _print_examples(commands: dict[str, Any]) -> None:
    import json

    for name, c in commands.items():
        for example in c["examples"]:
            out.print(
                f"  {escape(name)} {escape(json.dumps(example['params'], default=str))}: "
                f"{example['verdict']}, expected {escape(json.dumps(example['expected'], default=str))}, "
                f"got {escape(json.dumps(example['got'], default=str))}"
            )


# --------------------------------------------------------------------------- canary, shadow


WindowOpt = Annotated[
    str,
    typer.Option("--window", help="How long a canary is watched: calls (200) or time (60s, 5m)."),
]


def gradual_upgrade(
    plugin_id: str,
    version: str | None,
    *,
    canary: str | None,
    shadow: bool,
    window: str,
    min_calls: int,
    max_error_increase: float,
    max_latency_ratio: float,
    wait: bool,
    state: Path,
    as_json: bool,
) -> None:
    """``plugbay upgrade ID --canary 10%`` / ``--shadow`` (called by the upgrade command)."""
    from plugbay.runtime.canary import parse_share, parse_window

    if canary is not None and shadow:
        fail(PlugbayError("choose --canary or --shadow, not both"), as_json=as_json, code=2)
    with _running(
        state, "upgrade --canary" if canary else "upgrade --shadow", as_json=as_json
    ) as client:
        base = f"/api/v1/plugins/{plugin_id}"
        if shadow:
            summary = _api(client, "POST", f"{base}/shadow", {"version": version})
            if not wait:
                _show_shadow(summary, as_json=as_json)
                return
            _watch_shadow(client, plugin_id, as_json=as_json)
            return
        assert canary is not None
        try:
            calls, seconds = parse_window(window)
            share = parse_share(canary)
        except PlugbayError as exc:
            fail(exc, as_json=as_json, code=2)
        body = {
            "version": version, "share": share, "window_calls": calls, "window_seconds": seconds,
            "min_calls": min_calls, "max_error_increase": max_error_increase,
            "max_latency_ratio": max_latency_ratio,
        }  # fmt: skip
        summary = _api(client, "POST", f"{base}/canary", body)
        if not as_json:
            out.print(
                f"{plugin_id}: canary {summary['to']} takes {share:.0%} of live calls; "
                f"{summary['from']} serves the rest (window: {window})"
            )
        if wait:
            summary = _wait_canary(client, plugin_id, as_json=as_json)
    _show_canary(summary, as_json=as_json)
    if summary["state"] == "rolled-back":
        raise typer.Exit(1)


def _wait_canary(client: HostClient, plugin_id: str, *, as_json: bool) -> dict[str, Any]:
    path = f"/api/v1/plugins/{plugin_id}/canary"
    summary: dict[str, Any] = _api(client, "GET", path)
    shown = -1
    while summary["state"] in ("starting", "running", "promoting", "rolling-back"):
        time.sleep(0.25)
        summary = _api(client, "GET", path)
        new = summary["figures"]["new"]
        if not as_json and sys.stdout.isatty() and new["calls"] != shown:
            shown = new["calls"]
            err.print(_canary_line(summary), end="\r")
    return summary


def _canary_line(summary: dict[str, Any]) -> str:
    f = summary["figures"]
    old, new = f["old"], f["new"]

    def ms(v: float | None) -> str:
        return f"{v * 1000:.2f} ms" if v else "-"

    return (
        f"{old['version']}: {old['calls']} calls, {old['error_rate']:.1%} errors, "
        f"mean {ms(old['mean_seconds'])} | {new['version']}: {new['calls']} calls, "
        f"{new['error_rate']:.1%} errors, mean {ms(new['mean_seconds'])}"
    )


def _show_canary(summary: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print_json({"ok": summary["state"] != "rolled-back", **summary})
        return
    state = summary["state"]
    colour = {"promoted": "green", "rolled-back": "red"}.get(state, "cyan")
    out.print(f"{summary['plugin']}: canary {summary['to']} [{colour}]{state}[/]")
    out.print("  " + _canary_line(summary))
    if summary.get("reason"):
        out.print(f"  {escape(summary['reason'])}")


def _show_shadow(summary: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print_json({"ok": True, **summary})
        return
    out.print(_shadow_view(summary))
    _print_examples(summary["commands"])


def _shadow_view(summary: dict[str, Any]) -> Table:
    outer = Table.grid()
    outer.add_row(
        f"{summary['plugin']}: shadow {summary['to']} ({summary['state']}) beside "
        f"{summary['from']}: {summary['mirrored']} call(s) mirrored, "
        f"{summary['differences']} difference(s), {summary['dropped']} dropped"
    )
    outer.add_row(comparison_table(summary["commands"], summary["from"], summary["to"]))
    return outer


def _watch_shadow(client: HostClient, plugin_id: str, *, as_json: bool) -> None:
    path = f"/api/v1/plugins/{plugin_id}/shadow"
    summary = _api(client, "GET", path)
    if as_json:
        print_json(summary)
        return
    with contextlib.suppress(KeyboardInterrupt), Live(_shadow_view(summary), console=out) as live:
        while summary["state"] == "running":
            time.sleep(1.0)
            summary = _api(client, "GET", path)
            live.update(_shadow_view(summary))


def shadow(
    plugin_id: PluginIdArg,
    stop: Annotated[bool, typer.Option("--stop", help="Stop the shadow.")] = False,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Refresh the comparison until Ctrl-C.")
    ] = False,
    state: StateOpt = Path(".plugbay"),
    as_json: JsonOpt = False,
) -> None:
    """Show a shadow's comparison with the serving version (start one with
    'plugbay upgrade ID --shadow')."""
    with _running(state, "shadow", as_json=as_json) as client:
        path = f"/api/v1/plugins/{plugin_id}/shadow"
        if watch and not stop:
            _watch_shadow(client, plugin_id, as_json=as_json)
            return
        summary = _api(client, "DELETE" if stop else "GET", path)
    _show_shadow(summary, as_json=as_json)


def canary(
    plugin_id: PluginIdArg,
    stop: Annotated[bool, typer.Option("--stop", help="Roll the canary back now.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the decision.")] = False,
    state: StateOpt = Path(".plugbay"),
    as_json: JsonOpt = False,
) -> None:
    """Show a canary's figures, or how the last one ended (start one with
    'plugbay upgrade ID --canary 10%'). Exits 1 when it was rolled back."""
    with _running(state, "canary", as_json=as_json) as client:
        path = f"/api/v1/plugins/{plugin_id}/canary"
        if stop:
            summary = _api(client, "DELETE", path)
        elif wait:
            summary = _wait_canary(client, plugin_id, as_json=as_json)
        else:
            summary = _api(client, "GET", path)
    _show_canary(summary, as_json=as_json)
    if summary["state"] == "rolled-back":
        raise typer.Exit(1)


# --------------------------------------------------------------------------- bisect


class _RemoteSet:
    """A bisect's host side, through the running host's API."""

    def __init__(self, client: HostClient) -> None:
        self.client = client

    async def begin(self) -> tuple[list[str], dict[str, list[str]]]:
        data = _api(self.client, "POST", "/api/v1/bisect")
        return list(data["order"]), dict(data["needs"])

    async def activate(self, ids: Sequence[str]) -> Activated:
        from plugbay.runtime.bisect import Activated

        data = _api(self.client, "PUT", "/api/v1/bisect/active", {"plugins": list(ids)})
        return Activated(list(data["order"]), dict(data.get("failed") or {}))

    async def versions(self, plugin_id: str) -> tuple[list[str], str]:
        data = _api(self.client, "GET", f"/api/v1/bisect/versions/{plugin_id}")
        return list(data["versions"]), str(data["serving"])

    async def move(self, plugin_id: str, version: str) -> None:
        _api(self.client, "POST", "/api/v1/bisect/move", {"plugin": plugin_id, "version": version})

    async def restore(self) -> list[str]:
        return list(_api(self.client, "DELETE", "/api/v1/bisect")["problems"])


def bisect(
    check: Annotated[
        str | None,
        typer.Option("--check", help="A shell command; it passes when it exits 0."),
    ] = None,
    call: Annotated[
        str | None,
        typer.Option(
            "--call",
            help="A plugin command instead: 'ID COMMAND key=value…' (with --expect).",
        ),
    ] = None,
    expect: Annotated[
        str | None, typer.Option("--expect", help="The answer --call should give (JSON or text).")
    ] = None,
    plugin: Annotated[
        str | None,
        typer.Option("--plugin", help="Look for the version of this plugin instead (the store)."),
    ] = None,
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Find the plugin (or, with --plugin, the version of one) that makes a check fail.

    The active plugins are halved, in an order that keeps every dependency satisfied,
    until one is left: with 32 plugins that is 6 checks. No question is asked; each
    step is printed, and the host is put back as it was at the end (the same plugins,
    at the same versions). It acts on the running host through its API; with no host
    running, a --call check runs on a host started here.
    """
    if (check is None) == (call is None) or (call is not None and expect is None):
        fail(
            PlugbayError(
                "give a check: --check 'SHELL COMMAND', or --call 'ID COMMAND k=v' --expect ANSWER",
                hint="e.g. plugbay bisect --check 'curl -fs localhost:8080/health'",
            ),
            as_json=as_json,
            code=2,
        )
    from plugbay.web.client import connect

    client = connect(state)
    if client is None:
        if check is not None:
            fail(
                PlugbayError(
                    f"a shell check needs the host it checks: no host with an API serves {state}",
                    hint="start it with 'plugbay run', or give a --call check (a host starts here)",
                ),
                as_json=as_json,
            )
        result = _bisect_here(call or "", expect, plugin, plugins, state, config, as_json=as_json)
    else:
        with client:
            result = _bisect_remote(client, check, call, expect, plugin, as_json=as_json)
    _show_bisect(result, as_json=as_json)
    if result.culprit is None:
        raise typer.Exit(1)


def _say_step(as_json: bool) -> Any:
    def say(step: dict[str, Any]) -> None:
        if as_json:
            return
        mark = "[green]pass[/]" if step["passed"] else "[red]FAIL[/]"
        active = f", {step['active']} active" if "active" in step else ""
        out.print(
            f"check {step['check']}: {escape(step['what'])}{active}: {mark} ({escape(step['note'])})"
        )
        for pid, why in step.get("failed", {}).items():
            hint = f" ({why['hint']})" if why.get("hint") else ""
            out.print(
                f"  [yellow]{escape(pid)} did not start[/], so the check ran without it: "
                f"{escape(str(why['message']))}{escape(hint)}"
            )

    return say


def _parse_call(call: str) -> tuple[str, str, list[str]]:
    words = shlex.split(call)
    if len(words) < 2:
        raise PlugbayError(
            f"--call needs a plugin id and a command (got {call!r})",
            hint='e.g. --call "acme.calc add a=1 b=2" --expect 3',
        )
    return words[0], words[1], words[2:]


def _bisect_remote(
    client: HostClient,
    check: str | None,
    call: str | None,
    expect: str | None,
    plugin: str | None,
    *,
    as_json: bool,
) -> BisectResult:
    from plugbay.pdk.params import parse_params
    from plugbay.runtime.bisect import bisect_plugins, bisect_versions, call_check, shell_check

    keep: list[str] = []
    if check is not None:
        checker = shell_check(check)
    else:
        pid, command, pairs = _parse_call(call or "")

        async def remote_call(p: str, c: str, params: dict[str, Any]) -> Any:
            return client.call(p, c, params)

        checker = call_check(remote_call, pid, command, parse_params(pairs, None), expect)
        keep = [pid]
    target = _RemoteSet(client)
    say = _say_step(as_json)
    try:
        if plugin is not None:
            return asyncio.run(bisect_versions(target, plugin, checker, say))
        return asyncio.run(bisect_plugins(target, checker, say, keep=keep))
    except PlugbayError as exc:
        fail(exc, as_json=as_json)


def _bisect_here(
    call: str,
    expect: str | None,
    plugin: str | None,
    plugins: list[Path] | None,
    state: Path,
    config: Path | None,
    *,
    as_json: bool,
) -> BisectResult:
    from plugbay.cli._host import in_process
    from plugbay.cli._options import host_kwargs
    from plugbay.runtime.bisect import bisect_plugins, bisect_versions, call_check

    try:
        pid, command, pairs = _parse_call(call)
    except PlugbayError as exc:
        fail(exc, as_json=as_json, code=2)

    async def body(host: Any) -> BisectResult:
        from plugbay.pdk.params import parse_params

        async def here(p: str, c: str, params: dict[str, Any]) -> Any:
            return await host.call_with(p, c, params, strict=False)

        spec = host.manager.command_spec(pid, command)
        checker = call_check(here, pid, command, parse_params(pairs, spec), expect)
        say = _say_step(as_json)
        if plugin is not None:
            return await bisect_versions(host.trials.bisect, plugin, checker, say)
        return await bisect_plugins(host.trials.bisect, checker, say, keep=[pid])

    return in_process(host_kwargs(plugins, state, config), body, as_json=as_json)


def _show_bisect(result: BisectResult, *, as_json: bool) -> None:
    if as_json:
        print_json({"ok": result.culprit is not None, **result.to_dict()})
        return
    colour = "red" if result.culprit else "yellow"
    out.print(f"[{colour}]{escape(result.found)}[/] ({result.checks} check(s))")
    if result.restored:
        out.print("the host is as it was before the bisect")
    else:
        for problem in result.problems:
            err.print(f"[red]not restored:[/] {escape(problem)}")


def register(app: typer.Typer) -> None:
    """Attach record, replay, canary, shadow and bisect to ``app``."""
    for fn in (record, replay, canary, shadow, bisect):
        add_command(app, fn, panel=PANEL)
