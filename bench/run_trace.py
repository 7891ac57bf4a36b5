"""A timeline of one ``plugbay run`` of the bundled plugins: ``python -m bench.run_trace``.

Not a suite (no goal, no anchor): where the time of a start goes, phase by phase, to
find what to cut next. The child run is the lean ``plugbay run`` as the spine bench
runs it, with functions of the host wrapped as their modules load (an import hook:
nothing is imported sooner than it would be), each stamp the wall time since the
child was spawned and the CPU time of the thread that stamped it (the host's loop, for
all but the zygote's line). "zygote ready" is when its ready line could be read, not
when the loop read it ("noticed").

    python -m bench.run_trace            # one run, the timeline
    python -m bench.run_trace 3          # three runs, the last one's timeline
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import inspect
import os
import runpy
import select
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: module -> functions (Class.method) stamped on entry (">") and return ("<")
WRAPPED = {
    "plugbay.runtime.startup": ["spawn_zygote", "warm_up", "prepare_storage"],
    "plugbay.cli._serve": ["run_command", "_print_started"],
    "plugbay.runtime.host": ["Host.open", "Host.start", "Host._resolve_and_load"],
    "plugbay.model.discover": ["discover"],
    "plugbay.model.registry": ["PluginRegistry.resolve_all"],
    "plugbay.runtime.starting": ["Starting._start"],
    "plugbay.isolation.process": ["ProcessBackend._enforce_storage"],
    "plugbay.isolation.zygote": ["Zygote._spawn"],
}
#: modules whose import is stamped
IMPORTS = {"plugbay", "plugbay.cli._serve", "plugbay.runtime.host", "uvloop"}


def _child() -> None:
    spawned = float(os.environ["PLUGBAY_TRACE_T0"])
    stamps: list[tuple[float, float, str]] = []

    def stamp(label: str) -> None:
        stamps.append(((time.monotonic() - spawned) * 1000, time.thread_time() * 1000, label))

    def wrap(owner: Any, name: str) -> None:
        f = getattr(owner, name)
        if inspect.iscoroutinefunction(f):

            @functools.wraps(f)
            async def traced_async(*args: Any, **kwargs: Any) -> Any:
                which = getattr(args[1], "id", "") if len(args) > 1 else ""
                stamp(f"> {name} {which}")
                try:
                    return await f(*args, **kwargs)
                finally:
                    stamp(f"< {name} {which}")

            setattr(owner, name, traced_async)
        else:

            @functools.wraps(f)
            def traced(*args: Any, **kwargs: Any) -> Any:
                stamp(f"> {name}")
                try:
                    return f(*args, **kwargs)
                finally:
                    stamp(f"< {name}")

            setattr(owner, name, traced)

    def patched(name: str, module: ModuleType) -> None:
        for dotted in WRAPPED.get(name, []):
            *path, last = dotted.split(".")
            owner: Any = module
            for part in path:
                owner = getattr(owner, part)
            wrap(owner, last)
        if name == "plugbay.isolation.zygote":
            adopt = module.Zygote.adopt

            def watched(self: Any, process: Any, control: Any) -> None:
                fd = os.dup(control.fileno())

                def watch() -> None:
                    select.select([fd], [], [])
                    stamp("zygote ready")

                threading.Thread(target=watch, daemon=True).start()
                adopt(self, process, control)

            module.Zygote.adopt = watched

    class Hook(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
            if name not in WRAPPED and name not in IMPORTS:
                return None
            spec = importlib.machinery.PathFinder.find_spec(name, path, target)
            if spec is None or spec.loader is None:
                return None
            run = spec.loader.exec_module

            def exec_module(module: ModuleType) -> None:
                stamp(f"import {name}")
                run(module)
                stamp(f"imported {name}")
                patched(name, module)

            spec.loader.exec_module = exec_module  # type: ignore[method-assign]
            return spec

    sys.meta_path.insert(0, Hook())
    stamp("python started")
    sys.argv = ["plugbay", *sys.argv[2:]]
    try:
        runpy.run_module("plugbay.cli", run_name="__main__", alter_sys=True)
    finally:
        with open(os.environ["PLUGBAY_TRACE_OUT"], "w") as out:
            out.writelines(f"{wall:8.1f} {cpu:7.1f}  {label}\n" for wall, cpu, label in stamps)


def _run(work: Path) -> tuple[str, str]:
    state = work / "state"
    shutil.rmtree(state, ignore_errors=True)
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "160"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PLUGBAY_TRACE_OUT"] = str(work / "trace.txt")
    argv = [sys.executable, "-m", "bench.run_trace", "--child", "run", "--plugins"]
    argv += [str(ROOT / "plugins"), "--state", str(state), "--config", str(ROOT / "plugbay.toml")]
    argv += ["--http", "127.0.0.1:0", "--metrics-port", "0"]
    env["PLUGBAY_TRACE_T0"] = repr(time.monotonic())
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    ready = ""
    for line in proc.stdout:
        if "ready in" in line:
            ready = line.strip()
        if "serving" in line:
            break
    proc.terminate()
    proc.wait(timeout=30)
    return ready, (work / "trace.txt").read_text()


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        _child()
        return 0
    work = ROOT / "bench" / ".work" / "run-trace"
    work.mkdir(parents=True, exist_ok=True)
    for _ in range(int(argv[0]) if argv else 1):
        ready, timeline = _run(work)
        print(ready)
    print("   wall ms  cpu ms  (since the spawn; CPU of the stamping thread)")
    print(timeline, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
