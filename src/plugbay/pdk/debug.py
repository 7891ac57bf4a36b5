"""``plugbay debug``: run one plugin inline, in the foreground, under pdb (the spec's
``DevTools.debugger``).

The plugin (and what it depends on) is started by a real host in this process,
inline whatever its manifest asks, so it gets its real context: its config,
data directory, services and logger. Then either

* a command is called through the host, with a pdb breakpoint on the first line
  of the command's body: the author steps through it (``n``, ``s``, ``p x``,
  ``c``) and sees the result; or
* with no command, the host serves until Ctrl-C, and a ``breakpoint()`` in the
  plugin's code stops in pdb when that code runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import os
import pdb
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plugbay.api.errors import PlugbayError
from plugbay.pdk.params import parse_params

if TYPE_CHECKING:
    from plugbay.model.manifest import PluginManifest

__all__ = ["debug_plugin", "first_body_line"]


def first_body_line(func: Callable[..., Any]) -> tuple[str, int]:
    """The file and the first line of a function's body (after its docstring)."""
    import ast
    import textwrap

    target = inspect.unwrap(func)
    file = inspect.getsourcefile(target) or target.__code__.co_filename
    lines, start = inspect.getsourcelines(target)
    tree = ast.parse(textwrap.dedent("".join(lines)))
    fn = tree.body[0]
    assert isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
    body = fn.body
    if (
        len(body) > 1
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        body = body[1:]
    return file, start + body[0].lineno - 1


def _breakpointhook(*args: object, **kwargs: object) -> None:
    """``breakpoint()`` in the plugin: pdb, leaving Ctrl-C to the host (it stops serving)."""
    pdb.Pdb(nosigint=True).set_trace(sys._getframe().f_back)


def _break_at(file: str, line: int) -> pdb.Pdb:
    """A pdb that stops at ``file:line`` and nowhere else until then."""
    debugger = pdb.Pdb(nosigint=True)  # Ctrl-C stays the host's: stop, clean up
    problem = debugger.set_break(file, line)
    if problem:
        raise PlugbayError(f"cannot set a breakpoint: {problem}", where=f"{file}:{line}")
    debugger.reset()
    frame = sys._getframe()
    while frame is not None:
        frame.f_trace = debugger.trace_dispatch
        debugger.botframe = frame
        frame = frame.f_back  # type: ignore[assignment]
    debugger.set_continue()
    sys.settrace(debugger.trace_dispatch)
    return debugger


async def _run(
    plugin_id: str,
    plugin_dirs: Sequence[Path],
    state_dir: Path,
    config_file: Path | None,
    command: str | None,
    raw_params: Sequence[str],
    stop_in_command: bool,
    say: Callable[[str], None],
) -> Any:
    from plugbay.model.discover import discover
    from plugbay.runtime.host import Host

    found = discover(plugin_dirs, entry_points=True)
    _refuse_wasm(plugin_id, found.manifests)
    host = Host(
        None,
        state_dir=state_dir,
        config_file=config_file,
        entry_points=False,
        mode="development",
        inline=[plugin_id],  # the operator debugging it trusts it: in this process
    )
    await host.start()
    try:
        for manifest in found.manifests:
            if manifest.id == plugin_id:
                manifest = dataclasses.replace(manifest, isolation="inline")
            try:
                host.registry.register(manifest)
            except PlugbayError:
                continue  # a duplicate or a bad manifest elsewhere: not ours to debug
        if plugin_id not in host.registry:
            problems = [str(p) for p in found.problems if p.plugin in (None, plugin_id)]
            raise PlugbayError(
                f"no plugin '{plugin_id}' is found",
                plugin=plugin_id,
                where=", ".join(str(d) for d in plugin_dirs),
                hint="; ".join(problems[:2]) or "'plugbay list' shows the plugins found",
            )
        await host.manager.load_plan(host.registry.resolve_all(requested=[plugin_id]))
        rec = host.plugin(plugin_id)
        if str(rec.state) != "active":
            raise PlugbayError(
                f"did not start: {rec.reason}",
                plugin=plugin_id,
                hint=f"'plugbay info {plugin_id} --traceback' shows why",
                details={"traceback": rec.traceback or ""},
            )
        say(f"{plugin_id} {rec.version} is active inline in this process, with its real context")
        if command is None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            say("serving; a breakpoint() in the plugin's code stops here in pdb. Ctrl-C stops")
            await stop.wait()
            return None
        spec = host.manager.command_spec(plugin_id, command)
        params = parse_params(raw_params, spec)
        debugger: pdb.Pdb | None = None
        if stop_in_command:
            file, line = first_body_line(spec.func)
            say(
                f"stopping in {command} at {file}:{line} ('n' next line, 's' step in, 'p x', 'c' go on)"
            )
            debugger = _break_at(file, line)
        try:
            return await host.call_with(plugin_id, command, params, strict=False)
        finally:
            if debugger is not None:
                sys.settrace(None)
                debugger.clear_all_breaks()
    finally:
        await host.stop()


def _refuse_wasm(plugin_id: str, manifests: Sequence[PluginManifest]) -> None:
    """pdb steps through Python in this process; a Wasm plugin's code is a module that
    runs in the host's Wasm runtime, where it would only stop in plugbay's own code (the
    call into the module), never in the plugin's. Refused, saying what helps instead."""
    mine = [m for m in manifests if m.id == plugin_id]
    newest = max(mine, key=lambda m: m.version, default=None)
    if newest is None or newest.runtime != "wasm":
        return
    raise PlugbayError(
        "cannot be debugged with 'plugbay debug': it runs Python plugins' code under pdb, "
        f'and {plugin_id} {newest.version} is a Wasm plugin (runtime = "wasm"): its module '
        "runs in the host's Wasm runtime, where pdb never stops in its code",
        plugin=plugin_id,
        where=str(newest.location),
        hint=f"call it with 'plugbay call {plugin_id} COMMAND key=value…' and read what its "
        f"module wrote with 'plugbay logs {plugin_id}' (stdout at info, stderr at warning: "
        "print from the module to trace it); a trap's error names the functions it trapped "
        f"in, innermost first, and 'plugbay history {plugin_id}' keeps each one (see "
        "docs/wasm-plugins.md, 'Running and failing')",
        details={"runtime": "wasm"},
    )


def _run_with_hook(coro: Any) -> Any:
    # PYTHONBREAKPOINT still wins (e.g. =0 to ignore breakpoints, or another debugger)
    own = os.environ.get("PYTHONBREAKPOINT", "") in ("", "pdb.set_trace")
    previous = sys.breakpointhook
    if own:
        sys.breakpointhook = _breakpointhook
    try:
        return asyncio.run(coro)
    finally:
        sys.breakpointhook = previous


def debug_plugin(
    plugin_id: str,
    plugin_dirs: Sequence[Path],
    *,
    state_dir: Path,
    config_file: Path | None = None,
    command: str | None = None,
    params: Sequence[str] = (),
    stop_in_command: bool = True,
    say: Callable[[str], None] = print,
) -> Any:
    """Start ``plugin_id`` inline and debug it; returns the command's result (see the module)."""
    return _run_with_hook(
        _run(
            plugin_id,
            plugin_dirs,
            state_dir,
            config_file,
            command,
            params,
            stop_in_command,
            say,
        )
    )
