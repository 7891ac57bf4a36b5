"""The Wasm backend's figures: call latency, module start, idle memory.

Anchors, measured in the same run:

* a raw wasmtime call of the same export (``plugbay_call``) with the same payload,
  on an instance of the same module in this thread (write the payload into its
  memory, call, read the reply): the floor of any host that uses wasmtime-py;
* a call of the same command on a sandboxed worker (the process backend);
* a sandboxed worker's start, and an idle worker's USS.

The rounds of each call figure alternate with their anchor's, so a noisy, shared
machine weighs on both alike.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import msgspec

from bench._report import Figure, print_figures
from bench.sandbox import _uss

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"
WASM = "bench.wasm-echo"
PROC = "bench.proc-echo"
PAYLOAD = "hello, plugin"

ECHO = """
from plugbay import UtilityPlugin, command

class Echo(UtilityPlugin):
    @command
    def echo(self, payload: str) -> str:
        return payload
"""


def _plugins() -> Path:
    from plugbay.pdk.wasm_build import build_wasm, create_c_plugin

    root = WORK / "wasm-plugins"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    directory = create_c_plugin(WASM, root / "wasm-echo")
    build_wasm(directory)
    proc = root / "proc-echo"
    proc.mkdir()
    (proc / "plugin.toml").write_text(
        f'id = "{PROC}"\nversion = "1.0.0"\ntype = "utility"\nentry = "echo:Echo"\n'
    )
    (proc / "echo.py").write_text(ECHO)
    return root


def _raw_instance(module: Path) -> Any:
    """An instance of the module, driven with wasmtime's own API (no plugbay in the way)."""
    import wasmtime

    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    store.set_wasi(wasmtime.WasiConfig())
    compiled = wasmtime.Module.from_file(engine, str(module))
    linker.define_unknown_imports_as_traps(compiled)  # echo calls no host import
    instance = linker.instantiate(store, compiled)
    exports = instance.exports(store)
    exports["_initialize"](store)  # type: ignore[operator]
    memory, alloc, call = exports["memory"], exports["plugbay_alloc"], exports["plugbay_call"]
    command = b"echo"
    payload = msgspec.json.encode({"payload": PAYLOAD})
    base = alloc(store, 4096)  # type: ignore[operator]

    def one() -> bytes:
        memory.write(store, command + payload, base)  # type: ignore[union-attr]
        packed = call(store, base, len(command), base + len(command), len(payload))  # type: ignore[operator]
        packed &= (1 << 64) - 1
        ptr, length = packed >> 32, packed & 0xFFFFFFFF
        return bytes(memory.read(store, ptr, ptr + length))  # type: ignore[union-attr]

    assert msgspec.json.decode(one()) == {"ok": PAYLOAD}
    return one


def _c_api_call(raw_module: Path) -> Any:
    """The same call through wasmtime's C API with its arguments made once (the path
    plugbay takes, ``_wasm_abi._FastCall``), alone in this thread: the floor."""
    from plugbay.isolation._wasm_abi import InstanceLimits, WasmInstance, load_program

    class NoHost:
        def log(self, request: Any) -> None:
            return None

        def request(self, kind: str, request: Any) -> Any:
            return {"ok": None}

        def sleep(self, seconds: float) -> None:
            return None

    instance = WasmInstance(load_program(raw_module, None), InstanceLimits(None, WORK), NoHost())
    instance.hook("init", b"{}")
    payload = msgspec.json.encode({"payload": PAYLOAD})

    def one() -> Any:
        return instance.call(b"echo", payload)

    assert one() == {"ok": PAYLOAD}
    return one


async def _figures(rounds: int, per_round: int) -> dict[str, Any]:
    from plugbay.runtime.host import Host

    root = _plugins()
    raw = _raw_instance(root / "wasm-echo" / "build" / "plugin.wasm")
    floor = _c_api_call(root / "wasm-echo" / "build" / "plugin.wasm")
    out: dict[str, Any] = {"raw": [], "floor": [], "wasm": [], "proc": []}
    state = WORK / "wasm-state"
    shutil.rmtree(state, ignore_errors=True)
    async with Host(root, state_dir=state, entry_points=False, init_timeout=60) as host:
        assert str(host.plugin(WASM).state) == "active", host.plugin(WASM).reason
        assert host.plugin(PROC).placement.sandboxed  # type: ignore[union-attr]
        call = host.call
        for _ in range(300):  # warm up all three
            raw()
            await call(WASM, "echo", payload=PAYLOAD)
            await call(PROC, "echo", payload=PAYLOAD)
        for _ in range(rounds):
            for _ in range(per_round):
                t = time.perf_counter()
                raw()
                out["raw"].append(time.perf_counter() - t)
            for _ in range(per_round):
                t = time.perf_counter()
                floor()
                out["floor"].append(time.perf_counter() - t)
            for _ in range(per_round):
                t = time.perf_counter()
                await call(WASM, "echo", payload=PAYLOAD)
                out["wasm"].append(time.perf_counter() - t)
            for _ in range(per_round):
                t = time.perf_counter()
                await call(PROC, "echo", payload=PAYLOAD)
                out["proc"].append(time.perf_counter() - t)
        out.update(await _starts(host))
    return out


async def _starts(host: Any) -> dict[str, Any]:
    """A Wasm plugin's start with its module cached, beside a sandboxed worker's start;
    a Wasm instance's memory in the host beside an idle worker's USS."""
    import os

    manager = host.manager
    out: dict[str, Any] = {"wasm_starts": [], "proc_starts": []}
    pairs = {
        "wasm_starts": (manager.backends["wasm"], host.plugin(WASM)),
        "proc_starts": (manager.backends["process"], host.plugin(PROC)),
    }
    for _ in range(15):
        for key, (backend, rec) in pairs.items():
            manifest = rec.manifest
            data_dir = manager.settings.data_root / rec.id
            t = time.perf_counter()
            handle = await backend.start(manifest, rec.placement, data_dir)
            ctx = manager._context_for(manifest, {}, rec.metrics, rec.isolation, rec.placement)
            await handle.initialize(ctx, 30)
            out[key].append(time.perf_counter() - t)
            if key == "wasm_starts":
                out["module_source"] = handle.usage()["module"]
            await handle.cleanup(5)
            handle.release()
            reaper = getattr(handle, "_reaper", None)
            if reaper is not None:
                await reaper
    worker = host.plugin(PROC).handle
    await asyncio.sleep(0.5)
    out["worker_uss"] = _uss(int(worker.pid))
    # idle instances: what 20 more of them add to the host's own private memory
    backend, rec = pairs["wasm_starts"]
    handles = []
    before = _uss(os.getpid())
    for _ in range(20):
        handle = await backend.start(
            rec.manifest, rec.placement, manager.settings.data_root / rec.id
        )
        ctx = manager._context_for(rec.manifest, {}, rec.metrics, rec.isolation, rec.placement)
        await handle.initialize(ctx, 30)
        await handle.call(rec.handle.commands["echo"], {"payload": PAYLOAD}, 5)
        handles.append(handle)
    await asyncio.sleep(0.2)
    out["instance_bytes"] = (_uss(os.getpid()) - before) / len(handles)
    out["linear_memory"] = handles[0].usage()["linear_memory_bytes"]
    for handle in handles:
        await handle.cleanup(5)
        handle.release()
    return out


def run() -> int:
    try:
        from plugbay.pdk.wasm_build import find_clang

        find_clang()
        import wasmtime  # noqa: F401
    except Exception as exc:
        print(f"\n== Wasm backend\n  skipped: {exc} (make bench installs the toolchain)")
        return 1
    got = asyncio.run(_figures(rounds=10, per_round=200))
    raw = statistics.median(got["raw"])
    floor = statistics.median(got["floor"])
    wasm = statistics.median(got["wasm"])
    proc = statistics.median(got["proc"])
    wasm_start = statistics.median(got["wasm_starts"])
    proc_start = statistics.median(got["proc_starts"])
    figures = [
        Figure(
            "Wasm plugin call p50 (host.call: checked, timed, counted, on the instance's thread)",
            wasm, "raw wasmtime call of the same export and payload, in this thread", raw,
            "≤ 1.5×", wasm <= 1.5 * raw,
            note="the raw call is wasmtime-py's public API (Func.__call__, Memory.write/read); "
            "plugbay calls through its C API with arguments made once (next line)",
        ),
        Figure(
            "Wasm plugin call p50", wasm,
            "the same C-API call alone in this thread (JSON decoded, no host around it)", floor,
            "informative: the hop to the instance's thread and back plus the shared call path",
            None,
        ),
        Figure(
            "Wasm plugin call p50", wasm, "sandboxed process call p50 (same command)", proc,
            "informative (the issue sets none): most of a Wasm call is the guest's own work "
            "(the raw wasmtime call above)",
            None,
        ),
        Figure(
            f"Wasm plugin start, module cached ({Path(str(got['module_source'])).name})",
            wasm_start, "sandboxed worker start", proc_start, "below the worker's start",
            wasm_start < proc_start,
        ),
        Figure(
            "memory per idle Wasm instance (host USS added, 20 instances; "
            f"{got['linear_memory'] >> 10} KiB linear memory each)",
            got["instance_bytes"] / 2**20, "idle sandboxed worker USS",
            got["worker_uss"] / 2**20, "below an idle worker", got["instance_bytes"] < got["worker_uss"],
            unit="MiB",
        ),
    ]  # fmt: skip
    print_figures("Wasm backend", figures)
    return sum(1 for f in figures if f.passed is False)


if __name__ == "__main__":
    raise SystemExit(run())
