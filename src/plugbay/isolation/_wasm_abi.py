"""The plugbay Wasm ABI, version 1, on the host's side: one instance of a core module.

The contract (docs/wasm-plugins.md) in short: the module exports ``memory``,
``plugbay_alloc(size) -> ptr``, ``plugbay_free(ptr, size)``, ``plugbay_init(ptr,
len) -> reply`` and ``plugbay_call(cmd, cmd_len, ptr, len) -> reply``, and may
export ``plugbay_cleanup``, ``plugbay_export_state``, ``plugbay_import_state`` and
``_initialize`` (a WASI reactor). A *reply* is an ``i64`` ``(ptr << 32) | len``
of JSON in the module's memory, ``{"ok": value}``, ``{"error": {...}}`` or
``{"none": true}`` (an optional hook it does not implement), valid until the
next call into the instance. The module imports ``plugbay.log``,
``plugbay.storage``, ``plugbay.event``, ``plugbay.service`` and
``plugbay.secret``, each ``(ptr, len)`` of a JSON request; all but ``log`` return
a reply the host allocated with ``plugbay_alloc`` (the module frees it).

Everything here runs on the instance's own thread (:class:`WasmInstance` is not
thread-safe, as a wasmtime store is not); the host's requests go to
:class:`HostImports`, which the handle implements with the plugin's identity.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final, Protocol

import msgspec
import wasmtime

from plugbay.isolation import _wasm_poll
from plugbay.isolation._wasm_signatures import signature_mistake
from plugbay.isolation._wasm_traps import error_text, trap_text

__all__ = [
    "ABI_VERSION",
    "HostImports",
    "InstanceLimits",
    "Interrupted",
    "Output",
    "ProtocolError",
    "StoreOwner",
    "Trapped",
    "WasmInstance",
    "WasmProgram",
    "load_program",
    "new_store",
]

ABI_VERSION: Final = 1
_MASK64: Final = (1 << 64) - 1
_REQUIRED: Final = ("memory", "plugbay_alloc", "plugbay_free", "plugbay_init", "plugbay_call")
#: the imports a module may ask for; any other import is refused when it is started
_IMPORTS: Final = ("log", "storage", "event", "service", "secret")
#: where a module's stdout and stderr go: (stream, bytes written)
Output = Callable[[str, bytes], None]
#: longest host request a module may send (the host refuses bigger ones unread)
MAX_REQUEST: Final = 1 << 20


class ProtocolError(Exception):
    """The module broke the ABI (a reply outside its memory, not JSON, a missing export)."""


class Trapped(Exception):
    """The module trapped (unreachable, out of bounds, stack overflow, ...)."""

    def __init__(self, message: str, memory_bytes: int, refused: int | None = None) -> None:
        super().__init__(message)
        self.memory_bytes = memory_bytes
        #: bytes of memory the module was refused just before (it said so, or the host
        #: found none for a call's payload): the trap is its memory running out
        self.refused = refused


class Interrupted(Exception):
    """The host interrupted a call (its deadline, its CPU limit, or the caller gave up)."""


class HostImports(Protocol):
    """What the module's imports reach: the handle, which knows whose instance it is."""

    def log(self, request: Any) -> None: ...
    def request(self, kind: str, request: Any) -> Any: ...
    #: a sleep of the module's (WASI ``poll_oneoff`` on a clock): ends early when the
    #: call is interrupted
    def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class InstanceLimits:
    """What one instance may use: linear memory (store limits), and where WASI may look."""

    memory_bytes: int | None
    data_dir: Path
    #: granted paths: (host path, writable)
    paths: tuple[tuple[str, bool], ...] = ()
    #: longest reply the host reads (a bigger one is refused, the instance serves on)
    max_reply: int = 16 << 20

    def layers(self) -> list[dict[str, Any]]:
        """The sandbox an instance runs in, in the shape of every backend's layers
        (``isolation._layer.LayerStatus``: name, active, detail, guarantees)."""
        memory = self.memory_bytes
        granted = "".join(f", {path} ({'rw' if rw else 'ro'})" for path, rw in self.paths)
        return [
            {
                "name": "wasm",
                "active": True,
                "detail": "wasmtime store: no system calls, only the host's imports",
                "guarantees": "no sockets, no processes, no environment",
            },
            {
                "name": "wasi-preopens",
                "active": True,
                "detail": f"/data = {self.data_dir}{granted}",
                "guarantees": "files only under /data and the granted paths",
            },
            {
                "name": "memory",
                "active": memory is not None,
                "detail": "no [resources] memory: uncapped"
                if memory is None
                else f"linear memory capped at {memory:,} bytes",
                "guarantees": "memory.grow past the cap fails",
            },
        ]


def _engine() -> wasmtime.Engine:
    config = wasmtime.Config()
    config.epoch_interruption = True  # calls are interrupted at their deadline
    config.parallel_compilation = False  # a plugin's compile must not take every core
    config.cranelift_opt_level = "speed"
    return wasmtime.Engine(config)


@dataclass
class WasmProgram:
    """A compiled module (or component) and the engine it is compiled for (one per plugin
    handle, so an interruption, which is per engine, reaches only that plugin's calls)."""

    engine: wasmtime.Engine
    module: Any  # wasmtime.Module, or wasmtime.component.Component
    path: Path
    #: where the compiled module was read from, or "compiled" when it was not cached
    source: str
    #: "module" (a core module) or "component" (the plugbay:plugin world)
    kind: str = "module"

    def interrupt(self) -> None:
        """Interrupt the call running in this program's instance, if any (any thread)."""
        self.engine.increment_epoch()


def _cache_key(wasm: bytes) -> str:
    tag = f"{wasmtime.__name__}-{_version()}-abi{ABI_VERSION}-epoch-speed".encode()
    return hashlib.sha256(tag + wasm).hexdigest()[:40]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("wasmtime")
    except PackageNotFoundError:  # pragma: no cover - installed without metadata
        return "unknown"


#: the binary's layer field: a core module, or a component
_COMPONENT_LAYER: Final = b"\x0d\x00\x01\x00"


def load_program(path: Path, cache_dir: Path | None) -> WasmProgram:
    """Compile the module (or component) at ``path``, or load it from ``cache_dir``
    (``serialize``), where a restart finds it without compiling again. Blocking: call it
    off the loop."""
    engine = _engine()
    wasm = path.read_bytes()
    if wasm[:4] != b"\0asm":  # wasmtime would read it as WAT text: "expected `(`"
        start = f"it begins {wasm[:16]!r}" if wasm else "it is empty"
        raise ProtocolError(
            f"{path.name} is not a WebAssembly binary ({start}): the manifest's entry "
            "must name the module 'plugbay build' writes (build/plugin.wasm)"
        )
    kind = "component" if wasm[4:8] == _COMPONENT_LAYER else "module"
    if kind == "component":
        from wasmtime import component

        compiled: Any = component.Component
    else:
        compiled = wasmtime.Module
    if cache_dir is None:
        return WasmProgram(engine, compiled(engine, wasm), path, "compiled", kind)
    cached = cache_dir / f"{_cache_key(wasm)}.cwasm"
    if cached.is_file():
        try:
            module = compiled.deserialize_file(engine, str(cached))
            return WasmProgram(engine, module, path, str(cached), kind)
        except wasmtime.WasmtimeError:
            cached.unlink(missing_ok=True)  # another wasmtime wrote it: compile again
    module = compiled(engine, wasm)
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}.{threading.get_ident()}.part")
    partial.write_bytes(module.serialize())
    os.replace(partial, cached)  # whole or absent: a reader never sees half a file
    return WasmProgram(engine, module, path, "compiled", kind)


def check_module(program: WasmProgram) -> None:
    """Refuse a module that does not speak the ABI, or asks for imports the host has not."""
    if program.kind == "component":
        from plugbay.isolation._wasm_component import check_component

        check_component(program)
        return
    exports = {e.name for e in program.module.exports}
    missing = [name for name in _REQUIRED if name not in exports]
    if missing:
        raise ProtocolError(
            f"the module does not export {', '.join(missing)} (plugbay Wasm ABI {ABI_VERSION})"
        )
    for imp in program.module.imports:
        if imp.module == "plugbay" and imp.name not in _IMPORTS:
            raise ProtocolError(f"the module imports plugbay.{imp.name}, which the host has not")
        if imp.module not in ("plugbay", "wasi_snapshot_preview1"):
            raise ProtocolError(
                f"the module imports {imp.module}.{imp.name}: only plugbay.* and WASI preview 1 "
                "are provided"
            )
    mistake = signature_mistake(program.module)
    if mistake is not None:
        raise ProtocolError(mistake)


def instantiate(
    program: WasmProgram,
    limits: InstanceLimits,
    host: HostImports,
    output: Output | None = None,
) -> Any:
    """An instance of ``program``: a core module's (:class:`WasmInstance`) or a
    component's (``_wasm_component.ComponentInstance``), with the same members. One that
    fails as it is made (a start function that traps) has its store closed: its host
    functions hold it, a cycle through wasmtime the collector cannot see, which would
    keep the store's memory reservation (GiBs of address space) for the process's life."""
    kind: type[StoreOwner] = WasmInstance
    if program.kind == "component":
        from plugbay.isolation._wasm_component import ComponentInstance

        kind = ComponentInstance
    inst = kind.__new__(kind)
    try:
        inst.__init__(program, limits, host, output)  # type: ignore[misc]
    except BaseException:
        inst.close()  # no store made yet: nothing to close
        raise
    return inst


def wasi_config(limits: InstanceLimits, output: Output | None) -> Any:
    """Deny by default: no argv, no environment, no inherited files or streams; only the
    plugin's data directory, and the paths the operator granted, are preopened."""
    wasi = wasmtime.WasiConfig()
    wasi.preopen_dir(str(limits.data_dir), "/data")
    for host_path, writable in limits.paths:
        if os.path.isdir(host_path):
            wasi.preopen_dir(host_path, host_path, writable)
    if output is not None:
        wasi.stdout_custom = partial(output, "stdout")
        wasi.stderr_custom = partial(output, "stderr")
    return wasi


def new_store(
    program: WasmProgram,
    limits: InstanceLimits,
    output: Output | None,
    *,
    single: bool,
) -> Any:
    """A store of its own for one instance: its memory bounded (``single``: one instance,
    one memory, as a core module has; a component has several), WASI deny by default
    (:func:`wasi_config`), and the epoch deadline armed, so that a start function is
    interrupted like a call."""
    store = wasmtime.Store(program.engine)
    if limits.memory_bytes is not None:
        bounds = {"instances": 1, "memories": 1} if single else {}
        store.set_limits(memory_size=int(limits.memory_bytes), **bounds)
    store.set_wasi(wasi_config(limits, output))
    store.set_epoch_deadline(1)
    return store


class StoreOwner:
    """What an instance does with its store, whatever kind of program it runs."""

    store: Any

    def close(self) -> None:
        """Free the store now (see ``WasmHandle._drop_instance``); idempotent."""
        with contextlib.suppress(Exception):  # a store already gone is closed
            self.store.close()

    def arm(self) -> None:
        """Arm the epoch deadline for the next job: the program's next ``interrupt`` stops
        whatever of it runs then (the handle arms it under the lock its interrupts take)."""
        self.store.set_epoch_deadline(1)


class WasmInstance(StoreOwner):
    """One instance of a program in a store of its own, with its limits, WASI preopens and
    host imports. Every method runs on the handle's instance thread."""

    def __init__(
        self,
        program: WasmProgram,
        limits: InstanceLimits,
        host: HostImports,
        output: Output | None = None,
    ) -> None:
        self.program = program
        self.limits = limits
        self._host = host
        store = self.store = new_store(program, limits, output, single=True)
        linker = wasmtime.Linker(program.engine)
        linker.define_wasi()
        i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
        # WASI's own poll_oneoff blocks its thread where no interruption reaches: a
        # module's sleep is the host's instead (_wasm_poll), cut short at its deadline
        linker.allow_shadowing = True
        poll = _wasm_poll.Poller(host.sleep, time.monotonic_ns())
        linker.define_func(
            "wasi_snapshot_preview1", "poll_oneoff",
            wasmtime.FuncType([i32, i32, i32, i32], [i32]), poll.poll_oneoff, True,
        )  # fmt: skip
        linker.define_func("plugbay", "log", wasmtime.FuncType([i32, i32], []), self._log, True)
        for kind in ("storage", "event", "service", "secret"):
            linker.define_func(
                "plugbay", kind, wasmtime.FuncType([i32, i32], [i64]), self._importer(kind), True
            )
        self.instance = linker.instantiate(store, program.module)
        exports = self.instance.exports(store)
        memory = exports["memory"]
        if not isinstance(memory, wasmtime.Memory):
            raise ProtocolError("its export 'memory' is not a memory")
        self.memory = memory
        self._funcs = {
            e.name: f
            for e in program.module.exports
            if isinstance(f := exports[e.name], wasmtime.Func)
        }
        for name in _REQUIRED[1:]:
            if name not in self._funcs:
                raise ProtocolError(f"its export '{name}' is not a function")
        self._alloc = self._funcs["plugbay_alloc"]
        self._free = self._funcs["plugbay_free"]
        self._call = self._funcs["plugbay_call"]
        #: the host's input buffer in the module's memory (reused; grown when too small)
        self._buffer = 0
        self._buffer_size = 0
        init = self._funcs.get("_initialize")
        if init is not None:
            self._guard(lambda: init(store))
        self._fast = _FastCall.make(store, self.memory, self._call)

    # -- calls into the module ------------------------------------------------------------

    def call(self, command: bytes, payload: bytes) -> Any:
        """``plugbay_call``: the reply, decoded (``{"ok": ...}`` or ``{"error": ...}``)."""
        store = self.store
        need = len(command) + len(payload)
        if need > self._buffer_size:
            self._grow(need)
        base = self._buffer
        fast = self._fast
        if fast is not None:
            raw = self._guard(lambda: fast.call(base, command, payload, self.limits.max_reply))
            if isinstance(raw, int):
                return {"too_large": raw}
            return decoded(raw)
        self.memory.write(store, command + payload, base)
        return self._reply(
            self._guard(
                lambda: self._call(store, base, len(command), base + len(command), len(payload))
            )
        )

    def hook(self, name: str, payload: bytes | None = None) -> Any:
        """An optional export (``plugbay_init``, ``_cleanup``, ``_export_state``,
        ``_import_state``): its reply, or ``{"none": True}`` when it has none."""
        func = self._funcs.get(f"plugbay_{name}")
        if func is None:
            return {"none": True}
        store = self.store
        if payload is None:
            return self._reply(self._guard(lambda: func(store)))
        if len(payload) > self._buffer_size:
            self._grow(len(payload))
        self.memory.write(store, payload, self._buffer) if payload else None
        base = self._buffer
        return self._reply(self._guard(lambda: func(store, base, len(payload))))

    def memory_bytes(self) -> int:
        """The instance's linear memory now (its pages)."""
        return int(self.memory.data_len(self.store))

    def _grow(self, need: int) -> None:
        store = self.store
        if self._buffer:
            self._guard(lambda: self._free(store, self._buffer, self._buffer_size))
        size = max(4096, 1 << (need - 1).bit_length())
        ptr = int(self._guard(lambda: self._alloc(store, size)))
        if ptr <= 0:
            self._buffer = self._buffer_size = 0
            raise Trapped(
                "plugbay_alloc returned no memory for the call's payload",
                self.memory_bytes(),
                refused=size,
            )
        self._buffer, self._buffer_size = ptr, size

    def _guard(self, run: Callable[[], Any]) -> Any:
        """One call into the module; a trap becomes :class:`Trapped` or :class:`Interrupted`."""
        try:
            return run()
        except wasmtime.Trap as trap:
            if trap.trap_code == wasmtime.TrapCode.INTERRUPT:
                raise Interrupted("interrupted") from None
            raise Trapped(trap_text(trap), self.memory_bytes()) from None
        except wasmtime.WasmtimeError as exc:  # a trap under a host call arrives as an error
            if "wasm trap: interrupt" in str(exc):
                raise Interrupted("interrupted") from None
            raise Trapped(error_text(str(exc)), self.memory_bytes()) from None

    def _reply(self, packed: Any) -> Any:
        value = int(packed) & _MASK64
        if value == 0:
            return {"ok": None}
        ptr, length = value >> 32, value & 0xFFFFFFFF
        if length > self.limits.max_reply:
            return {"too_large": length}
        raw = bytes(self.memory.read(self.store, ptr, ptr + length))
        if len(raw) != length:  # read stops at the end of its memory
            raise ProtocolError(f"its reply ({length} bytes at {ptr}) lies outside its memory")
        return decoded(raw)

    # -- calls out of the module (its imports) --------------------------------------------

    def _request(self, caller: wasmtime.Caller, ptr: int, length: int) -> Any:
        if length < 0 or length > MAX_REQUEST:
            raise ValueError(f"a host request of {length} bytes (at most {MAX_REQUEST})")
        memory = caller["memory"]
        assert isinstance(memory, wasmtime.Memory)
        if ptr < 0 or ptr + length > memory.data_len(caller):
            raise ValueError("a host request outside the module's memory")
        return msgspec.json.decode(bytes(memory.read(caller, ptr, ptr + length)))

    def _log(self, caller: wasmtime.Caller, ptr: int, length: int) -> None:
        try:
            self._host.log(self._request(caller, ptr, length))
        except Exception as exc:  # a bad record is dropped, never a trap in the module
            self._host.log({"level": 30, "message": f"a log record the host could not read: {exc}"})

    def _importer(self, kind: str) -> Callable[[wasmtime.Caller, int, int], int]:
        def serve(caller: wasmtime.Caller, ptr: int, length: int) -> int:
            try:
                reply = self._host.request(kind, self._request(caller, ptr, length))
            except Exception as exc:  # never raise into wasmtime: an answer the module reads
                reply = {
                    "error": {"type": "PlugbayError", "message": f"{type(exc).__name__}: {exc}"}
                }
            data = msgspec.json.encode(reply)
            try:
                alloc = caller["plugbay_alloc"]
                memory = caller["memory"]
                assert isinstance(alloc, wasmtime.Func) and isinstance(memory, wasmtime.Memory)
                at = int(alloc(caller, len(data)))
                if at <= 0:
                    return 0
                memory.write(caller, data, at)
            except Exception:  # interrupted in its alloc (or it has none): no answer; an
                return 0  # exception must never cross into wasmtime (its last-error slot)
            packed = (at << 32) | len(data)
            return packed - (1 << 64) if packed >= 1 << 63 else packed

        return serve


def decoded(raw: bytes) -> Any:
    """A reply, decoded; one that is not is refused with its first bytes, so that its
    author sees what the module wrote (a command's result is inside its ``"ok"``)."""
    try:
        reply = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"its reply is not JSON: {exc}, in {_excerpt(raw)}") from None
    if not isinstance(reply, dict) or not ({"ok", "error", "none"} & reply.keys()):
        raise ProtocolError(f'its reply is not {{"ok": ...}} or {{"error": ...}}: {_excerpt(raw)}')
    return reply


def _excerpt(raw: bytes, size: int = 160) -> str:
    text = raw[:size].decode("utf-8", "replace")
    return repr(text) + (f" (… {len(raw):,} bytes)" if len(raw) > size else "")


class _FastCall:
    """``plugbay_call`` through wasmtime's C API as wasmtime-py binds it (``_ffi``), with
    its argument array made once: a few µs a call where ``Func.__call__`` (which looks
    the function's type up and converts each value anew) takes tens. Used when this
    wasmtime-py has what it needs; otherwise the public API serves (``make`` says None)."""

    __slots__ = ("_ffi", "_func", "_memory", "_params", "_results", "_store", "_trap_t")
    _ffi: Any
    _func: Any
    _memory: Any
    _params: Any
    _results: Any
    _store: wasmtime.Store
    _trap_t: Any

    @classmethod
    def make(
        cls, store: wasmtime.Store, memory: wasmtime.Memory, func: wasmtime.Func
    ) -> _FastCall | None:
        try:
            from wasmtime import _ffi

            fast = cls()
            fast._ffi = _ffi
            fast._store = store
            fast._memory = ctypes.byref(memory._memory)
            fast._func = ctypes.byref(func._func)
            fast._params = (_ffi.wasmtime_val_t * 4)()
            for value in fast._params:
                value.kind = _ffi.WASMTIME_I32
            fast._results = (_ffi.wasmtime_val_t * 1)()
            fast._trap_t = _ffi.wasm_trap_t
        except (ImportError, AttributeError, TypeError):
            return None
        return fast

    def call(self, base: int, command: bytes, payload: bytes, max_reply: int) -> bytes | int:
        """The reply's bytes, or its length when it is over ``max_reply`` (left unread)."""
        ffi, ctx = self._ffi, self._store._context()
        start = ctypes.addressof(ffi.wasmtime_memory_data(ctx, self._memory).contents)
        blob = command + payload
        ctypes.memmove(start + base, blob, len(blob))
        params = self._params
        params[0].of.i32, params[1].of.i32 = base, len(command)
        params[2].of.i32, params[3].of.i32 = base + len(command), len(payload)
        trap = ctypes.POINTER(self._trap_t)()
        error = ffi.wasmtime_func_call(
            ctx, self._func, params, 4, self._results, 1, ctypes.byref(trap)
        )
        if error or trap:
            _forget_host_exception()
        if error:
            raise wasmtime.WasmtimeError._from_ptr(error)
        if trap:
            raise wasmtime.Trap._from_ptr(trap)
        packed = int(self._results[0].of.i64) & _MASK64
        if packed == 0:
            return b'{"ok":null}'
        ptr, length = packed >> 32, packed & 0xFFFFFFFF
        if length > max_reply:
            return length
        size = ffi.wasmtime_memory_data_size(ctx, self._memory)
        if ptr + length > size:
            raise ProtocolError(f"its reply ({length} bytes at {ptr}) lies outside its memory")
        start = ctypes.addressof(ffi.wasmtime_memory_data(ctx, self._memory).contents)
        return bytes(ctypes.string_at(start + ptr, length))


def _forget_host_exception() -> None:
    """wasmtime-py keeps the last exception a host function raised in a global, raised by
    the next call that looks (any thread's); the host's imports never raise, but a trap
    on the C-API path clears it all the same."""
    try:
        from wasmtime import _func

        _func.LAST_EXCEPTION = None
    except (ImportError, AttributeError):
        return
