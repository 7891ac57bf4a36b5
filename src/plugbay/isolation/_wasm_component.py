"""The plugbay Wasm ABI for components: the ``plugbay:plugin`` world (``pdk/wasm_sdk/plugin.wit``).

A plugin built as a component (Python with componentize-py) exports ``init``,
``call``, ``cleanup``, ``export-state`` and ``import-state``, each taking and
returning JSON text, and imports ``plugbay:plugin/host``: ``log(request)`` and
``request(kind, request) -> reply``, the same requests a core module makes
through its five imports. The replies are the same JSON as a core module's, so
:class:`ComponentInstance` offers the handle what ``_wasm_abi.WasmInstance``
does: ``arm``, ``call``, ``hook`` and ``memory_bytes``. Runs on the handle's
instance thread only.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
import wasmtime
from wasmtime import component

from plugbay.isolation._wasm_abi import (
    MAX_REQUEST,
    HostImports,
    InstanceLimits,
    Interrupted,
    Output,
    ProtocolError,
    StoreOwner,
    Trapped,
    WasmProgram,
    decoded,
    new_store,
)
from plugbay.isolation._wasm_traps import error_text, first_line, trap_text

__all__ = ["HOST_INTERFACE", "ComponentInstance", "check_component"]

HOST_INTERFACE: Final = "plugbay:plugin/host@1.0.0"
_REQUIRED: Final = ("init", "call")
_HOOKS: Final = {
    "init": "init",
    "cleanup": "cleanup",
    "export_state": "export-state",
    "import_state": "import-state",
}


def check_component(program: WasmProgram) -> None:
    """Refuse a component that does not export the world's ``init`` and ``call``."""
    missing = [n for n in _REQUIRED if program.module.get_export_index(n) is None]
    if missing:
        raise ProtocolError(
            f"the component does not export {', '.join(missing)} (the plugbay:plugin world)"
        )


class ComponentInstance(StoreOwner):
    """One instance of a component in a store of its own (see the module docstring)."""

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
        store = self.store = new_store(program, limits, output, single=False)
        linker = component.Linker(program.engine)
        linker.add_wasip2()
        with linker.root() as root, root.add_instance(HOST_INTERFACE) as imports:
            imports.add_func("log", self._log)
            imports.add_func("request", self._request)
        try:
            self.instance = linker.instantiate(store, program.module)
        except wasmtime.WasmtimeError as exc:
            raise ProtocolError(
                f"the component cannot be instantiated: {first_line(str(exc))}"
            ) from None
        self._funcs: dict[str, Any] = {}
        for name in (*_HOOKS.values(), "call"):
            func = self.instance.get_func(store, name)
            if func is not None:
                self._funcs[name] = func

    def call(self, command: bytes, payload: bytes) -> Any:
        return self._invoke("call", command.decode(), payload.decode())

    def hook(self, name: str, payload: bytes | None = None) -> Any:
        export = _HOOKS[name]
        if name in ("init", "import_state"):
            return self._invoke(export, (payload or b"{}").decode())
        return self._invoke(export)

    def memory_bytes(self) -> int:
        """A component's memories are its own: the host does not read their size."""
        return 0

    def _invoke(self, name: str, *args: str) -> Any:
        func = self._funcs.get(name)
        if func is None:
            return {"none": True}
        try:
            text = func(self.store, *args)
            func.post_return(self.store)
        except wasmtime.Trap as trap:
            if trap.trap_code == wasmtime.TrapCode.INTERRUPT:
                raise Interrupted("interrupted") from None
            raise Trapped(trap_text(trap), 0) from None
        except wasmtime.WasmtimeError as exc:
            if "wasm trap: interrupt" in str(exc):
                raise Interrupted("interrupted") from None
            raise Trapped(error_text(str(exc)), 0) from None
        if not isinstance(text, str):
            raise ProtocolError(f"'{name}' returned {type(text).__name__}, not JSON text")
        if len(text) > self.limits.max_reply:
            return {"too_large": len(text)}
        return decoded(text.encode())

    def _log(self, store: Any, request: str) -> None:
        try:
            self._host.log(_read(request))
        except Exception as exc:  # a bad record is dropped, never a trap in the component
            self._host.log({"level": 30, "message": f"a log record the host could not read: {exc}"})

    def _request(self, store: Any, kind: str, request: str) -> str:
        try:
            if kind not in ("storage", "event", "service", "secret"):
                raise ValueError(f"no host request of kind {kind!r}")
            reply = self._host.request(kind, _read(request))
        except Exception as exc:  # never raise into wasmtime: an answer the plugin reads
            reply = {"error": {"type": "PlugbayError", "message": f"{type(exc).__name__}: {exc}"}}
        return msgspec.json.encode(reply).decode()


def _read(request: str) -> Any:
    if len(request) > MAX_REQUEST:
        raise ValueError(f"a host request of {len(request)} characters (at most {MAX_REQUEST})")
    return msgspec.json.decode(request)
